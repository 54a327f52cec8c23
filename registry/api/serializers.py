"""One input and one output serializer per resource of API v1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Manager
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry import selectors, version_documents
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
            converter = self._to_datetime = version_documents.datetime_converter()
        return converter

    def to_representation(self, instance: ModelVersion) -> dict[str, Any]:
        selectors.version_details_load([instance])
        fast = self.__dict__.get("_fast_path")
        if fast is None:
            fast = self._fast_path = list(self.fields) == list(_VERSION_OUT_FIELDS)
        if not fast:
            # A subclass or an instance with other fields: the generic path.
            return super().to_representation(instance)
        return version_documents.version_data(instance, self._datetime_converter())

    def get_metrics(self, version: ModelVersion) -> dict[str, float]:
        return selectors.version_metrics(version)

    @extend_schema_field(MetricRecordOut(many=True))
    def get_metric_records(self, version: ModelVersion) -> list[dict[str, Any]]:
        # What MetricRecordOut(records, many=True) gives, without a serializer per version.
        return version_documents.metric_records(version, self._datetime_converter())

    def get_tags(self, version: ModelVersion) -> dict[str, str]:
        return version_documents.tags_of(version)

    def get_aliases(self, version: ModelVersion) -> list[str]:
        return version_documents.aliases_of(version)

    @extend_schema_field(VersionDatasetOut(allow_null=True))
    def get_dataset(self, version: ModelVersion) -> dict[str, str] | None:
        return version_documents.dataset_of(version)

    def get_mlflow_url(self, version: ModelVersion) -> str | None:
        return version_documents.mlflow_url(version)


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
