"""Where the gateway meets Django: the route table the control plane publishes, and the
registry's token check. Both run on a thread of their own, off the event loop, and hold
one database connection each; ``aclose`` closes it there.

Django must be set up before these are called (``serving.app`` does it for the
production app); the imports of the control plane and the registry are made inside the
calls, so this package imports without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from serving.tokens import Principal, TokenRefused

T = TypeVar("T")


class DatabaseThread:
    """One worker thread for database calls: a bounded number of connections from the
    gateway, and a thread whose connection can be closed at shutdown."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modelgate-gateway-{name}")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await sync_to_async(function, thread_sensitive=False, executor=self._executor)(*args)

    async def aclose(self) -> None:
        from django.db import connections

        try:
            async with asyncio.timeout(5):
                await self.run(connections.close_all)
        except Exception:  # a connection that is gone already needs no closing
            pass
        self._executor.shutdown(wait=False, cancel_futures=True)


class DatabaseSource:
    """The control plane's published route table (``route_table_document()``)."""

    def __init__(self) -> None:
        self._thread = DatabaseThread("routes")

    async def __call__(self) -> Mapping[str, Any] | None:
        return await self._thread.run(_route_table_document)

    async def aclose(self) -> None:
        await self._thread.aclose()


def database_source() -> DatabaseSource:
    return DatabaseSource()


def _route_table_document() -> Mapping[str, Any] | None:
    from django.db import close_old_connections

    from lifecycle.deployments.selectors import route_table_document

    # A connection broken while the database was down is replaced, not reused.
    close_old_connections()
    return route_table_document()


class DatabaseAuthenticator:
    """The registry's token check (``api_token_authenticate``)."""

    def __init__(self) -> None:
        self._thread = DatabaseThread("tokens")

    async def __call__(self, plaintext: str) -> Principal:
        return await self._thread.run(_authenticate, plaintext)

    async def aclose(self) -> None:
        await self._thread.aclose()


def database_authenticator() -> DatabaseAuthenticator:
    return DatabaseAuthenticator()


def _authenticate(plaintext: str) -> Principal:
    from django.db import close_old_connections

    from registry.errors import Forbidden
    from registry.services import api_token_authenticate

    close_old_connections()
    try:
        token = api_token_authenticate(plaintext)
    except Forbidden as refused:
        raise TokenRefused(refused.message) from refused
    return Principal(token_prefix=token.prefix, user_id=token.user_id, scopes=frozenset(token.scopes or ()))
