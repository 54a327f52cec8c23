"""REST API v1 of the prediction log::

    POST models/{name}/predictions/    [{request_id, version, inputs, outputs, ts?, latency_ms?, status?, deployment?}]
    POST models/{name}/feedback/       [{request_id, label, row?}]
    GET  models/{name}/live-metrics/   ?version=&window=1h&start=&end=

A batch body is a JSON list (or ``{"records": [...]}`` / ``{"labels": [...]}``); a batch
of records may name its deployment once (``{"records": [...], "deployment": "web"}``), a
record its own (``deployment``: the id as a number or the name as a string;
``deployment_id``: the id). Writing
needs the developer role on the model's team; a token needs the ``write`` or the
``serve`` scope (the scope a serving system outside ModelGate already holds)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.monitoring.selectors import predictions as selectors
from lifecycle.monitoring.services import predictions as services
from registry import selectors as registry_selectors
from registry.api.base import ApiView
from registry.api.serializers import StrictSerializer
from registry.choices import Role, TokenScope
from registry.errors import InvalidInput
from registry.models import ApiToken
from registry.permissions import require_role

_WINDOW = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class IngestScopePermission(permissions.BasePermission):
    """A token needs ``write`` or ``serve`` to send predictions or labels."""

    message = "this token lacks the 'write' or 'serve' scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        return bool({TokenScope.WRITE, TokenScope.SERVE} & set(token.scopes or []))


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "maxLength": 64}]})
class DeploymentRefField(serializers.Field):
    """A deployment of the model: its id (a JSON number) or its name (a JSON string)."""

    default_error_messages = {"invalid": "a deployment is its id (a number) or its name (a string)"}

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        if isinstance(data, int):
            if data < 1:
                self.fail("invalid")
            return data
        if not data.strip() or len(data) > 64:
            self.fail("invalid")
        return data.strip()

    def to_representation(self, value: Any) -> Any:
        return value


class PredictionRecordIn(StrictSerializer):
    request_id = serializers.CharField(max_length=128)
    version = serializers.IntegerField(min_value=1)
    inputs = serializers.JSONField()
    outputs = serializers.JSONField(required=False, allow_null=True, default=None)
    ts = serializers.DateTimeField(required=False, allow_null=True, default=None)
    latency_ms = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.0)
    status = serializers.IntegerField(required=False, default=200, min_value=100, max_value=599)
    deployment_id = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    deployment = DeploymentRefField(required=False, allow_null=True, default=None)


class LabelIn(StrictSerializer):
    request_id = serializers.CharField(max_length=128)
    label = serializers.JSONField()
    row = serializers.IntegerField(required=False, default=0, min_value=0)

    def validate_label(self, value: Any) -> Any:
        if value is None or isinstance(value, dict | list):
            raise serializers.ValidationError("a label is a number, a string or a boolean")
        return value


def _items(data: Any, key: str, *, options: frozenset[str] = frozenset()) -> list[Any]:
    """The list a batch body carries, or ``InvalidInput``; ``options``: the other keys a
    body object may hold beside the list."""
    if isinstance(data, dict) and key in data and set(data) <= {key, *options}:
        data = data[key]
    if not isinstance(data, list):
        raise InvalidInput(f"send a JSON list of {key}", details={key: "not a list"})
    if not data:
        raise InvalidInput(f"send at least one of {key}", details={key: "empty"})
    limit = settings.MODELGATE_PREDICTION_BATCH_MAX
    if len(data) > limit:
        raise InvalidInput(f"at most {limit} {key} per request", details={key: f"more than {limit}"})
    return data


def _validated(serializer: type[StrictSerializer], items: list[Any], key: str) -> list[dict[str, Any]]:
    found = serializer(data=items, many=True)
    if found.is_valid():
        return list(found.validated_data)
    errors = found.errors
    by_item = errors.items() if isinstance(errors, dict) else enumerate(errors)
    details = {
        f"{key}[{i}].{field}": "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        for i, item in by_item
        if isinstance(item, dict)
        for field, messages in item.items()
    }
    if not details:
        raise InvalidInput(f"invalid {key}", details={key: str(errors)})
    first = next(iter(details))
    raise InvalidInput(f"invalid {first}: {details[first]}", details=details)


class PredictionBatchView(ApiView):
    """Prediction records of a model served outside ModelGate, into the prediction log."""

    permission_classes = [permissions.IsAuthenticated, IngestScopePermission]

    @extend_schema(request=PredictionRecordIn(many=True), responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        # Refuse a caller without the role before judging the body: it learns nothing of it.
        require_role(request.user, model.team, Role.DEVELOPER, action="logging predictions")
        records = _validated(
            PredictionRecordIn, _items(request.data, "records", options=frozenset({"deployment"})), "records"
        )
        deployment = None
        if isinstance(request.data, dict) and request.data.get("deployment") is not None:
            field = DeploymentRefField()
            try:
                deployment = field.run_validation(request.data["deployment"])
            except serializers.ValidationError as exc:
                raise InvalidInput(
                    f"invalid deployment: {exc.detail[0]}", details={"deployment": str(exc.detail[0])}
                ) from exc
        written = services.predictions_ingest(actor=request.user, model=model, records=records, deployment=deployment)
        return Response(written, status=status.HTTP_202_ACCEPTED)


class FeedbackView(ApiView):
    """Ground-truth labels, joined to logged predictions by request id (late ones too)."""

    permission_classes = [permissions.IsAuthenticated, IngestScopePermission]

    @extend_schema(request=LabelIn(many=True), responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        require_role(request.user, model.team, Role.DEVELOPER, action="sending ground truth")
        labels = _validated(LabelIn, _items(request.data, "labels"), "labels")
        written = services.feedback_ingest(actor=request.user, model=model, labels=labels)
        return Response(written, status=status.HTTP_202_ACCEPTED)


def _window(raw: str | None) -> timedelta:
    match = _WINDOW.match(raw or "1d")
    if match is None or int(match[1]) == 0:
        raise InvalidInput(
            f"window {raw!r} is not a duration such as 15m, 1h or 7d", details={"window": "not a duration"}
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _moment(raw: str | None, name: str, default: datetime) -> datetime:
    if raw is None:
        return default
    moment = parse_datetime(raw.replace(" ", "+"))
    if moment is None:
        raise InvalidInput(f"{name} {raw!r} is not an ISO 8601 time", details={name: "not a time"})
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _version(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"version {raw!r} is not a version number", details={"version": "not a version number"})
    return int(raw)


class LiveMetricsView(ApiView):
    """The task's metrics over the labelled predictions, per version and window."""

    query_params_allowed = frozenset({"version", "window", "start", "end"})

    @extend_schema(
        parameters=[
            OpenApiParameter("version", int, description="one version (default: every version)"),
            OpenApiParameter("window", str, description="window length: 15m, 1h, 1d… (default 1d)"),
            OpenApiParameter("start", OpenApiTypes.DATETIME, description="default: 7 windows before end"),
            OpenApiParameter("end", OpenApiTypes.DATETIME, description="default: now"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        params = request.query_params
        step = _window(params.get("window"))
        end = _moment(params.get("end"), "end", timezone.now())
        start = _moment(params.get("start"), "start", end - 7 * step)
        if end <= start:
            raise InvalidInput("end must be after start", details={"end": "not after start"})
        version = _version(params.get("version"))
        windows = selectors.live_metrics_windows(model=model, version=version, start=start, end=end, step=step)
        return Response(
            {
                "model": model.name,
                "task": model.task,
                "window": params.get("window") or "1d",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "results": [{**w, "start": w["start"].isoformat(), "end": w["end"].isoformat()} for w in windows],
            }
        )
