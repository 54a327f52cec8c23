"""Project-wide request handling that no single app owns."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from config import logs
from registry import request_context

API_PREFIX = "/api/"


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` from the caller (or makes one) and echoes it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_context.request_id_from(request.headers.get("X-Request-ID", ""))
        token = request_context.begin(request_id)
        # Every log line written while serving the request names it.
        log_token = logs.request_id.set(request_id)
        setattr(request, logs.REQUEST_ATTRIBUTE, request_id)
        try:
            response = self.get_response(request)
        finally:
            logs.request_id.reset(log_token)
            request_context.end(token)
        response["X-Request-ID"] = request_id
        return response


class ApiTrailingSlashMiddleware:
    """Serves an API path given without its trailing slash as if it had one.

    Django's ``APPEND_SLASH`` would answer ``POST /api/v1/models`` with a 301 to
    ``/api/v1/models/``, which HTTP clients follow with a GET: a CI job that meant to
    register something would list instead and carry on as if it had. API clients get the
    endpoint itself; pages keep Django's redirect.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(API_PREFIX) and not path.endswith("/"):
            try:
                resolve(path)
            except Resolver404:
                try:
                    resolve(f"{path}/")
                except Resolver404:
                    pass  # unknown either way: the API's JSON 404
                else:
                    request.path_info = f"{path}/"
                    request.path = f"{request.path}/"
        return self.get_response(request)
