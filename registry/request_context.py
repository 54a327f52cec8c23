"""Correlation data of the request being served (request id, API token prefix), kept
in a context variable so that audit records can name them.

This is metadata for the record, never an authority: who acts is always passed to
services explicitly as ``actor``.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from dataclasses import dataclass, replace


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


def begin(request_id: str) -> contextvars.Token[RequestContext]:
    """Start the context of a request named ``request_id``; ``end`` closes it."""
    return _current.set(RequestContext(request_id=request_id))


def end(token: contextvars.Token[RequestContext]) -> None:
    _current.reset(token)


def request_id_from(given: str) -> str:
    """The caller's request id when it is a sane one, a new one otherwise."""
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex
