"""REST API v1 of monitor alerts and drift windows::

GET  models/{name}/alerts/          ?status=firing|acknowledged|resolved
POST alerts/{id}/acknowledge/       {comment?}   (approver)
POST alerts/{id}/resolve/           {comment?}   (approver)
GET  models/{name}/drift/           ?version=&feature=&deployment=
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.monitoring.choices import AlertStatus
from lifecycle.monitoring.selectors import alerts as selectors
from lifecycle.monitoring.services import alerts as services
from registry import selectors as registry_selectors
from registry.api.base import ApiView
from registry.api.serializers import StrictSerializer


class AlertOut(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.version")
    deployment = serializers.IntegerField(source="deployment_id", allow_null=True)
    rule_index = serializers.IntegerField()
    rule = serializers.JSONField()
    status = serializers.CharField()
    detail = serializers.CharField()
    observed = serializers.FloatField(allow_null=True)
    features = serializers.JSONField()
    occurrences = serializers.IntegerField()
    fired_at = serializers.DateTimeField()
    last_fired_at = serializers.DateTimeField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", allow_null=True, default=None)
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolved_by = serializers.CharField(source="resolved_by.username", allow_null=True, default=None)
    resolution = serializers.CharField()
    action = serializers.CharField()
    action_state = serializers.CharField()
    action_result = serializers.JSONField()
    action_at = serializers.DateTimeField(allow_null=True)
    action_attempts = serializers.IntegerField()
    action_lease_until = serializers.DateTimeField(allow_null=True)


class AlertQuery(StrictSerializer):
    status = serializers.ChoiceField(choices=AlertStatus.choices, required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1)


class AlertCommentIn(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class DriftOut(serializers.Serializer):
    feature = serializers.CharField()
    kind = serializers.CharField()
    rows = serializers.IntegerField()
    psi = serializers.FloatField(allow_null=True)
    ks = serializers.FloatField(allow_null=True)
    ks_pvalue = serializers.FloatField(allow_null=True)
    chi2 = serializers.FloatField(allow_null=True)
    chi2_pvalue = serializers.FloatField(allow_null=True)
    js = serializers.FloatField(allow_null=True)
    missing_share = serializers.FloatField()
    out_of_range_share = serializers.FloatField()
    live_counts = serializers.JSONField()
    labels = serializers.JSONField()


class WindowOut(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(source="version.version")
    deployment = serializers.IntegerField(source="deployment_id", allow_null=True)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rows = serializers.IntegerField()
    labels = serializers.IntegerField()
    latency_p95_ms = serializers.FloatField(allow_null=True)
    error_rate = serializers.FloatField(allow_null=True)
    metrics = serializers.JSONField()
    schema = serializers.JSONField()
    reference = serializers.CharField(source="reference.digest", allow_null=True, default=None)
    drift = DriftOut(many=True)


class DriftQuery(StrictSerializer):
    version = serializers.IntegerField(required=False, min_value=1)
    feature = serializers.CharField(required=False, max_length=256)
    deployment = serializers.IntegerField(required=False, min_value=1)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1)


class AlertListView(ApiView):
    query_params_allowed = frozenset({"status"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-fired_at", "-id")

    @extend_schema(parameters=[AlertQuery], responses=AlertOut(many=True))
    def get(self, request: Request, name: str) -> Response:
        query = AlertQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        model = registry_selectors.model_get(user=request.user, name=name)
        qs = selectors.alert_list(model=model, status=query.validated_data.get("status"))
        return self.paginate(request, qs, lambda page: AlertOut(page, many=True).data)


class _AlertVerbView(ApiView):
    verb = staticmethod(services.alert_acknowledge)

    @extend_schema(request=AlertCommentIn, responses=AlertOut)
    def post(self, request: Request, pk: int) -> Response:
        data = AlertCommentIn(data=request.data)
        data.is_valid(raise_exception=True)
        alert = selectors.alert_get(user=request.user, pk=pk)
        return Response(AlertOut(self.verb(alert=alert, actor=request.user, **data.validated_data)).data)


class AlertAcknowledgeView(_AlertVerbView):
    verb = staticmethod(services.alert_acknowledge)


class AlertResolveView(_AlertVerbView):
    verb = staticmethod(services.alert_resolve)


class DriftView(ApiView):
    query_params_allowed = frozenset({"version", "feature", "deployment"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-start", "-id")

    @extend_schema(parameters=[DriftQuery], responses=WindowOut(many=True))
    def get(self, request: Request, name: str) -> Response:
        query = DriftQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        model = registry_selectors.model_get(user=request.user, name=name)
        qs = selectors.drift_windows(
            model=model,
            version=query.validated_data.get("version"),
            feature=query.validated_data.get("feature"),
            deployment_id=query.validated_data.get("deployment"),
        )
        return self.paginate(request, qs, lambda page: WindowOut(page, many=True).data)
