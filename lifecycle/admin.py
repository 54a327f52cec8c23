"""Django admin for the lifecycle: audit, history and deliveries are read-only."""

from typing import Any

from django.contrib import admin

from lifecycle.derivations.models import Derivation
from lifecycle.design.models import DesignCard, DesignCardRevision
from lifecycle.governance.models import (
    Approval,
    AuditRecord,
    OutboxEvent,
    ProductionRecord,
    Transition,
    Webhook,
    WebhookDelivery,
)
from registry.admin import ReadOnlyAdmin


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    can_delete = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Transition)
class TransitionAdmin(ReadOnlyAdmin):
    """Transitions change only through the lifecycle services."""

    list_display = ("id", "model", "version", "from_stage", "to_stage", "status", "requested_by", "created_at")
    list_filter = ("status", "to_stage", "kind")
    inlines = [ApprovalInline]


@admin.register(ProductionRecord)
class ProductionRecordAdmin(ReadOnlyAdmin):
    list_display = ("model", "version", "started_at", "ended_at", "ended_reason")


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "at", "actor_name", "action", "object_type", "object_id", "model_name")
    list_filter = ("action",)
    search_fields = ("actor_name", "object_id", "model_name", "request_id")


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "event_type", "status", "attempts", "next_attempt_at", "created_at")
    list_filter = ("kind", "status")


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ("id", "team", "url", "events", "active")
    exclude = ("secret",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("delivery_id", "webhook", "status", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("status",)


@admin.register(Derivation)
class DerivationAdmin(ReadOnlyAdmin):
    list_display = ("id", "model", "parent", "version", "method", "state", "job", "created_at")
    list_filter = ("method", "state")


@admin.register(DesignCard)
class DesignCardAdmin(ReadOnlyAdmin):
    """Model cards change only through ``design_card_update`` (revisions, audit)."""

    list_display = ("model", "revision", "updated_by", "updated_at", "completed_at")
    search_fields = ("model__name",)


@admin.register(DesignCardRevision)
class DesignCardRevisionAdmin(ReadOnlyAdmin):
    list_display = ("card", "number", "actor", "created_at", "reason")
    search_fields = ("card__model__name",)
