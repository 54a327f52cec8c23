"""One input and one output serializer per resource of API v1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Manager
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from registry import selectors
from registry.choices import DatasetFormat, ModelStage, TaskType
from registry.models import Dataset, ModelVersion, RegisteredModel

NAME_FIELD = {"max_length": 128}


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming them, instead of silently dropping them,
    and numbers or booleans where text is expected, which DRF would turn into strings."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
            not_text = sorted(
                name
                for name, value in data.items()
                if isinstance(self.fields[name], serializers.CharField)
                and value is not None
                and not isinstance(value, str)
            )
            if not_text:
                raise serializers.ValidationError({name: ["expected a string"] for name in not_text})
        return super().to_internal_value(data)


class ModelCreateIn(StrictSerializer):
    name = serializers.CharField(**NAME_FIELD)
    team = serializers.CharField(max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    task = serializers.ChoiceField(choices=TaskType.choices, required=False, default=TaskType.CLASSIFICATION)
    primary_metric = serializers.CharField(required=False, allow_blank=True, max_length=250)
    policy = serializers.JSONField(required=False, allow_null=True)
    dataset = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=128)
    tags = serializers.DictField(child=serializers.CharField(max_length=512, allow_blank=True), required=False)
    # "design" starts the model in the design stage (see docs/design.md); the default,
    # "active", lets versions be registered at once.
    stage = serializers.ChoiceField(choices=ModelStage.choices, required=False, default=ModelStage.ACTIVE)
    # The model card, stored with the model in one transaction (docs/design.md).
    design = serializers.JSONField(required=False, allow_null=True)


class ModelUpdateIn(StrictSerializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    task = serializers.ChoiceField(choices=TaskType.choices, required=False)
    primary_metric = serializers.CharField(required=False, allow_blank=True, max_length=250)
    policy = serializers.JSONField(required=False, allow_null=True)
    dataset = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=128)
    tags = serializers.DictField(child=serializers.CharField(max_length=512, allow_blank=True), required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ModelOut(serializers.Serializer):
    name = serializers.CharField()
    team = serializers.CharField(source="team.name")
    description = serializers.CharField()
    task = serializers.CharField()
    stage = serializers.CharField()
    primary_metric = serializers.CharField()
    policy = serializers.JSONField()
    dataset = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_dataset(self, model: RegisteredModel) -> str | None:
        return model.dataset.name if model.dataset_id else None

    def get_tags(self, model: RegisteredModel) -> dict[str, str]:
        return {row.key: row.value for row in model.tag_rows.all()}


class ProductionOut(serializers.Serializer):
    """The model's version in production, and since when."""

    version = serializers.IntegerField()
    since = serializers.DateTimeField()
    digest = serializers.CharField()


class ModelDetailOut(ModelOut):
    stages = serializers.SerializerMethodField()
    production = serializers.SerializerMethodField()

    def get_stages(self, model: RegisteredModel) -> dict[str, int]:
        return selectors.model_stage_summary(model)

    @extend_schema_field(ProductionOut(allow_null=True))
    def get_production(self, model: RegisteredModel) -> dict[str, Any] | None:
        version = selectors.model_production_version(model)
        if version is None:
            return None
        return {"version": version.version, "since": version.stage_changed_at, "digest": version.digest}


class VersionCreateIn(StrictSerializer):
    run_id = serializers.CharField(required=False, allow_blank=False, max_length=64)
    source = serializers.CharField(required=False, allow_blank=False, max_length=1024)
    artifact_path = serializers.CharField(required=False, max_length=256)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    tags = serializers.DictField(child=serializers.CharField(max_length=512, allow_blank=True), required=False)
    parent_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    dataset = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=128)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("run_id")) == bool(attrs.get("source")):
            raise serializers.ValidationError({"run_id": ["give exactly one of run_id or source"]})
        return attrs


