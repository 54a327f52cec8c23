"""The model card of the design stage and its revision history."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from registry.models import RegisteredModel


class DesignCard(models.Model):
    """A model's card as it stands: its latest content and revision number.

    Every change goes through ``design_card_update``, which locks the model's row,
    checks the caller's expected revision, and writes a ``DesignCardRevision``."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="design_card")
    content = models.JSONField(default=dict)
    revision = models.PositiveIntegerField(default=0)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When design was completed with this card, and by whom (null while in design).
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_revision = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"card of {self.model.name} r{self.revision}"


class DesignCardRevision(models.Model):
    """One saved state of a card: who, when, why, the whole content and what changed."""

    card = models.ForeignKey(DesignCard, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    content = models.JSONField()
    # {field: {"before": ..., "after": ...}} for each field this revision changed.
    diff = models.JSONField(default=dict)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["card_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["card", "number"], name="design_card_revision_unique")]

    def __str__(self) -> str:
        return f"{self.card} revision {self.number}"
