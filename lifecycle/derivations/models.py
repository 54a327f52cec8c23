"""Models of the update stage: a derived version's recipe and its comparison with its parent."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from lifecycle.derivations.choices import DerivationMethod, DerivationState
from registry.models import ModelVersion, RegisteredModel


class Derivation(models.Model):
    """Version ``parent`` turned into ``version`` by ``method`` with ``params``: the job that
    did it, the parent's digest at the time, and both versions' figures on the same
    dataset digest (metric deltas, size, latency, peak memory)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="derivations")
    parent = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="derivations_from")
    version = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="derivation"
    )
    method = models.CharField(max_length=16, choices=DerivationMethod.choices)
    params = models.JSONField(default=dict)
    parent_digest = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=DerivationState.choices, default=DerivationState.RUNNING)
    job = models.OneToOneField("lifecycle.Job", null=True, on_delete=models.SET_NULL, related_name="derivation")
    dataset_digest = models.CharField(max_length=64, blank=True)
    # Derived minus parent, per metric, on ``dataset_digest``.
    metric_deltas = models.JSONField(default=dict)
    # {"parent": {...}, "derived": {...}, "ratios": {...}, "single_row_speedup": x} from the job.
    comparison = models.JSONField(default=dict)
    agreement = models.JSONField(default=dict)
    details = models.JSONField(default=dict)
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "-created_at"], name="derivation_model_recent")]

    def __str__(self) -> str:
        target = f"v{self.version.version}" if self.version_id else "(running)"
        return f"{self.model} v{self.parent.version} -> {target} by {self.method}"
