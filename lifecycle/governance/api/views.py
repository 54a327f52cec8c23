"""REST API v1 of the lifecycle: one small view per verb, each calling one service."""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.governance import selectors
from lifecycle.governance.api.serializers import (
    AuditRecordOut,
    ChainReportOut,
    CommentIn,
    DeliveryOut,
    ProductionAtOut,
    ProductionHistoryPageOut,
    ProductionRecordOut,
    RollbackIn,
    TransitionOut,
    TransitionRequestIn,
    WebhookCreatedOut,
    WebhookCreateIn,
    WebhookOut,
)
from lifecycle.governance.choices import DeliveryStatus
from lifecycle.governance.services import transitions as transition_services
from lifecycle.governance.services.audit import audit_verify
from lifecycle.governance.services.outbox import delivery_resend
from lifecycle.governance.services.webhooks import webhook_create
from registry import selectors as registry_selectors
from registry.api.base import ApiView, idempotent
from registry.errors import InvalidInput, NotFound


def _parse(serializer_class: type, request: Request) -> dict[str, Any]:
    data = serializer_class(data=request.data if request.data is not None else {})
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class TransitionRequestView(ApiView):
    """Request a stage change for a version; list the version's requests."""

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-created_at", "-id")

    @extend_schema(responses=TransitionOut(many=True))
    def get(self, request: Request, name: str, version: int) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)
        qs = selectors.transitions_visible_to(request.user).filter(version=found)
        return self.paginate(request, qs, lambda page: TransitionOut(page, many=True).data)

    @extend_schema(request=TransitionRequestIn, responses={201: TransitionOut})
    def post(self, request: Request, name: str, version: int) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)

        def create(_: str | None) -> Response:
            data = _parse(TransitionRequestIn, request)
            transition = transition_services.transition_request(
                version=found, to=data["to"], reason=data.get("reason", ""), actor=request.user
            )
            return Response(TransitionOut(transition).data, status=status.HTTP_201_CREATED)

        return idempotent(request, create)


