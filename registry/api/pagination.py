"""Cursor pagination: ``{"results": [...], "next": url | null, "previous": url | null}``."""

from __future__ import annotations

import base64
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, pagination
from rest_framework.response import Response

from registry.errors import InvalidInput


class CursorPagination(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = getattr(view, "cursor_ordering", None)
        if callable(ordering):
            return tuple(ordering(request))
        return (self.ordering,) if isinstance(self.ordering, str) else tuple(self.ordering)

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, DjangoValidationError) as exc:
            # A well-formed cursor whose position does not fit the ordering's field
            # (``p=abc`` for a numeric one) fails only when the queryset is filtered.
            if request.query_params.get(self.cursor_query_param) is None:
                raise
            raise InvalidInput("the cursor is invalid", details={"cursor": "invalid"}) from exc

    def decode_cursor(self, request: Any) -> Any:
        encoded = request.query_params.get(self.cursor_query_param)
        try:
            if encoded is not None:
                # DRF's decoder skips characters outside the alphabet: "%%%" would be page 1.
                base64.b64decode(encoded.encode("ascii"), validate=True)
            return super().decode_cursor(request)
        except (exceptions.NotFound, ValueError):
            raise InvalidInput("the cursor is invalid", details={"cursor": "invalid"}) from None

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise InvalidInput(f"page_size {raw!r} is not a number", details={"page_size": "not a number"}) from None
        if not 1 <= size <= self.max_page_size:
            raise InvalidInput(
                f"page_size must be between 1 and {self.max_page_size}", details={"page_size": "out of range"}
            )
        return size

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link(), "previous": self.get_previous_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
            },
        }
