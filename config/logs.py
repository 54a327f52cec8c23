"""Structured logs: one JSON object per line, each naming the request it belongs to.

``request_id`` is a context variable: the API's middleware sets it for a request, the
serving gateway for a scoring call; code outside a request logs ``"request_id": null``.
``LOG_FORMAT=json`` (the default when ``MODELGATE_ENV=production``) selects
``JsonFormatter`` for every handler of ``config.settings.LOGGING``.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

from registry.redaction import redact

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("modelgate_log_request_id", default=None)
# The attribute of an HTTP request that holds its id (set by the request id middleware).
REQUEST_ATTRIBUTE = "modelgate_request_id"

# Attributes every LogRecord has; anything else was passed in ``extra=`` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class PlainFormatter(logging.Formatter):
    """``asctime level logger: message``, URL passwords redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", ...extra, "exc_info"?}``"""

    def format(self, record: logging.LogRecord) -> str:
        # Django logs a failed request after its middleware has finished, with the
        # request attached: its id is then read from the request.
        request = getattr(record, "request", None)
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None)
            or getattr(request, REQUEST_ATTRIBUTE, None)
            or request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in event and key != "request":
                event[key] = value
        if record.exc_info:
            event["exc_info"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            event["stack_info"] = self.formatStack(record.stack_info)
        # One event, one line: a message's own newlines are escaped by JSON.
        return json.dumps(event, default=str, ensure_ascii=False)


def logging_config(*, log_format: str, level: str, log_file: str = "") -> dict[str, Any]:
    """``LOGGING`` for ``plain`` or ``json`` lines on standard error, and also appended
    to ``log_file`` when one is named (reopened when rotated away)."""
    if log_format not in {"plain", "json"}:
        raise ValueError(f"LOG_FORMAT must be 'plain' or 'json', not {log_format!r}")
    formatter = (
        {"()": "config.logs.JsonFormatter"}
        if log_format == "json"
        else {"()": "config.logs.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handlers: dict[str, Any] = {"console": {"class": "logging.StreamHandler", "formatter": "default"}}
    if log_file:
        handlers["file"] = {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": log_file,
            "formatter": "default",
            "encoding": "utf-8",
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}, "botocore": {"level": "WARNING"}},
    }
