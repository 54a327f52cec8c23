"""The gateway's pooled HTTP client to the replicas, and how its failures are named.

The forwarder only needs one verb, ``post``, and to tell two failures apart: a replica
that could not be reached or did not answer in time (``ReplicaUnreachable``), and a kept-
alive connection that the replica closed before reading the request (``ReplicaDropped``,
worth one more try on a fresh connection). ``ReplicaClient`` is that contract;
``PooledReplicaClient`` keeps it over aiohttp, whose client costs about a third of the
CPU per call of httpx's on the gateway's hot path (see bench/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp


@dataclass(frozen=True)
class ReplicaReply:
    status: int
    body: bytes
    content_type: str


class ReplicaUnreachable(Exception):
    """No answer. ``kind`` says why: ``refused`` (no connection), ``timeout``, ``dropped``."""

    kind = "refused"

    def __init__(self, detail: str, *, kind: str | None = None) -> None:
        super().__init__(detail)
        if kind is not None:
            self.kind = kind


class ReplicaDropped(ReplicaUnreachable):
    """The connection closed without an answer; the request may not have been read."""

    kind = "dropped"


class ReplicaClient(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float | None = None
    ) -> ReplicaReply:
        """Send ``body``; ``timeout_seconds``, when given, caps this call below the client's own limit."""
        ...

    async def aclose(self) -> None: ...


class PooledReplicaClient:
    """Keep-alive connections to the replicas, shared by every caller's calls.

    No cookie jar (a cookie a replica sets must never ride along on another caller's
    call) and no proxy from the environment (replicas are on the cluster's network).
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry_seconds: float,
        connect_timeout_seconds: float,
        replica_timeout_seconds: float,
    ) -> None:
        self._limits = (max_connections, keepalive_expiry_seconds)
        self._timeout = aiohttp.ClientTimeout(total=replica_timeout_seconds, sock_connect=connect_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the event loop that will run it.
        max_connections, keepalive = self._limits
        connector = aiohttp.TCPConnector(
            limit=max_connections,
            keepalive_timeout=keepalive if keepalive > 0 else None,
            force_close=keepalive <= 0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        return self._session

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float | None = None
    ) -> ReplicaReply:
        session = self._session or self._open()
        timeout = self._timeout
        if timeout_seconds is not None and timeout_seconds < (timeout.total or float("inf")):
            timeout = aiohttp.ClientTimeout(
                total=timeout_seconds, sock_connect=min(timeout.sock_connect or timeout_seconds, timeout_seconds)
            )
        try:
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as response:
                payload = await response.read()
                return ReplicaReply(
                    status=response.status,
                    body=payload,
                    content_type=response.headers.get("Content-Type", "application/json"),
                )
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise ReplicaDropped(_describe(exc)) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ReplicaUnreachable(_describe(exc)) from exc
        except aiohttp.ClientOSError as exc:
            # A reset on a kept-alive connection: the request may never have been read.
            raise ReplicaDropped(_describe(exc)) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ReplicaUnreachable(_describe(exc), kind="timeout") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ReplicaUnreachable(_describe(exc)) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
