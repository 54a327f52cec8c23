"""MLflow's client acknowledges each response at once (``registry.quickack``)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.apps import apps
from mlflow.utils import request_utils

from registry import quickack


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as MLflow's client uses

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class _RecordingSocket:
    """A socket that notes the options set on it and otherwise is the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))
        self._sock.setsockopt(level, option, value)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


quickack_only_on_linux = pytest.mark.skipif(
    not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is a Linux socket option"
)


@quickack_only_on_linux
def test_each_response_on_a_kept_alive_connection_is_read_with_quick_acknowledgement(http_server):
    connection = quickack.QuickAckHTTPConnection("127.0.0.1", http_server)
    connection.connect()
    recorder = _RecordingSocket(connection.sock)
    connection.sock = recorder
    for _ in range(3):
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200 and response.data == b"ok"
    connection.close()

    assert recorder.options == [(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)] * 3


def test_a_connection_closed_meanwhile_still_reports_what_happened_to_it():
    quickack.acknowledge_at_once(None)  # no socket yet: nothing to do
    closed = socket.socket()
    closed.close()
    quickack.acknowledge_at_once(closed)  # OSError swallowed: the read reports the real failure


def test_the_requests_adapter_serves_requests_through_quickack_connections(http_server):
    session = requests.Session()
    session.trust_env = False
    adapter = quickack.QuickAckAdapter()
    session.mount("http://", adapter)

    assert session.get(f"http://127.0.0.1:{http_server}/", timeout=5).text == "ok"
    pool = adapter.poolmanager.connection_from_url(f"http://127.0.0.1:{http_server}/")
    assert isinstance(pool, quickack.QuickAckHTTPConnectionPool)
    assert pool.ConnectionCls is quickack.QuickAckHTTPConnection


def _mlflow_session() -> requests.Session:
    return request_utils._get_request_session(
        max_retries=3,
        backoff_factor=1,
        backoff_jitter=0.0,
        retry_codes=frozenset({503}),
        raise_on_status=True,
        respect_retry_after_header=True,
    )


def test_modelgate_makes_mlflow_client_sessions_use_quickack_connections_keeping_their_options(http_server):
    # Installed when Django started (``RegistryConfig.ready``): nothing here installs it.
    session = _mlflow_session()
    adapter = session.adapters["http://"]

    assert getattr(type(adapter), "quickack", False)
    assert adapter.poolmanager.pool_classes_by_scheme == quickack.POOL_CLASSES
    # MLflow's own retry policy and keep-alive socket options are still those it set.
    assert adapter.max_retries.total == 3 and 503 in adapter.max_retries.status_forcelist
    assert adapter.poolmanager.connection_pool_kw["socket_options"] == request_utils._build_socket_options()
    assert session.get(f"http://127.0.0.1:{http_server}/", timeout=5).text == "ok"


def test_installing_twice_keeps_one_adapter_and_drops_sessions_made_before():
    before = _mlflow_session()
    adapter_class = request_utils.TCPKeepAliveHTTPAdapter

    quickack.install_for_mlflow()

    assert request_utils.TCPKeepAliveHTTPAdapter is adapter_class  # not wrapped again
    assert _mlflow_session() is before  # nothing to drop: already installed

    original = next(c for c in adapter_class.__mro__ if c.__name__ == "TCPKeepAliveHTTPAdapter")
    request_utils.TCPKeepAliveHTTPAdapter = original
    try:
        quickack.install_for_mlflow()
        assert request_utils.TCPKeepAliveHTTPAdapter is not original
        assert _mlflow_session() is not before  # the cached session was made before: dropped
    finally:
        request_utils.TCPKeepAliveHTTPAdapter = adapter_class
        request_utils._cached_get_request_session.cache_clear()


def test_the_registry_app_installs_quickack_connections_when_django_starts():
    adapter_class = request_utils.TCPKeepAliveHTTPAdapter
    original = next(c for c in adapter_class.__mro__ if c.__name__ == "TCPKeepAliveHTTPAdapter")
    request_utils.TCPKeepAliveHTTPAdapter = original
    request_utils._cached_get_request_session.cache_clear()
    try:
        assert not getattr(type(_mlflow_session().adapters["http://"]), "quickack", False)

        apps.get_app_config("registry").ready()

        assert getattr(type(_mlflow_session().adapters["http://"]), "quickack", False)
    finally:
        request_utils.TCPKeepAliveHTTPAdapter = adapter_class
        request_utils._cached_get_request_session.cache_clear()
