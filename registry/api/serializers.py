"""One input and one output serializer per resource of API v1."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from registry import selectors
from registry.choices import DatasetFormat, TaskType
from registry.models import Dataset, ModelVersion, RegisteredModel

NAME_FIELD = {"max_length": 128}


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming them, instead of silently dropping them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
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
    primary_metric = serializers.CharField()
    policy = serializers.JSONField()
    dataset = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_dataset(self, model: RegisteredModel) -> str | None:
        return model.dataset.name if model.dataset_id else None

    def get_tags(self, model: RegisteredModel) -> dict[str, str]:
        return {row.key: row.value for row in model.tag_rows.all()}


class ModelDetailOut(ModelOut):
    stages = serializers.SerializerMethodField()
    production = serializers.SerializerMethodField()

    def get_stages(self, model: RegisteredModel) -> dict[str, int]:
        return selectors.model_stage_summary(model)

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


class VersionOut(serializers.Serializer):
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
    parent_version = serializers.IntegerField(source="parent.version", default=None)
    dataset = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    stage_changed_at = serializers.DateTimeField()
    mlflow_url = serializers.SerializerMethodField()

    def get_metrics(self, version: ModelVersion) -> dict[str, float]:
        return selectors.version_metrics(version)

    def get_metric_records(self, version: ModelVersion) -> list[dict[str, Any]]:
        return MetricRecordOut(selectors.version_metric_records(version), many=True).data

    def get_tags(self, version: ModelVersion) -> dict[str, str]:
        return {row.key: row.value for row in version.tag_rows.all()}

    def get_aliases(self, version: ModelVersion) -> list[str]:
        return sorted(alias.name for alias in version.aliases.all())

    def get_dataset(self, version: ModelVersion) -> dict[str, str] | None:
        if not version.dataset_id:
            return None
        return {"name": version.dataset.name, "digest": version.dataset.digest}

    def get_mlflow_url(self, version: ModelVersion) -> str | None:
        base = settings.MLFLOW_UI_URL
        return f"{base.rstrip('/')}/#/models/{version.model.name}/versions/{version.version}" if base else None


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
