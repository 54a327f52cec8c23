"""HTTP connections that acknowledge a response at once, for the MLflow client.

``mlflow server`` (uvicorn) writes a response's headers and its body in two sends on a
socket without ``TCP_NODELAY``: the body waits (Nagle) until the client has
acknowledged the headers, and a Linux client that reuses a kept-alive connection
delays that acknowledgement by up to 40 ms. Every MLflow call made on a connection
that was busy in the last few hundred milliseconds then takes 40 ms longer than its
work: under load, each registration, alias change or sync call paid it.

The connections here re-arm ``TCP_QUICKACK`` each time a response is read, so the
client acknowledges at once and the body follows without the wait. Where the option
does not exist (not Linux) they behave as plain connections. No Django here: the
benchmark's clients use the same connections.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def acknowledge_at_once(sock: Any) -> None:
    """Ask the kernel to acknowledge what arrives next on ``sock`` without delay."""
    if _TCP_QUICKACK is None or sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
    except (OSError, ValueError):  # closed meanwhile, or a socket type without it
        pass


class QuickAckHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        acknowledge_at_once(self.sock)
        return super().getresponse(*args, **kwargs)


class QuickAckHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        acknowledge_at_once(self.sock)
        return super().getresponse(*args, **kwargs)


class QuickAckHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = QuickAckHTTPConnection


class QuickAckHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = QuickAckHTTPSConnection


POOL_CLASSES = {"http": QuickAckHTTPConnectionPool, "https": QuickAckHTTPSConnectionPool}


class QuickAckAdapter(requests.adapters.HTTPAdapter):
    """A ``requests`` adapter whose direct (not proxied) connections acknowledge
    responses at once."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES


def install_for_mlflow() -> None:
    """Make the sessions MLflow's client builds from now on use these connections.

    MLflow builds one cached ``requests`` session per retry policy, each with its
    ``TCPKeepAliveHTTPAdapter``; that adapter is replaced by a subclass whose pools
    use the connections above (keep-alive socket options and retries unchanged), and
    sessions cached before are dropped so that none escapes it. Idempotent.
    """
    from mlflow.utils import request_utils

    current = request_utils.TCPKeepAliveHTTPAdapter
    if getattr(current, "quickack", False):
        return

    class MlflowQuickAckAdapter(QuickAckAdapter, current):  # type: ignore[misc, valid-type]
        quickack = True

    MlflowQuickAckAdapter.__name__ = MlflowQuickAckAdapter.__qualname__ = "MlflowQuickAckAdapter"
    request_utils.TCPKeepAliveHTTPAdapter = MlflowQuickAckAdapter
    request_utils._cached_get_request_session.cache_clear()
