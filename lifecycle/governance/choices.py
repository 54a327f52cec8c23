"""Enumerations of governance: transitions, decisions, the production history, the outbox.

Version stages and their transition map live in ``registry.choices`` (the registry
stores the stage)."""

from __future__ import annotations

from django.db import models


class TransitionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    BLOCKED = "blocked", "Blocked"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


OPEN_TRANSITION_STATUSES = frozenset({TransitionStatus.PENDING, TransitionStatus.BLOCKED})


class TransitionKind(models.TextChoices):
    REQUEST = "request", "Requested"
    ROLLBACK = "rollback", "Rollback"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class ProductionEnd(models.TextChoices):
    REPLACED = "replaced", "Replaced by a newer version"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ARCHIVED = "archived", "Archived"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Given up"


class OutboxKind(models.TextChoices):
    MLFLOW_ALIAS = "mlflow_alias", "Move an MLflow alias"
    EVENT = "event", "Platform event (fans out to webhooks)"


EVENT_TYPES = (
    "model.created",
    "model.updated",
    "model.policy_changed",
    "model.design_updated",
    "model.design_completed",
    "version.registered",
    "transition.requested",
    "transition.approved",
    "transition.applied",
    "transition.blocked",
    "transition.rejected",
    "transition.cancelled",
    "model.rolled_back",
    "deployment.updated",
    "deployment.ready",
    "deployment.failed",
    "alert.firing",
    "alert.acknowledged",
    "alert.resolved",
)
