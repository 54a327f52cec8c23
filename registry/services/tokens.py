"""API tokens: issued once in plaintext, stored as a hash, checked on every API call."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from registry import selectors
from registry.choices import TokenScope
from registry.errors import Forbidden, InvalidInput
from registry.models import ApiToken
from registry.services.teams import membership_set, team_ensure


def _token_hash(plaintext: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is as safe as a slow one here
    # and keeps authentication to one indexed lookup.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def api_token_issue(
    *, user: AbstractBaseUser, name: str = "", scopes: list[str] | None = None, expires_in: timedelta | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its plaintext, which is shown only once."""
    scopes = list(scopes or [TokenScope.READ, TokenScope.WRITE])
    bad = [s for s in scopes if s not in TokenScope.values]
    if bad:
        raise InvalidInput(f"unknown token scopes {bad}; expected {TokenScope.values}", details={"scopes": "invalid"})
    prefix = secrets.token_hex(6)
    plaintext = f"mg_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        token_hash=_token_hash(plaintext),
        scopes=scopes,
        expires_at=timezone.now() + expires_in if expires_in else None,
    )
    return token, plaintext


def api_token_authenticate(plaintext: str) -> ApiToken:
    """The live token for this plaintext, or ``Forbidden`` saying why it is refused."""
    token = selectors.api_token_find(token_hash=_token_hash(plaintext))
    if token is None:
        raise Forbidden("invalid token")
    now = timezone.now()
    if token.revoked_at is not None:
        raise Forbidden("token revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise Forbidden("token expired")
    if not token.user.is_active:
        raise Forbidden("user inactive")
    if token.last_used_at is None or now - token.last_used_at > settings.MODELGATE_TOKEN_TOUCH_INTERVAL:
        # Touched at most once a minute: a write per API call would serialise CI traffic.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def user_with_token(
    *, username: str, team_name: str, role: str, expires_days: int | None = None, scopes: list[str] | None = None
) -> tuple[AbstractBaseUser, str]:
    """Bootstrap: user, team and membership created when missing, and a new token."""
    user_model = get_user_model()
    with transaction.atomic():
        user, _ = user_model.objects.get_or_create(username=username)
        team = team_ensure(name=team_name)
        membership_set(user=user, team=team, role=role)
        _, plaintext = api_token_issue(
            user=user,
            name=f"issued for {username}",
            scopes=scopes,
            expires_in=timedelta(days=expires_days) if expires_days else None,
        )
    return user, plaintext
