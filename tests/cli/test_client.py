"""The client's transport against a small scripted HTTP server on loopback: which calls
are retried and which never are, the Idempotency-Key a retry repeats, how errors read,
and how the wait helpers poll. Unit tests of ``modelgate.client``: no Django."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from modelgate.client import ApiError, Client, ConnectionFailed, WaitTimeout
from tests.conftest import free_port


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Script:
    """Answers per ``METHOD path``, served in order (the last one repeats)."""

    answers: dict[str, list[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, *answers: tuple[int, Any] | tuple[int, Any, dict[str, str]]) -> None:
        self.answers[f"{method} {path}"] = [(a[0], a[1], a[2] if len(a) > 2 else {}) for a in answers]

    def next(self, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        queue = self.answers.get(f"{method} {path}")
        if not queue:
            return 404, {"error": {"code": "not_found", "message": f"no such endpoint: {path}", "details": None}}, {}
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def calls(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]


@pytest.fixture
def script() -> Iterator[tuple[Script, str]]:
    state = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            state.seen.append(Seen(self.command, self.path, dict(self.headers), json.loads(raw) if raw else None))
            status, body, headers = state.next(self.command, self.path)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    """A clock that the client's sleeps move forward: waits take no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _client(url: str, clock: Clock, **options: Any) -> Client:
    return Client(url, "mg_test_token", sleep=clock.sleep, clock=clock, timeout=5, **options)


UNAVAILABLE = (503, {"error": {"code": "dependency_unavailable", "message": "MLflow is unavailable", "details": None}})
VERSION = {"name": "fraud-detector", "version": 3, "stage": "training", "status": "ready"}


def test_a_read_is_retried_on_503_and_answers_when_the_server_recovers(script):
    state, url = script
    state.on("GET", "/api/v1/models/fraud-detector/", UNAVAILABLE, UNAVAILABLE, (200, {"name": "fraud-detector"}))
    clock = Clock()

    assert _client(url, clock).model("fraud-detector") == {"name": "fraud-detector"}

    calls = state.calls("GET", "/api/v1/models/fraud-detector/")
    assert len(calls) == 3
    assert calls[0].headers["Authorization"] == "Bearer mg_test_token"
    assert clock.slept == [0.5, 1.0]


def test_a_registration_retried_after_502_repeats_its_idempotency_key(script):
    state, url = script
    path = "/api/v1/models/fraud-detector/versions/"
    state.on("POST", path, (502, "<html>bad gateway</html>"), (504, "<html>timeout</html>"), (201, VERSION))

    version = _client(url, Clock()).register_version("fraud-detector", run_id="abc123", artifact_path="model")

    assert version == VERSION
    calls = state.calls("POST", path)
    assert len(calls) == 3
    keys = {call.headers["Idempotency-Key"] for call in calls}
    assert len(keys) == 1 and next(iter(keys)).startswith("modelgate-cli-")
    assert calls[0].body == {"run_id": "abc123", "artifact_path": "model"}


def test_two_registrations_send_different_keys_and_a_given_key_is_sent_as_is(script):
    state, url = script
    path = "/api/v1/models/fraud-detector/versions/"
    state.on("POST", path, (201, VERSION))
    client = _client(url, Clock())

    client.register_version("fraud-detector", run_id="abc123")
    client.register_version("fraud-detector", run_id="abc123")
    client.register_version("fraud-detector", run_id="abc123", idempotency_key="build-1234")

    keys = [call.headers["Idempotency-Key"] for call in state.calls("POST", path)]
    assert keys[0] != keys[1]
    assert keys[2] == "build-1234"


def test_a_key_still_in_progress_on_the_server_is_waited_for(script):
    state, url = script
    path = "/api/v1/models/fraud-detector/versions/1/transitions/"
    in_progress = (409, {"error": {"code": "idempotency_in_progress", "message": "still in progress", "details": None}})
    state.on("POST", path, in_progress, (201, {"id": 7, "status": "applied"}))

    answer = _client(url, Clock()).request_transition("fraud-detector", 1, to="staging", idempotency_key="ci-7")

    assert answer["id"] == 7
    assert len(state.calls("POST", path)) == 2


def test_a_rollback_is_never_retried_since_the_server_may_have_applied_it(script):
    state, url = script
    path = "/api/v1/models/fraud-detector/rollback/"
    state.on("POST", path, UNAVAILABLE, (200, {"id": 9, "status": "applied"}))

    with pytest.raises(ApiError) as caught:
        _client(url, Clock()).rollback("fraud-detector", reason="latency")

    assert caught.value.status == 503
    assert len(state.calls("POST", path)) == 1
    assert "Idempotency-Key" not in state.calls("POST", path)[0].headers


def test_retries_stop_after_the_limit_with_the_last_error(script):
    state, url = script
    state.on("GET", "/api/v1/models/fraud-detector/", UNAVAILABLE)
    clock = Clock()

    with pytest.raises(ApiError) as caught:
        _client(url, clock, retries=2).model("fraud-detector")

    assert caught.value.code == "dependency_unavailable"
    assert len(state.calls("GET", "/api/v1/models/fraud-detector/")) == 3
    assert clock.slept == [0.5, 1.0]


def test_retry_after_is_honoured(script):
    state, url = script
    state.on("GET", "/api/v1/health", (*UNAVAILABLE, {"Retry-After": "7"}), (200, {"status": "ok"}))
    clock = Clock()

    assert _client(url, clock).health() == {"status": "ok"}
    assert clock.slept == [7.0]


def test_retry_for_keeps_trying_through_an_outage_until_its_deadline(script):
    state, url = script
    path = "/api/v1/models/fraud-detector/versions/"
    state.on("POST", path, *([UNAVAILABLE] * 12), (201, VERSION))
    clock = Clock()

    assert _client(url, clock, retries=1).register_version("fraud-detector", run_id="r", retry_for=120) == VERSION
    assert len(state.calls("POST", path)) == 13
    assert clock.now <= 120


