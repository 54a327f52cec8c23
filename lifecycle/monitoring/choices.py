"""Enumerations of the monitoring stage: an alert's states with the moves between them,
and the state of its one action."""

from __future__ import annotations

from django.db import models


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


# An open alert is the one a repeat of its condition joins instead of opening another.
ALERT_OPEN_STATES = frozenset({AlertStatus.FIRING, AlertStatus.ACKNOWLEDGED})
ALERT_TRANSITIONS: dict[str, frozenset[str]] = {
    AlertStatus.FIRING: frozenset({AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED}),
    AlertStatus.ACKNOWLEDGED: frozenset({AlertStatus.RESOLVED}),
    AlertStatus.RESOLVED: frozenset(),
}


class AlertAction(models.TextChoices):
    ALERT = "alert", "Alert only"
    ROLLBACK = "rollback", "Roll production back"
    RETRAIN = "retrain", "Retrain on fresh data"
    ABORT_CANARY = "abort_canary", "Abort the canary"
    DERIVE = "derive", "Derive an updated version"


class ActionState(models.TextChoices):
    # ``none``: the alert only notifies. ``pending`` -> ``running`` is the one claim of the
    # action (a compare-and-swap), so it runs once whatever repeats the alert sees.
    NONE = "none", "No action"
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
