"""Input and output serializers of the lifecycle's part of API v1."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from lifecycle.governance.models import AuditRecord, ProductionRecord, Transition, Webhook, WebhookDelivery
from registry.api.serializers import StrictSerializer
from registry.choices import Stage


class TransitionRequestIn(StrictSerializer):
    to = serializers.ChoiceField(choices=Stage.choices)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class CommentIn(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class RollbackIn(StrictSerializer):
    to_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    reason = serializers.CharField(max_length=5000)


class DecisionOut(serializers.Serializer):
    user = serializers.CharField(source="user.username")
    decision = serializers.CharField()
    role = serializers.CharField()
    comment = serializers.CharField()
    created_at = serializers.DateTimeField()


class TransitionOut(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.version")
    kind = serializers.CharField()
    from_stage = serializers.CharField()
    to = serializers.CharField(source="to_stage")
    status = serializers.CharField()
    status_detail = serializers.CharField()
    reason = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username", default=None, allow_null=True)
    gates = serializers.JSONField()
    approvals = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)

    def get_approvals(self, transition: Transition) -> list[dict[str, Any]]:
        return DecisionOut(transition.decisions.all(), many=True).data


class ProductionRecordOut(serializers.Serializer):
    version = serializers.IntegerField(source="version.version")
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    ended_reason = serializers.CharField()
    started_by = serializers.CharField(source="started_by.username", default=None, allow_null=True)
    transition = serializers.IntegerField(source="transition_id", allow_null=True)

    class Meta:
        model = ProductionRecord


class AuditRecordOut(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_name")
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    model = serializers.CharField(source="model_name")
    before = serializers.JSONField()
    after = serializers.JSONField()
    reason = serializers.CharField()
    request_id = serializers.CharField()
    token = serializers.CharField(source="token_prefix")
    prev_hash = serializers.CharField()
    hash = serializers.CharField()

    class Meta:
        model = AuditRecord


class WebhookCreateIn(StrictSerializer):
    team = serializers.CharField(max_length=64)
    url = serializers.CharField(max_length=1024)
    events = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    secret = serializers.CharField(required=False, max_length=128)
    description = serializers.CharField(required=False, allow_blank=True, max_length=256)


class WebhookOut(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.name")
    url = serializers.CharField()
    events = serializers.JSONField()
    active = serializers.BooleanField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()

    class Meta:
        model = Webhook


class WebhookCreatedOut(WebhookOut):
    """A new webhook, with its signing secret: shown this once."""

    secret = serializers.CharField()


class DeliveryOut(serializers.Serializer):
    delivery_id = serializers.UUIDField()
    event = serializers.CharField(source="event.event_type")
    event_id = serializers.IntegerField(source="event.id")
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        model = WebhookDelivery


class ProductionHistoryPageOut(serializers.Serializer):
    """A page of the production history, newest first."""

    results = ProductionRecordOut(many=True)
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)


class ProductionAtOut(serializers.Serializer):
    """Which version was in production at a moment (``?at=``)."""

    at = serializers.CharField(help_text="the moment asked about, ISO 8601")
    version = serializers.IntegerField(allow_null=True)
    record = ProductionRecordOut(allow_null=True)


class ChainReportOut(serializers.Serializer):
    valid = serializers.BooleanField()
    records = serializers.IntegerField()
    first_bad = serializers.IntegerField(allow_null=True)
    problem = serializers.CharField(allow_null=True)
