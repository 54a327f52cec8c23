"""Project-wide request handling that no single app owns."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

API_PREFIX = "/api/"


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
