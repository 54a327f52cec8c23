"""What happens to a model: transitions with their gates and approvals, the production
history, the audit chain, the outbox and webhooks."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.encryption import EncryptedTextField
from lifecycle.governance.choices import (
    Decision,
    DeliveryStatus,
    OutboxKind,
    ProductionEnd,
    TransitionKind,
    TransitionStatus,
)
from registry.choices import Stage
from registry.models import ModelVersion, RegisteredModel, Team


class Transition(models.Model):
    """A request to move a version to another stage, with the gate results that decided it."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="transitions")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="transitions")
    kind = models.CharField(max_length=16, choices=TransitionKind.choices, default=TransitionKind.REQUEST)
    from_stage = models.CharField(max_length=16, choices=Stage.choices)
    to_stage = models.CharField(max_length=16, choices=Stage.choices)
    status = models.CharField(max_length=16, choices=TransitionStatus.choices)
    reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # [{"rule", "index", "status", "detail", "data", "needs"}] from the last evaluation.
    gates = models.JSONField(default=list)
    status_detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "model"], name="transition_status_model"),
            models.Index(fields=["version", "status"], name="transition_version_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=TransitionStatus.values), name="transition_status_valid"),
            # One open request per version and target: a second is a 409, not a duplicate.
            models.UniqueConstraint(
                fields=["version", "to_stage"],
                condition=Q(status__in=[TransitionStatus.PENDING, TransitionStatus.BLOCKED]),
                name="one_open_transition_per_version_target",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.version} {self.from_stage}->{self.to_stage} ({self.status})"


class Approval(models.Model):
    """One person's decision on a transition, with the role they held when deciding."""

    transition = models.ForeignKey(Transition, on_delete=models.CASCADE, related_name="decisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    role = models.CharField(max_length=16)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["transition", "user"], name="one_decision_per_person")]

    def __str__(self) -> str:
        return f"{self.user} {self.decision}d #{self.transition_id}"


class ProductionRecord(models.Model):
    """A span of time during which a version was the model's production version."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="production_history")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="production_spans")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=16, choices=ProductionEnd.choices, blank=True)
    transition = models.ForeignKey(Transition, null=True, on_delete=models.SET_NULL, related_name="+")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["model", "started_at"], name="production_model_started")]
        constraints = [
            models.UniqueConstraint(
                fields=["model"], condition=Q(ended_at__isnull=True), name="one_open_production_span_per_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.started_at:%Y-%m-%d %H:%M} – {self.ended_at or 'now'}"


class AuditRecord(models.Model):
    """An append-only, hash-chained record of a change. Never updated or deleted."""

    at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    model_name = models.CharField(max_length=128, blank=True, db_index=True)
    before = models.JSONField(null=True)
    after = models.JSONField(null=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    token_prefix = models.CharField(max_length=16, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["action", "id"], name="audit_action"),
            models.Index(fields=["actor_name", "id"], name="audit_actor"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_name}"


class OutboxEvent(models.Model):
    """A side effect written in the same transaction as the change and delivered after
    commit by the relay: an MLflow alias move, or an event for webhooks."""

    kind = models.CharField(max_length=16, choices=OutboxKind.choices)
    event_type = models.CharField(max_length=64, blank=True)
    team = models.ForeignKey(Team, null=True, on_delete=models.SET_NULL, related_name="+")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.event_type} ({self.status})"


class Webhook(models.Model):
    """A subscription of a team to platform events, delivered signed with HMAC-SHA256."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=1024)
    # Encrypted at rest (config/encryption.py); the plaintext is shown once, at creation.
    secret = EncryptedTextField()
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=256, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.team}: {self.url}"


class WebhookDelivery(models.Model):
    """One event sent to one webhook, with every attempt's outcome."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]
        constraints = [models.UniqueConstraint(fields=["webhook", "event"], name="one_delivery_per_webhook_event")]

    def __str__(self) -> str:
        return f"{self.delivery_id} to {self.webhook_id} ({self.status})"
