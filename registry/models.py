"""What a model IS: teams, registered models, versions, aliases, datasets, API tokens.

Invariants that a database can hold are constraints here (one production version per
model, unique version numbers, one current value per metric), so that no code path can
break them, whichever service forgets to check.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.choices import (
    DatasetFormat,
    MetricSource,
    ModelStage,
    Role,
    Stage,
    TaskType,
    VersionStatus,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class RevisionField(models.BigIntegerField):
    """Set by a database trigger on every insert and update (``registry/revisions.py``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("default", 0)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)


class Team(models.Model):
    """A group of people that owns models; every permission is a role in a team."""

    name = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in one team (viewer < developer < approver < admin)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_one_role_per_team"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


class Dataset(models.Model):
    """Data that versions are trained or evaluated on, identified by a content digest."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=128)
    uri = models.CharField(max_length=1024)
    format = models.CharField(max_length=16, choices=DatasetFormat.choices)
    target = models.CharField(max_length=256, blank=True)
    digest = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    profile = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revision = RevisionField()

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="dataset_name_unique_per_team"),
            models.CheckConstraint(condition=Q(format__in=DatasetFormat.values), name="dataset_format_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.team}/{self.name}"


class RegisteredModel(models.Model):
    """A model as a product: owner team, task, primary metric, dataset and promotion policy."""

    name = models.CharField(max_length=128, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="models")
    description = models.TextField(blank=True)
    task = models.CharField(max_length=32, choices=TaskType.choices, default=TaskType.CLASSIFICATION)
    # Written only by ``model_create`` and the design stage's completion (compare-and-swap).
    stage = models.CharField(max_length=16, choices=ModelStage.choices, default=ModelStage.ACTIVE)
    primary_metric = models.CharField(max_length=128, blank=True)
    policy = models.JSONField(default=dict, blank=True)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="models")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["team", "name"], name="model_team_name")]
        constraints = [
            models.CheckConstraint(condition=Q(task__in=TaskType.values), name="model_task_valid"),
            models.CheckConstraint(condition=Q(stage__in=ModelStage.values), name="model_stage_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelTag(models.Model):
    """A key/value label on a registered model (filter ``tag=key:value``)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="tag_rows")
    key = models.CharField(max_length=128)
    value = models.CharField(max_length=512)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="model_tag_key_unique")]
        indexes = [models.Index(fields=["key", "value"], name="model_tag_key_value")]


class ModelVersion(models.Model):
    """One trained artifact of a model; its number is the MLflow model version's number."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.TRAINING)
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.READY)
    description = models.TextField(blank=True)
    run_id = models.CharField(max_length=64, blank=True, db_index=True)
    source = models.CharField(max_length=1024)
    artifact_uri = models.CharField(max_length=1024)
    digest = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    # {relative path: {"sha256": ..., "size": ...}}: lets a failed verification name the file.
    manifest = models.JSONField(default=dict)
    signature = models.JSONField(null=True, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="versions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    stage_changed_at = models.DateTimeField(auto_now_add=True)
    revision = RevisionField()

    class Meta:
        ordering = ["model_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="version_number_unique_per_model"),
            # Promotions also lock the model row; this is the last line of defence.
            models.UniqueConstraint(
                fields=["model"], condition=Q(stage=Stage.PRODUCTION), name="one_production_version_per_model"
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="version_number_positive"),
            models.CheckConstraint(condition=Q(stage__in=Stage.values), name="version_stage_valid"),
            models.CheckConstraint(condition=Q(status__in=VersionStatus.values), name="version_status_valid"),
        ]
        indexes = [
            models.Index(fields=["model", "stage"], name="version_model_stage"),
            models.Index(fields=["model", "created_at"], name="version_model_created"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"


class VersionTag(models.Model):
    """A key/value label on a version (filter ``tag=key:value``)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tag_rows")
    key = models.CharField(max_length=128)
    value = models.CharField(max_length=512)
    revision = RevisionField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="version_tag_key_unique")]
        indexes = [
            models.Index(fields=["key", "value"], name="version_tag_key_value"),
            # Covering: the ``tag=key:value`` filter probes it for each version of a page
            # without reading the table (an index-only scan on PostgreSQL).
            models.Index(fields=["version", "key", "value"], name="version_tag_cover"),
        ]


class VersionMetric(models.Model):
    """A metric value of a version, where it came from, and on which dataset.

    Older values are kept (``is_current`` false) so that a gate can say what it compared;
    exactly one value per metric name is current.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="metric_rows")
    name = models.CharField(max_length=250)
    value = models.FloatField()
    source = models.CharField(max_length=16, choices=MetricSource.choices)
    dataset_digest = models.CharField(max_length=64, blank=True)
    recorded_at = models.DateTimeField()
    is_current = models.BooleanField(default=True)
    revision = RevisionField()

    class Meta:
        ordering = ["name", "-recorded_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "name"], condition=Q(is_current=True), name="one_current_value_per_metric"
            ),
            models.CheckConstraint(condition=Q(source__in=MetricSource.values), name="metric_source_valid"),
        ]
        indexes = [
            models.Index(fields=["name", "value"], name="metric_name_value"),
            # Covering, like the tags' index, for the ``metric=f1>=0.9`` filter.
            models.Index(
                fields=["version", "name", "value"], condition=Q(is_current=True), name="metric_current_cover"
            ),
        ]


class Alias(models.Model):
    """A named pointer to a version, mirrored as an MLflow alias (``champion``, ``challenger``…)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=64)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)
    revision = RevisionField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_name_unique_per_model")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


class VersionDocument(models.Model):
    """A version's JSON as the API shows it, stored by the services that change the
    version (``registry/version_documents.py``), with the key of the state it shows.

    Not a revisioned table: writing a document does not change the key it is checked by.
    """

    version = models.OneToOneField(ModelVersion, primary_key=True, on_delete=models.CASCADE, related_name="document")
    key = models.TextField()
    body = models.TextField()


class ApiToken(models.Model):
    """A bearer token for CI, scripts and workers. Only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=128, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class IdempotencyRecord(models.Model):
    """The first response to a creating call, replayed for a retry with the same key.

    A row with no ``status_code`` is a request still in flight: a concurrent retry with
    the same key gets 409 instead of creating twice.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=1024)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")]


class LoginThrottle(models.Model):
    """Failed web logins of one user name from one address, and the lockout they led to.

    Keyed by user name and address together, so that someone guessing a password from
    one address locks only that address out of that account, never its owner elsewhere.
    """

    username = models.CharField(max_length=150)
    ip = models.GenericIPAddressField()
    failures = models.PositiveIntegerField(default=0)
    first_failure_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["username", "ip"], name="login_throttle_username_ip")]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip}: {self.failures} failures"
