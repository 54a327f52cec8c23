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
    """A token without the ``write`` scope may only read: safe methods, and the POSTs of
    views that declare ``reads_only`` (they change nothing, such as a verification)."""

    message = "this token lacks the 'write' scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken) or request.method in permissions.SAFE_METHODS:
            return True
        if getattr(view, "reads_only", False):
            return True
        return TokenScope.WRITE in (token.scopes or [])


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describes bearer tokens in the OpenAPI schema."""

    target_class = "registry.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "a token from `manage.py issue_token`"}