def test_an_error_carries_the_servers_code_message_and_details(script):
    state, url = script
    body = {
        "error": {"code": "invalid", "message": "invalid input: run_id: no such run", "details": {"run_id": ["no"]}}
    }
    state.on("POST", "/api/v1/models/fraud-detector/versions/", (400, body))

    with pytest.raises(ApiError) as caught:
        _client(url, Clock()).register_version("fraud-detector", run_id="nope")

    error = caught.value
    assert (error.status, error.code, error.details) == (400, "invalid", {"run_id": ["no"]})
    assert str(error) == "invalid input: run_id: no such run (HTTP 400, invalid)"
    assert len(state.calls("POST", "/api/v1/models/fraud-detector/versions/")) == 1


def test_an_html_error_page_becomes_an_api_error_naming_the_status(script):
    state, url = script
    state.on("GET", "/api/v1/models/fraud-detector/", (404, "<html>Not Found</html>"))

    with pytest.raises(ApiError) as caught:
        _client(url, Clock()).model("fraud-detector")

    assert caught.value.code == "http_error"
    assert "HTTP 404" in str(caught.value)
    assert caught.value.details == {"body": "<html>Not Found</html>"}


def test_an_unreachable_server_is_retried_then_named():
    clock = Clock()
    client = _client(f"http://127.0.0.1:{free_port()}", clock, retries=2)

    with pytest.raises(ConnectionFailed) as caught:
        client.model("fraud-detector")

    assert "could not be reached" in str(caught.value)
    assert clock.slept == [0.5, 1.0]


def test_a_model_name_is_one_path_segment(script):
    state, url = script
    state.on("GET", "/api/v1/models/a%2Fb/", (200, {"name": "a/b"}))

    _client(url, Clock()).model("a/b")

    assert state.calls("GET", "/api/v1/models/a%2Fb/")


def test_lists_follow_next_links(script):
    state, url = script
    second = f"{url}/api/v1/models/m/versions/?cursor=abc"
    state.on("GET", "/api/v1/models/m/versions/", (200, {"results": [{"version": 2}], "next": second}))
    state.on("GET", "/api/v1/models/m/versions/?cursor=abc", (200, {"results": [{"version": 1}], "next": None}))

    assert [v["version"] for v in _client(url, Clock()).versions("m")] == [2, 1]


def _transition(status: str, gates: list[dict[str, Any]], detail: str = "") -> dict[str, Any]:
    return {"id": 7, "model": "m", "version": 3, "status": status, "status_detail": detail, "gates": gates}


APPROVAL_WAITING = {"rule": "approvals", "status": "waiting", "detail": "0 of 1 approval", "needs": "approvals"}
SOAK_WAITING = {"rule": "canary_soak", "status": "waiting", "detail": "10 of 30 minutes", "needs": None}
THRESHOLD_FAILED = {"rule": "metric_threshold", "status": "failed", "detail": "f1 = 0.7 < 0.8", "needs": "evaluation"}


def test_waiting_for_a_transition_polls_until_it_is_applied(script):
    state, url = script
    pending = _transition("pending", [APPROVAL_WAITING])
    state.on("GET", "/api/v1/transitions/7/", (200, pending), (200, pending), (200, _transition("applied", [])))
    seen: list[str] = []

    final = _client(url, Clock()).wait_transition(7, timeout=60, poll=2, on_change=lambda t: seen.append(t["status"]))

    assert final["status"] == "applied"
    assert seen == ["pending", "applied"]
    assert not state.calls("POST", "/api/v1/transitions/7/recheck/")


def test_a_wait_that_runs_out_gives_the_last_state(script):
    state, url = script
    state.on("GET", "/api/v1/transitions/7/", (200, _transition("pending", [APPROVAL_WAITING], "waiting: 0 of 1")))
    clock = Clock()

    with pytest.raises(WaitTimeout) as caught:
        _client(url, clock).wait_transition(7, timeout=10, poll=3)

    assert caught.value.last["status"] == "pending"
    assert "still pending after 10s" in str(caught.value)
    assert clock.now == 10


def test_a_soak_is_rechecked_but_an_approval_wait_is_not(script):
    state, url = script
    state.on("GET", "/api/v1/transitions/7/", (200, _transition("pending", [SOAK_WAITING])))
    state.on("POST", "/api/v1/transitions/7/recheck/", (200, _transition("applied", [])))

    final = _client(url, Clock()).wait_transition(7, timeout=600, poll=20, recheck_every=60)

    assert final["status"] == "applied"
    assert len(state.calls("POST", "/api/v1/transitions/7/recheck/")) == 1


def test_a_blocked_transition_is_waited_on_only_while_an_evaluation_of_the_version_runs(script):
    state, url = script
    blocked = _transition("blocked", [THRESHOLD_FAILED])
    state.on("GET", "/api/v1/transitions/7/", (200, blocked), (200, _transition("applied", [])))
    running = {"results": [{"id": 5, "version": 3, "state": "running"}], "next": None}
    state.on("GET", "/api/v1/jobs/?model=m&kind=evaluate", (200, running))

    assert _client(url, Clock()).wait_transition(7, timeout=60)["status"] == "applied"

    finished = {"results": [{"id": 5, "version": 3, "state": "succeeded"}], "next": None}
    state.on("GET", "/api/v1/transitions/7/", (200, blocked))
    state.on("GET", "/api/v1/jobs/?model=m&kind=evaluate", (200, finished))
    assert _client(url, Clock()).wait_transition(7, timeout=60)["status"] == "blocked"
