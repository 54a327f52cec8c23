"""What every API view shares: strict query parameters and ``Idempotency-Key`` replay."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from django.db import transaction
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from registry.api.authentication import TokenScopePermission
from registry.errors import InvalidInput
from registry.idempotency import idempotency_begin, idempotency_finish

PAGINATION_PARAMS = frozenset({"cursor", "page_size"})


class ApiView(APIView):
    """Base view: authenticated, token scopes enforced, unknown query parameters refused."""

    permission_classes = [IsAuthenticated, TokenScopePermission]
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS
    query_params_allowed: frozenset[str] = frozenset()

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        if request.method == "GET":
            unknown = sorted(set(request.query_params) - self.query_params_allowed - PAGINATION_PARAMS)
            if unknown:
                allowed = ", ".join(sorted(self.query_params_allowed | PAGINATION_PARAMS))
                raise InvalidInput(
                    f"unknown query parameter {unknown[0]!r}; this endpoint takes {allowed}",
                    details={name: "unknown query parameter" for name in unknown},
                )

    def finalize_response(self, request: Request, response: object, *args: object, **kwargs: object) -> object:
        response = super().finalize_response(request, response, *args, **kwargs)
        # An error is JSON whatever the success would have been (Markdown, YAML): a
        # client parses one error shape, and ``?format=`` cannot turn it into another type.
        if isinstance(response, Response) and response.status_code >= 400:
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response

    def paginate(self, request: Request, queryset: object, serialize: Callable[[list], object]) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serialize(page))


def idempotent(request: Request, run: Callable[[str | None], Response]) -> Response:
    """Run a creating call at most once per ``Idempotency-Key`` and body.

    ``run`` receives a stable request key (or ``None`` without the header) that services
    pass on to external systems, so that a retry adopts what a lost try created there.

    The claim of the key, everything the call writes and the response kept for replay
    commit in one transaction. A failure at any point (the database connection dropped,
    MLflow or S3 down) rolls all three back: nothing is half-written, no claim is left
    "in progress", and the retry with the same key runs once more and succeeds once. A
    concurrent retry waits on the claim, then replays the kept response.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return run(None)
    body = json.dumps(request.data, sort_keys=True, default=str)
    with transaction.atomic():
        record, fresh = idempotency_begin(
            user=request.user,
            key=key,
            method=request.method or "POST",
            path=request.path,
            request_hash=hashlib.sha256(body.encode()).hexdigest(),
        )
        if not fresh:
            replay = Response(record.response, status=record.status_code)
            replay["Idempotent-Replayed"] = "true"
            return replay
        response = run(f"{request.user.pk}:{key}")
        idempotency_finish(record=record, status_code=response.status_code, response=response.data)
    return response
