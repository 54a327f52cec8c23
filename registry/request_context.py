"""Correlation data of the request being served (request id, API token prefix), kept
in a context variable so that audit records can name them.

This is metadata for the record, never an authority: who acts is always passed to
services explicitly as ``actor``.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.http import HttpRequest, HttpResponse

from config import logs


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    token_prefix: str = ""


# RequestContext is frozen, so sharing the default instance is safe.
_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("modelgate_request", default=RequestContext())  # noqa: B039
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def current() -> RequestContext:
    return _current.get()


def token_used(prefix: str) -> None:
    _current.set(replace(_current.get(), token_prefix=prefix))


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` from the caller (or makes one) and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = _current.set(RequestContext(request_id=request_id))
        # Every log line written while serving the request names it.
        log_token = logs.request_id.set(request_id)
        setattr(request, logs.REQUEST_ATTRIBUTE, request_id)
        try:
            response = self.get_response(request)
        finally:
            logs.request_id.reset(log_token)
            _current.reset(token)
        response["X-Request-ID"] = request_id
        return response
