"""Deployments: a model served on a target with an ordered set of routes, the replicas
(MLflow scoring servers run as jobs on worker hosts) behind each route, the revision
history of every change, and the route tables published for the serving gateway."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from lifecycle.deployments.choices import DeploymentState, DeploymentTarget, ReplicaState, RouteMode
from registry.models import ModelVersion, RegisteredModel


class Deployment(models.Model):
    """A model served on a target. A deployment that ``follows_production`` has its
    primary route moved by every promotion and rollback, in the same transaction."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="deployments")
    name = models.SlugField(max_length=64)
    target = models.CharField(max_length=16, choices=DeploymentTarget.choices, default=DeploymentTarget.LOCAL)
    pool = models.CharField(max_length=64, default="default")
    replicas = models.PositiveIntegerField(default=1)
    resources = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=DeploymentState.choices, default=DeploymentState.PENDING)
    state_detail = models.TextField(blank=True)
    follows_production = models.BooleanField(default=False)
    # The model's deployment that /serve/{model}/invocations reaches.
    is_default = models.BooleanField(default=False)
    cache = models.BooleanField(default=False)
    # The share of calls the gateway writes to the prediction log (1.0: every call).
    log_sample_rate = models.FloatField(default=1.0)
    # Monitoring windows of this deployment last this many minutes (empty: the
    # MODELGATE_MONITOR_WINDOW_SECONDS default), and the periodic pass computes it again
    # once ``monitor_due_at`` has come (empty: at the next pass).
    monitor_every_minutes = models.PositiveIntegerField(null=True, blank=True)
    monitor_due_at = models.DateTimeField(null=True, blank=True)
    # The version that served as primary before the current one: callers keep getting it
    # until the new primary has a ready replica.
    previous_primary = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revision = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["model", "name"], name="deployment_name_unique_per_model"),
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(is_default=True) & ~Q(state=DeploymentState.STOPPED),
                name="one_default_deployment_per_model",
            ),
            models.CheckConstraint(condition=Q(state__in=DeploymentState.values), name="deployment_state_valid"),
            models.CheckConstraint(
                condition=Q(log_sample_rate__gte=0.0) & Q(log_sample_rate__lte=1.0),
                name="deployment_log_sample_rate_share",
            ),
            models.CheckConstraint(
                condition=Q(monitor_every_minutes__isnull=True) | Q(monitor_every_minutes__gte=1),
                name="deployment_monitor_every_minutes_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name}/{self.name}"


class Route(models.Model):
    """One version's place in a deployment: its mode and share of live traffic."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="routes")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="routes")
    mode = models.CharField(max_length=16, choices=RouteMode.choices)
    weight = models.FloatField(default=0.0)
    started_at = models.DateTimeField()

    class Meta:
        ordering = ["deployment_id", "mode", "id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "version"], name="route_version_once_per_deployment"),
            models.UniqueConstraint(
                fields=["deployment"], condition=Q(mode=RouteMode.PRIMARY), name="one_primary_route_per_deployment"
            ),
            models.UniqueConstraint(
                fields=["deployment"], condition=Q(mode=RouteMode.CANARY), name="one_canary_route_per_deployment"
            ),
            models.CheckConstraint(condition=Q(weight__gte=0.0) & Q(weight__lte=1.0), name="route_weight_share"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment} v{self.version.version} {self.mode} {self.weight:.2f}"


class Replica(models.Model):
    """An MLflow scoring server for one version of a deployment, run by a job on a worker."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="replica_set")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    job = models.OneToOneField("lifecycle.Job", null=True, on_delete=models.SET_NULL, related_name="replica")
    state = models.CharField(max_length=16, choices=ReplicaState.choices, default=ReplicaState.STARTING)
    state_detail = models.TextField(blank=True)
    url = models.CharField(max_length=255, blank=True)
    host = models.CharField(max_length=255, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["deployment_id", "version_id", "id"]
        indexes = [models.Index(fields=["deployment", "state"], name="replica_deployment_state")]

    def __str__(self) -> str:
        return f"replica {self.pk} of {self.deployment} v{self.version.version} ({self.state})"


class DeploymentRevision(models.Model):
    """One change of a deployment's routes or state: who, when, why, before and after."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    action = models.CharField(max_length=64)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True)
    after = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "number"], name="deployment_revision_number_unique")
        ]

    def __str__(self) -> str:
        return f"{self.deployment} r{self.number} {self.action}"


class RouteTablePublication(models.Model):
    """A route table the gateway follows; the newest row is the one in force. Its id is
    the table's revision, so a gateway reloads only when the number grows."""

    document = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"route table r{self.pk}"
