"""Bearer token authentication and token scopes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from registry import request_context
from registry.choices import TokenScope
from registry.errors import Forbidden
from registry.models import ApiToken
from registry.services.tokens import api_token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>``; a bad, expired or revoked token is a 401."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        credentials = credentials.strip()
        if not credentials or " " in credentials:
            raise exceptions.AuthenticationFailed("malformed Authorization header: expected 'Bearer <token>'")
        try:
            token = api_token_authenticate(credentials)
        except Forbidden as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        request_context.token_used(token.prefix)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class TokenScopePermission(permissions.BasePermission):
    """A token needs the ``read`` scope to read (safe methods, and the POSTs of views that
    declare ``reads_only``: they change nothing, such as a verification) and the ``write``
    scope for everything else. A ``serve`` token is for the gateway's predictions only, so
    it reads nothing of the API."""

    message = "this token lacks the scope this call needs"

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        scopes = set(token.scopes or [])
        if request.method in permissions.SAFE_METHODS or getattr(view, "reads_only", False):
            needed = TokenScope.READ
        else:
            needed = TokenScope.WRITE
        if needed in scopes:
            return True
        self.message = f"this token lacks the '{needed.value}' scope"
        return False


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describes bearer tokens in the OpenAPI schema."""

    target_class = "registry.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "a token from `manage.py issue_token`"}
