"""What monitoring stores: the reference profile of each dataset (by digest), one row per
computed window of a deployed version with one row per feature's drift, and the alerts
its monitors raised, each with at most one action."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from lifecycle.deployments.models import Deployment
from lifecycle.monitoring.choices import ALERT_OPEN_STATES, ActionState, AlertAction, AlertStatus
from registry.models import ModelVersion, RegisteredModel


class ReferenceProfile(models.Model):
    """The per-feature profile of a dataset's content, the reference that live traffic is
    compared with (``lifecycle.monitoring.profiles``). Keyed by the content digest: two
    datasets with the same bytes share it, and a dataset whose file changed gets a new one."""

    digest = models.CharField(max_length=64, unique=True)
    target = models.CharField(max_length=256, blank=True)
    rows = models.PositiveIntegerField(default=0)
    profile = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"profile {self.digest[:12]}"


class MonitorWindow(models.Model):
    """One computed window of a version's live traffic (all deployments, or one): its rows,
    labels, latency and errors, live metrics and schema violations. Computed once; a
    second computation of the same window finds it and stops."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="monitor_windows")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="monitor_windows")
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.CASCADE, related_name="monitor_windows"
    )
    reference = models.ForeignKey(ReferenceProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    rows = models.PositiveIntegerField(default=0)
    labels = models.PositiveIntegerField(default=0)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    error_rate = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    schema = models.JSONField(default=list, blank=True)
    computed_at = models.DateTimeField(auto_now_add=True)
    # Ground truth received up to this moment is in ``labels`` and ``metrics``; a label
    # received later for one of the window's rows has the next pass compute them again.
    labels_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["version_id", "start"]
        constraints = [
            # One window per version and start, for one deployment or for all of them.
            models.UniqueConstraint(
                fields=["version", "deployment", "start"],
                condition=Q(deployment__isnull=False),
                name="monitor_window_once_per_deployment",
            ),
            models.UniqueConstraint(
                fields=["version", "start"], condition=Q(deployment__isnull=True), name="monitor_window_once"
            ),
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="monitor_window_ends_after_start"),
        ]
        indexes = [models.Index(fields=["model", "start"], name="monitor_window_model_start")]

    def __str__(self) -> str:
        return f"{self.version} {self.start:%Y-%m-%d %H:%M}"


class DriftResult(models.Model):
    """One feature (or the prediction) in one window: every drift statistic that applies,
    and the live counts in the reference's bins or categories."""

    window = models.ForeignKey(MonitorWindow, on_delete=models.CASCADE, related_name="drift")
    feature = models.CharField(max_length=256)
    kind = models.CharField(max_length=16)
    rows = models.PositiveIntegerField(default=0)
    psi = models.FloatField(null=True, blank=True)
    ks = models.FloatField(null=True, blank=True)
    ks_pvalue = models.FloatField(null=True, blank=True)
    chi2 = models.FloatField(null=True, blank=True)
    chi2_pvalue = models.FloatField(null=True, blank=True)
    js = models.FloatField(null=True, blank=True)
    missing_share = models.FloatField(default=0.0)
    out_of_range_share = models.FloatField(default=0.0)
    live_counts = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["window_id", "feature"]
        constraints = [models.UniqueConstraint(fields=["window", "feature"], name="drift_result_once_per_feature")]

    def __str__(self) -> str:
        return f"{self.window} {self.feature}"


class Alert(models.Model):
    """A monitor rule that fired for a version: firing, then acknowledged, then resolved.

    ``dedup_key`` names the rule and what it watches; while an alert with that key is open,
    the rule firing again on a later window only moves ``window`` to it and touches
    ``last_fired_at`` and ``occurrences`` (a database constraint keeps one open alert per
    key). Its ``action`` runs once: ``action_state``
    leaves ``pending`` by one compare-and-swap, which takes a lease (``action_claim``,
    ``action_lease_until``); a claim whose lease ran out is taken again by the periodic
    pass, which finishes or fails the action without acting twice."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alerts")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="alerts")
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    rule_index = models.PositiveIntegerField()
    rule = models.JSONField(default=dict)
    dedup_key = models.CharField(max_length=512)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.FIRING)
    detail = models.TextField(blank=True)
    observed = models.FloatField(null=True, blank=True)
    features = models.JSONField(default=list, blank=True)
    window = models.ForeignKey(MonitorWindow, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    occurrences = models.PositiveIntegerField(default=1)
    fired_at = models.DateTimeField()
    last_fired_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.TextField(blank=True)
    action = models.CharField(max_length=16, choices=AlertAction.choices, default=AlertAction.ALERT)
    action_state = models.CharField(max_length=16, choices=ActionState.choices, default=ActionState.NONE)
    action_result = models.JSONField(default=dict, blank=True)
    # When the action was last claimed (``running``), by which claim, until when the claim
    # holds, and how many claims it has had.
    action_at = models.DateTimeField(null=True, blank=True)
    action_claim = models.CharField(max_length=32, blank=True)
    action_lease_until = models.DateTimeField(null=True, blank=True)
    action_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(status__in=sorted(ALERT_OPEN_STATES)),
                name="one_open_alert_per_key",
            ),
            models.CheckConstraint(condition=Q(status__in=AlertStatus.values), name="alert_status_valid"),
            models.CheckConstraint(condition=Q(action__in=AlertAction.values), name="alert_action_valid"),
            models.CheckConstraint(condition=Q(action_state__in=ActionState.values), name="alert_action_state_valid"),
        ]
        indexes = [models.Index(fields=["model", "status"], name="alert_model_status")]

    def __str__(self) -> str:
        return f"alert {self.pk} {self.model.name} v{self.version.version} {self.status}"
