"""A light kept-alive HTTP/1.1 client for loopback servers, with quick acknowledgement.

Built on ``http.client`` rather than ``requests``: a benchmark's clients run on the same
cores as the servers they measure, and ``requests`` spends about 0.5 ms of CPU per call,
a third of what a ModelGate alias lookup costs, which would cap the throughput measured
for the faster server. Each response is read with quick acknowledgement
(``registry.quickack``): ``mlflow server`` sends a response's body only after its headers
are acknowledged, which a Linux client on a kept-alive connection delays by up to 40 ms,
so that a plain connection would time that delay instead of the server's work.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
from typing import Any
from urllib.parse import urlencode, urlsplit

from registry import quickack  # no Django in it

from .processes import HOST

_json_dumps = json.dumps  # ``Session.request`` takes a ``json`` argument, as requests does


class Response:
    """What a call answered: the parts of ``requests.Response`` the benchmarks read."""

    def __init__(self, method: str, url: str, status_code: int, body: bytes) -> None:
        self.method = method
        self.url = url
        self.status_code = status_code
        self.content = body

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Session:
    """Kept-alive connections, one per server, for one client thread."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def get(self, url: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> Response:
        if params:
            url = f"{url}?{urlencode(params)}"
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        return self.request("PUT", url, **kwargs)

    def request(
        self, method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None, timeout: float = 60
    ) -> Response:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        send_headers = {"Accept": "application/json", **(headers or {})}
        body = None
        if json is not None:
            body = _json_dumps(json).encode()
            send_headers["Content-Type"] = "application/json"
        key = (parts.hostname or HOST, parts.port or 80)
        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and _closed_by_peer(connection.sock):
            # The server closed the kept-alive connection while it sat idle (gunicorn after
            # 2 s): reconnect before sending, as urllib3 does; a request is never resent.
            connection.close()
        if connection is None:
            connection = self._connections[key] = http.client.HTTPConnection(*key, timeout=timeout)
        try:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            connection.request(method, target, body=body, headers=send_headers)
            quickack.acknowledge_at_once(connection.sock)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            # Whatever state the exchange was left in, the next call starts afresh.
            connection.close()
            del self._connections[key]
            raise
        if response.will_close:
            connection.close()
            del self._connections[key]
        return Response(method, url, response.status, data)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether an idle connection's peer has closed it (readable with nothing to read)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def expect(response: Response, *codes: int) -> Response:
    """``response`` if its status is one of ``codes``; otherwise an error naming the call."""
    if response.status_code not in codes:
        raise RuntimeError(f"{response.method} {response.url} -> {response.status_code}: {response.text[:300]}")
    return response


def status_of(url: str, *, timeout: float) -> int:
    """The status a ``GET url`` answers on a connection of its own (a readiness check)."""
    with Session() as session:
        return session.get(url, timeout=timeout).status_code