class MetricRecordOut(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.FloatField()
    source = serializers.CharField()
    dataset_digest = serializers.CharField(allow_null=True)
    recorded_at = serializers.DateTimeField()


class VersionDatasetOut(serializers.Serializer):
    """The dataset a version was trained or evaluated on, with its digest then."""

    name = serializers.CharField()
    digest = serializers.CharField()


# A shared, stateless field for the hand-built representation of versions.
_DATETIME = serializers.DateTimeField()
_UNSET = object()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _datetime_converter() -> Callable[[Any], str | None]:
    """What ``serializers.DateTimeField().to_representation`` does, faster for the usual
    case (aware datetimes shown in UTC, ISO 8601), and the field itself otherwise."""
    if not (
        settings.USE_TZ
        and api_settings.DATETIME_FORMAT.lower() == ISO_8601
        and timezone.get_current_timezone_name() == "UTC"
    ):
        return _DATETIME.to_representation

    def to_utc_iso(value: Any) -> str | None:
        if not isinstance(value, datetime) or value.tzinfo is None:
            return _DATETIME.to_representation(value)
        text = value.astimezone(UTC).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return to_utc_iso


class VersionListOut(serializers.ListSerializer):
    """A page of versions: their tags, metrics and aliases are loaded for the whole page
    in three queries before any version is serialized."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        items = list(data.all() if isinstance(data, Manager) else data)
        selectors.version_details_load(items)
        return [self.child.to_representation(item) for item in items]


class VersionOut(serializers.Serializer):
    """One model version."""

    # The declared fields define the schema; ``to_representation`` builds the same output
    # directly: DRF's generic per-field path, with a nested serializer per version for the
    # metric records, cost several times the rest of a list request.
    name = serializers.CharField(source="model.name")
    version = serializers.IntegerField()
    stage = serializers.CharField()
    status = serializers.CharField()
    description = serializers.CharField()
    run_id = serializers.CharField()
    source = serializers.CharField()
    artifact_uri = serializers.CharField()
    digest = serializers.CharField()
    size_bytes = serializers.IntegerField()
    signature = serializers.JSONField()
    metrics = serializers.SerializerMethodField()
    metric_records = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField()
    parent_version = serializers.IntegerField(source="parent.version", default=None, allow_null=True)
    dataset = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    stage_changed_at = serializers.DateTimeField()
    mlflow_url = serializers.SerializerMethodField()

    class Meta:
        list_serializer_class = VersionListOut

    def _datetime_converter(self) -> Callable[[Any], str | None]:
        # Once per serializer (a response): the time zone and settings it depends on do not
        # change within one, and looking them up is a context-local read per call.
        converter = self.__dict__.get("_to_datetime")
        if converter is None:
            converter = self._to_datetime = _datetime_converter()
        return converter

    def to_representation(self, instance: ModelVersion) -> dict[str, Any]:
        selectors.version_details_load([instance])
        fast = self.__dict__.get("_fast_path")
        if fast is None:
            fast = self._fast_path = list(self.fields) == list(_VERSION_OUT_FIELDS)
        if not fast:
            # A subclass or an instance with other fields: the generic path.
            return super().to_representation(instance)
        version = instance
        to_datetime = self._datetime_converter()
        return {
            "name": _text(version.model.name),
            "version": int(version.version),
            "stage": _text(version.stage),
            "status": _text(version.status),
            "description": _text(version.description),
            "run_id": _text(version.run_id),
            "source": _text(version.source),
            "artifact_uri": _text(version.artifact_uri),
            "digest": _text(version.digest),
            "size_bytes": None if version.size_bytes is None else int(version.size_bytes),
            "signature": version.signature,
            "metrics": self.get_metrics(version),
            "metric_records": self.get_metric_records(version),
            "tags": self.get_tags(version),
            "aliases": self.get_aliases(version),
            "parent_version": self._parent_version(version),
            "dataset": self.get_dataset(version),
            "created_by": self._created_by(version),
            "created_at": to_datetime(version.created_at),
            "updated_at": to_datetime(version.updated_at),
            "stage_changed_at": to_datetime(version.stage_changed_at),
            "mlflow_url": self.get_mlflow_url(version),
        }

    @staticmethod
    def _parent_version(version: ModelVersion) -> int | None:
        number = getattr(version, "out_parent_version", _UNSET)  # selectors' annotation
        if number is _UNSET:
            number = version.parent.version if version.parent_id else None
        return None if number is None else int(number)

    @staticmethod
    def _created_by(version: ModelVersion) -> str | None:
        username = getattr(version, "out_created_by", _UNSET)
        if username is _UNSET:
            username = version.created_by.username if version.created_by_id else None
        return _text(username)

    def get_metrics(self, version: ModelVersion) -> dict[str, float]:
        return selectors.version_metrics(version)

    @extend_schema_field(MetricRecordOut(many=True))
    def get_metric_records(self, version: ModelVersion) -> list[dict[str, Any]]:
        # What MetricRecordOut(records, many=True) gives, without a serializer per version.
        to_datetime = self._datetime_converter()
        return [
            {
                "name": _text(record["name"]),
                "value": float(record["value"]),
                "source": _text(record["source"]),
                "dataset_digest": _text(record["dataset_digest"]),
                "recorded_at": to_datetime(record["recorded_at"]),
            }
            for record in selectors.version_metric_records(version)
        ]

    def get_tags(self, version: ModelVersion) -> dict[str, str]:
        tag_map = getattr(version, "tag_map", None)
        if tag_map is not None:
            return dict(tag_map)
        return {row.key: row.value for row in version.tag_rows.all()}

    def get_aliases(self, version: ModelVersion) -> list[str]:
        names = getattr(version, "alias_names", None)
        if names is not None:
            return list(names)
        return sorted(alias.name for alias in version.aliases.all())

    @extend_schema_field(VersionDatasetOut(allow_null=True))
    def get_dataset(self, version: ModelVersion) -> dict[str, str] | None:
        if not version.dataset_id:
            return None
        name = getattr(version, "out_dataset_name", _UNSET)  # selectors' annotations
        if name is not _UNSET:
            return {"name": name, "digest": version.out_dataset_digest}
        return {"name": version.dataset.name, "digest": version.dataset.digest}

    def get_mlflow_url(self, version: ModelVersion) -> str | None:
        base = settings.MLFLOW_UI_URL
        return f"{base.rstrip('/')}/#/models/{version.model.name}/versions/{version.version}" if base else None


# The keys ``VersionOut.to_representation`` builds, in order; checked at import so that
# a field added to VersionOut cannot be silently left out of its output.
_VERSION_OUT_FIELDS = {
    name: None
    for name in (
        "name",
        "version",
        "stage",
        "status",
        "description",
        "run_id",
        "source",
        "artifact_uri",
        "digest",
        "size_bytes",
        "signature",
        "metrics",
        "metric_records",
        "tags",
        "aliases",
        "parent_version",
        "dataset",
        "created_by",
        "created_at",
        "updated_at",
        "stage_changed_at",
        "mlflow_url",
    )
}.keys()
if list(VersionOut._declared_fields) != list(_VERSION_OUT_FIELDS):
    raise ImproperlyConfigured("VersionOut's declared fields changed: update VersionOut.to_representation to match")


class AliasSetIn(StrictSerializer):
    version = serializers.IntegerField(min_value=1)


class DatasetCreateIn(StrictSerializer):
    name = serializers.CharField(**NAME_FIELD)
    team = serializers.CharField(max_length=64)
    uri = serializers.CharField(max_length=1024)
    format = serializers.ChoiceField(choices=DatasetFormat.choices, required=False)
    target = serializers.CharField(required=False, allow_blank=True, max_length=256)


class DatasetOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    team = serializers.CharField(source="team.name")
    uri = serializers.CharField()
    format = serializers.CharField()
    target = serializers.CharField()
    digest = serializers.CharField()
    size_bytes = serializers.IntegerField()
    profile = serializers.JSONField()
    created_at = serializers.DateTimeField()

    class Meta:
        model = Dataset


class ArtifactFileOut(serializers.Serializer):
    path = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.CharField(
        allow_null=True, help_text="presigned download URL; null where the artifact is not on S3"
    )


class VersionDownloadOut(serializers.Serializer):
    """Where to download each file of a version's artifact, and the digests to check them by."""

    artifact_uri = serializers.CharField()
    digest = serializers.CharField()
    expires_in = serializers.IntegerField(allow_null=True, help_text="seconds the URLs stay valid; null without URLs")
    files = ArtifactFileOut(many=True)


class VersionVerifyOut(serializers.Serializer):
    """A version's artifact read again and compared with its manifest from registration."""

    expected_digest = serializers.CharField()
    valid = serializers.BooleanField()
    digest = serializers.CharField(help_text="the digest of the artifact as it is now")
    changed = serializers.ListField(child=serializers.CharField(), help_text="files whose content changed")
    missing = serializers.ListField(child=serializers.CharField(), help_text="files no longer there")
    unexpected = serializers.ListField(child=serializers.CharField(), help_text="files added since")


class HealthChecksOut(serializers.Serializer):
    """Each dependency: ``"ok"`` or why it is not."""

    database = serializers.CharField()
    broker = serializers.CharField()
    mlflow = serializers.CharField()
    artifacts = serializers.CharField()


class HealthOut(serializers.Serializer):
    status = serializers.CharField(help_text='"ok" when every check is, else "degraded"')
    checks = HealthChecksOut()


class ConfigOut(serializers.Serializer):
    """Where clients log runs and where artifacts live."""

    mlflow_tracking_uri = serializers.CharField()
    artifact_store = serializers.CharField()
    s3_endpoint_url = serializers.CharField(allow_null=True)
    api_version = serializers.CharField()
