"""One error format for every API answer:
``{"error": {"code": ..., "message": ..., "details": ...}}`` with the right status."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from registry.errors import DomainError

logger = logging.getLogger(__name__)

_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "unauthenticated",
    exceptions.NotAuthenticated: "unauthenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "invalid",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _first_message(details: Any) -> str:
    if isinstance(details, dict):
        for key, value in details.items():
            return f"{key}: {_first_message(value)}" if key != "non_field_errors" else _first_message(value)
    if isinstance(details, list) and details:
        return _first_message(details[0])
    return str(details)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's exception hook: domain errors, DRF errors and unexpected failures alike."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "the request body is larger than the server accepts"),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, exceptions.APIException):
        code = next((c for k, c in _DRF_CODES.items() if isinstance(exc, k)), "error")
        if isinstance(exc, exceptions.ValidationError):
            details = exc.detail
            message = f"invalid input: {_first_message(details)}"
        else:
            details = None
            message = str(exc.detail)
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return Response(
            error_body(
                "dependency_unavailable", "the database is unavailable; retry later", {"dependency": "database"}
            ),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, IntegrityError):
        logger.info("integrity error: %s", exc)
        return Response(
            error_body("conflict", "the change conflicts with stored data"), status=status.HTTP_409_CONFLICT
        )
    if isinstance(exc, DataError):
        return Response(error_body("invalid", f"a value does not fit: {exc}"[:300]), status=status.HTTP_400_BAD_REQUEST)
    logger.exception("unexpected error in %s", context.get("view"))
    return Response(error_body("internal_error", "an unexpected error occurred; it has been logged"), status=500)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"no such endpoint: {request.path}"), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("internal_error", "an unexpected error occurred; it has been logged"), status=500)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(
            error_body("payload_too_large", "the request body is larger than the server accepts"), status=413
        )
    return JsonResponse(error_body("bad_request", "the request could not be understood"), status=400)


def json_forbidden(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("forbidden", "not allowed"), status=403)
