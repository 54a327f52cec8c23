"""REST API v1 of the design stage: a model's card (read, replace, revisions, Markdown
export, per version too) and the transition out of design."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from lifecycle.design import selectors, services
from lifecycle.design.selectors import DesignState
from registry import selectors as registry_selectors
from registry.api.base import ApiView
from registry.api.serializers import ModelDetailOut, StrictSerializer
from registry.errors import InvalidInput


class DesignCardIn(StrictSerializer):
    card = serializers.JSONField()
    revision = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class DesignCompleteIn(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class DesignOut(serializers.Serializer):
    model = serializers.CharField(source="model.name")
    stage = serializers.CharField(source="model.stage")
    revision = serializers.IntegerField()
    card = serializers.JSONField()
    complete = serializers.BooleanField()
    missing = serializers.ListField(child=serializers.CharField())
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)
    completed_by = serializers.CharField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    completed_revision = serializers.IntegerField(allow_null=True)


class DesignRevisionOut(serializers.Serializer):
    number = serializers.IntegerField()
    actor = serializers.CharField(source="actor.username", default=None, allow_null=True)
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    diff = serializers.JSONField()
    card = serializers.JSONField(source="content")


def _design_out(state: DesignState) -> dict[str, Any]:
    return DesignOut(state).data


def _if_match(request: Request) -> int | None:
    """The revision an ``If-Match`` header names (``"3"``, ``W/"3"`` or ``3``)."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    text = raw.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidInput(f"If-Match {raw!r} is not a card revision number", details={"If-Match": "not a revision"})
    return int(text)


class DesignView(ApiView):
    """A model's card: read it (viewers), replace it (developers) as a new revision.

    The response carries the revision as an ``ETag``; a PUT gives it back in ``revision``
    or ``If-Match``, and a card changed meanwhile is a 409."""

    @extend_schema(responses=DesignOut)
    def get(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        state = selectors.design_state(model=model)
        return Response(_design_out(state), headers={"ETag": f'"{state.revision}"'})

    @extend_schema(
        request=DesignCardIn,
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description="the revision edited")],
        responses=DesignOut,
    )
    def put(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        data = DesignCardIn(data=request.data if request.data is not None else {})
        data.is_valid(raise_exception=True)
        body = data.validated_data
        header = _if_match(request)
        revision = body.get("revision")
        if header is not None and revision is not None and header != revision:
            raise InvalidInput(
                f"If-Match names revision {header} but the body names {revision}",
                details={"revision": "disagrees with If-Match"},
            )
        services.design_card_update(
            model=model,
            card=body["card"],
            actor=request.user,
            expected_revision=header if header is not None else revision,
            reason=body["reason"],
        )
        state = selectors.design_state(model=model)
        return Response(_design_out(state), headers={"ETag": f'"{state.revision}"'})


class DesignCompleteView(ApiView):
    """Leave design: 409 naming the missing card fields while the card is incomplete."""

    @extend_schema(request=DesignCompleteIn, responses=ModelDetailOut)
    def post(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        data = DesignCompleteIn(data=request.data if request.data is not None else {})
        data.is_valid(raise_exception=True)
        services.model_design_complete(model=model, actor=request.user, reason=data.validated_data["reason"])
        return Response(ModelDetailOut(registry_selectors.model_get(user=request.user, name=name)).data)


class DesignRevisionsView(ApiView):
    """The card's revisions, newest first, each with its diff."""

    def cursor_ordering(self, request: Request) -> tuple[str, ...]:
        return ("-number",)

    @extend_schema(responses=DesignRevisionOut(many=True))
    def get(self, request: Request, name: str) -> Response:
        model = registry_selectors.model_get(user=request.user, name=name)
        qs = selectors.design_card_revisions(model=model)
        return self.paginate(request, qs, lambda page: DesignRevisionOut(page, many=True).data)


# The path names the format (``card.md``); the renderers exist so that an error is JSON,
# not so that a caller can choose: the schema offers no ``?format=``.
NO_FORMAT_PARAMETER = OpenApiParameter("format", exclude=True)


class MarkdownRenderer(BaseRenderer):
    """``text/markdown``; an error (a dict) is rendered as the usual JSON error body."""

    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data.encode() if isinstance(data, str) else json.dumps(data).encode()


def _markdown(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


class DesignMarkdownView(ApiView):
    """The model card as Markdown."""

    renderer_classes = [JSONRenderer, MarkdownRenderer]

    @extend_schema(responses={(200, "text/markdown"): OpenApiTypes.STR}, parameters=[NO_FORMAT_PARAMETER])
    def get(self, request: Request, name: str) -> HttpResponse:
        model = registry_selectors.model_get(user=request.user, name=name)
        return _markdown(selectors.design_card_markdown(model=model), f"{model.name}-card.md")


class VersionCardMarkdownView(ApiView):
    """The model card rendered for one version, beside its metrics and its budget."""

    renderer_classes = [JSONRenderer, MarkdownRenderer]

    @extend_schema(responses={(200, "text/markdown"): OpenApiTypes.STR}, parameters=[NO_FORMAT_PARAMETER])
    def get(self, request: Request, name: str, version: int) -> HttpResponse:
        model = registry_selectors.model_get(user=request.user, name=name)
        found = registry_selectors.version_get(model=model, version=version)
        return _markdown(selectors.version_card_markdown(version=found), f"{model.name}-v{found.version}-card.md")
