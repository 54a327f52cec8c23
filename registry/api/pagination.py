"""Cursor pagination: ``{"results": [...], "next": url | null, "previous": url | null}``."""

from __future__ import annotations

from typing import Any

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

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
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