class TransitionListView(ApiView):
    """The approvals inbox: ``?status=pending``, ``?model=``."""

    query_params_allowed = frozenset({"status", "model"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-created_at", "-id")

    @extend_schema(
        parameters=[OpenApiParameter("status", str), OpenApiParameter("model", str)],
        responses=TransitionOut(many=True),
    )
    def get(self, request: Request) -> Response:
        qs = selectors.transition_list(
            user=request.user, status=request.query_params.get("status"), model=request.query_params.get("model")
        )
        return self.paginate(request, qs, lambda page: TransitionOut(page, many=True).data)


class TransitionDetailView(ApiView):
    @extend_schema(responses=TransitionOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TransitionOut(selectors.transition_get(user=request.user, pk=pk)).data)


class _TransitionVerbView(ApiView):
    """Base of approve, reject, recheck and cancel: ``{comment}`` in, the transition out."""

    def act(self, transition: Any, actor: Any, comment: str) -> Any:
        raise TypeError("subclasses define act()")

    @extend_schema(request=CommentIn, responses=TransitionOut)
    def post(self, request: Request, pk: int) -> Response:
        transition = selectors.transition_get(user=request.user, pk=pk)
        comment = _parse(CommentIn, request).get("comment", "")
        result = self.act(transition, request.user, comment)
        return Response(TransitionOut(selectors.transition_get(user=request.user, pk=result.pk)).data)


class TransitionApproveView(_TransitionVerbView):
    def act(self, transition: Any, actor: Any, comment: str) -> Any:
        return transition_services.transition_approve(transition=transition, actor=actor, comment=comment)


class TransitionRejectView(_TransitionVerbView):
    def act(self, transition: Any, actor: Any, comment: str) -> Any:
        return transition_services.transition_reject(transition=transition, actor=actor, comment=comment)


class TransitionRecheckView(_TransitionVerbView):
    def act(self, transition: Any, actor: Any, comment: str) -> Any:
        return transition_services.transition_recheck(transition=transition, actor=actor)


class TransitionCancelView(_TransitionVerbView):
    def act(self, transition: Any, actor: Any, comment: str) -> Any:
        return transition_services.transition_cancel(transition=transition, actor=actor, comment=comment)


class RollbackView(ApiView):
    @extend_schema(request=RollbackIn, responses=TransitionOut)
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)

        def roll_back(_: str | None) -> Response:
            # With an Idempotency-Key a retried rollback (after a 503 or a lost answer)
            # rolls back once: the retry replays the first answer.
            data = _parse(RollbackIn, request)
            rollback = transition_services.model_rollback(
                model=model, actor=request.user, reason=data["reason"], to_version=data.get("to_version")
            )
            return Response(TransitionOut(selectors.transition_get(user=request.user, pk=rollback.pk)).data)

        return idempotent(request, roll_back)


class HistoryView(ApiView):
    """Production history; ``?at=<timestamp>`` answers which version was in production then."""

    query_params_allowed = frozenset({"at"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-started_at", "-id")

    @extend_schema(
        parameters=[OpenApiParameter("at", str, description="ISO 8601 timestamp")],
        responses=PolymorphicProxySerializer(
            component_name="ProductionHistory",
            serializers=[ProductionHistoryPageOut, ProductionAtOut],
            resource_type_field_name=None,
            many=False,
        ),
    )
    def get(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        raw = request.query_params.get("at")
        if raw is None:
            qs = selectors.production_history(model=model)
            return self.paginate(request, qs, lambda page: ProductionRecordOut(page, many=True).data)
        try:
            at = parse_datetime(raw.replace(" ", "+"))
        except ValueError:  # well formed but impossible, e.g. February 30th
            at = None
        if at is None or at.tzinfo is None:
            raise InvalidInput(
                f"at={raw!r} is not an ISO 8601 timestamp with a time zone (e.g. 2026-01-31T12:00:00Z)",
                details={"at": "not a timestamp"},
            )
        span = selectors.production_at(model=model, at=at)
        return Response(
            ProductionAtOut(
                {"at": at.isoformat(), "version": span.version.version if span else None, "record": span}
            ).data
        )


class AuditListView(ApiView):
    query_params_allowed = frozenset({"model", "actor", "action"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-id",)

    @extend_schema(
        parameters=[OpenApiParameter("model", str), OpenApiParameter("actor", str), OpenApiParameter("action", str)],
        responses=AuditRecordOut(many=True),
    )
    def get(self, request: Request) -> Response:
        qs = selectors.audit_list(
            user=request.user,
            model=request.query_params.get("model"),
            actor=request.query_params.get("actor"),
            action=request.query_params.get("action"),
        )
        return self.paginate(request, qs, lambda page: AuditRecordOut(page, many=True).data)


class AuditVerifyView(ApiView):
    @extend_schema(responses=ChainReportOut)
    def get(self, request: Request) -> Response:
        return Response(ChainReportOut(audit_verify()).data)


class WebhookListView(ApiView):
    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-id",)

    @extend_schema(responses=WebhookOut(many=True))
    def get(self, request: Request) -> Response:
        qs = selectors.webhooks_visible_to(request.user)
        return self.paginate(request, qs, lambda page: WebhookOut(page, many=True).data)

    @extend_schema(request=WebhookCreateIn, responses={201: WebhookCreatedOut})
    def post(self, request: Request) -> Response:
        def create(_: str | None) -> Response:
            data = _parse(WebhookCreateIn, request)
            team = registry_selectors.team_get(name=data.pop("team"))
            webhook = webhook_create(actor=request.user, team=team, **data)
            return Response(WebhookCreatedOut(webhook).data, status=status.HTTP_201_CREATED)

        return idempotent(request, create)


class WebhookDetailView(ApiView):
    @extend_schema(responses=WebhookOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookOut(selectors.webhook_get(user=request.user, pk=pk)).data)


class WebhookDeliveriesView(ApiView):
    query_params_allowed = frozenset({"status"})

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-id",)

    @extend_schema(responses=DeliveryOut(many=True))
    def get(self, request: Request, pk: int) -> Response:
        webhook = selectors.webhook_get(user=request.user, pk=pk)
        qs = selectors.webhook_deliveries(webhook=webhook)
        if status_filter := request.query_params.get("status"):
            if status_filter not in DeliveryStatus.values:
                raise InvalidInput(f"unknown status {status_filter!r}", details={"status": "unknown status"})
            qs = qs.filter(status=status_filter)
        return self.paginate(request, qs, lambda page: DeliveryOut(page, many=True).data)


class DeliveryResendView(ApiView):
    @extend_schema(request=None, responses=DeliveryOut)
    def post(self, request: Request, pk: int, delivery_id: Any) -> Response:
        webhook = selectors.webhook_get(user=request.user, pk=pk)
        delivery = selectors.webhook_deliveries(webhook=webhook).filter(delivery_id=delivery_id).first()
        if delivery is None:
            raise NotFound(f"webhook {webhook.pk} has no delivery {delivery_id}")
        return Response(DeliveryOut(delivery_resend(delivery=delivery, actor=request.user)).data)
