"""Bearer tokens at the gateway: checked against the registry once, then believed for a
short while.

The check itself (``TokenAuthenticator``) is injected: ``serving.database`` provides the
one that asks the registry. ``TokenCache`` keeps its answers per token hash (never the
plaintext) for ``ttl`` seconds in a bounded LRU, lets concurrent first calls with one
token share a single check, and, when the check cannot be made (the database is down),
keeps honouring a token it had already accepted: predictions go on through an outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

SERVE_SCOPE = "serve"


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to, as far as serving cares."""

    token_prefix: str
    user_id: int | None
    scopes: frozenset[str]

    @property
    def may_serve(self) -> bool:
        return SERVE_SCOPE in self.scopes


class TokenRefused(Exception):
    """An unknown, expired or revoked token (or one whose user is inactive)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationUnavailable(Exception):
    """The token could not be checked (the registry's database did not answer) and no
    earlier answer for it is known."""


# Returns the token's principal or raises ``TokenRefused``; any other exception means
# the check could not be made.
TokenAuthenticator = Callable[[str], Awaitable[Principal]]


@dataclass
class _Entry:
    expires_at: float
    principal: Principal | None
    refusal: str | None


class TokenCache:
    """Answers of a ``TokenAuthenticator`` per token hash, for ``ttl_seconds``."""

    def __init__(
        self,
        authenticator: TokenAuthenticator,
        *,
        ttl_seconds: float,
        max_entries: int,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authenticator = authenticator
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        # While the check fails, a token answered from an earlier check is asked about
        # again after this long, not on every call.
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        self.checks = 0
        self.stale_answers = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def principal(self, plaintext: str) -> Principal:
        """The token's principal; ``TokenRefused`` or ``AuthenticationUnavailable``."""
        key = hashlib.sha256(plaintext.encode()).hexdigest()
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= self._clock():
            entry = await self._check(key, plaintext, entry)
        else:
            self._entries.move_to_end(key)
        if entry.principal is None:
            raise TokenRefused(entry.refusal or "invalid token")
        return entry.principal

    async def _check(self, key: str, plaintext: str, stale: _Entry | None) -> _Entry:
        check = self._pending.get(key)
        if check is None:
            # A task of its own, shared by every request asking about this token
            # meanwhile: a caller that goes away does not cancel the others' answer.
            check = asyncio.ensure_future(self._ask(key, plaintext, stale))
            self._pending[key] = check
            check.add_done_callback(self._settled)
        return await asyncio.shield(check)

    def _settled(self, check: asyncio.Future[_Entry]) -> None:
        for key, pending in list(self._pending.items()):
            if pending is check:
                del self._pending[key]
        if not check.cancelled():
            check.exception()  # retrieved here, whether or not a caller is still waiting

    async def _ask(self, key: str, plaintext: str, stale: _Entry | None) -> _Entry:
        entry = await self._answer(plaintext, stale)
        self._store(key, entry)
        return entry

    async def _answer(self, plaintext: str, stale: _Entry | None) -> _Entry:
        self.checks += 1
        expires_at = self._clock() + self._ttl
        try:
            principal = await self._authenticator(plaintext)
        except TokenRefused as refused:
            return _Entry(expires_at, None, refused.message)
        except Exception as exc:
            if stale is not None and stale.principal is not None:
                # The database is down, not the token: keep the answer we had, and ask
                # again on the next call.
                self.stale_answers += 1
                logger.warning(
                    "token check failed (%s); honouring the earlier answer for %s…", exc, stale.principal.token_prefix
                )
                return _Entry(self._clock() + min(self._ttl, self._retry_seconds), stale.principal, None)
            logger.warning("token check failed and the token is not known: %s", exc)
            raise AuthenticationUnavailable(str(exc)) from exc
        return _Entry(expires_at, principal, None)

    def _store(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
