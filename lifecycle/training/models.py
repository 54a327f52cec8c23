"""Models of the training and update stage: retraining schedules."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from registry.models import RegisteredModel


class RetrainSchedule(models.Model):
    """Retrain a model's production version on the latest data, on a cron-like schedule, or
    update it by a derivation method (an incremental update, say) when ``method`` is set."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="retrain_schedule")
    cron = models.CharField(max_length=128)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey("lifecycle.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Empty: retrain the recipe. Otherwise a derivation method (``incremental``, ``prune``…)
    # applied to the production version instead, with ``method_params``.
    method = models.CharField(max_length=16, blank=True, default="")
    method_params = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.model} at {self.cron}"
