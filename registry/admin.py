"""Django admin for every registry model; token hashes and idempotency records read-only."""

from typing import Any

from django.contrib import admin

from registry.models import (
    Alias,
    ApiToken,
    Dataset,
    IdempotencyRecord,
    Membership,
    ModelTag,
    ModelVersion,
    RegisteredModel,
    Team,
    VersionMetric,
    VersionTag,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records the application alone writes."""

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "team", "role")
    list_filter = ("role", "team")


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "format", "digest", "created_at")
    readonly_fields = ("digest", "size_bytes", "profile")
    list_filter = ("team", "format")


class ModelTagInline(admin.TabularInline):
    model = ModelTag
    extra = 0


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "task", "primary_metric", "created_at")
    list_filter = ("team", "task")
    search_fields = ("name", "description")
    inlines = [ModelTagInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """Versions change stage only through the lifecycle services, never by hand."""

    list_display = ("model", "version", "stage", "status", "digest", "created_at")
    list_filter = ("stage", "status", "model__team")
    search_fields = ("model__name", "run_id")


@admin.register(VersionTag)
class VersionTagAdmin(admin.ModelAdmin):
    list_display = ("version", "key", "value")


@admin.register(VersionMetric)
class VersionMetricAdmin(ReadOnlyAdmin):
    list_display = ("version", "name", "value", "source", "dataset_digest", "is_current", "recorded_at")
    list_filter = ("source", "is_current")


@admin.register(Alias)
class AliasAdmin(ReadOnlyAdmin):
    list_display = ("model", "name", "version", "updated_at")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "scopes", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "token_hash", "last_used_at", "created_at")

    def has_add_permission(self, request: Any) -> bool:
        # Tokens are issued with `manage.py issue_token`, which shows the plaintext once.
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ("user", "key", "method", "path", "status_code", "created_at")
