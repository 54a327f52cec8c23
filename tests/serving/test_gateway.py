"""The gateway in front of real MLflow scoring servers, under a real uvicorn: traffic
split by weight and sticky per request id, shadows mirrored, a killed replica costing
no request, a new route table followed within the refresh period, bad payloads refused
before a replica sees them, no replica → 503, and the answer cache."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from serving.route_table import StaticSource
from serving.settings import GatewaySettings
from tests.serving.conftest import (
    COLUMNS,
    SERVE_TOKEN,
    SETOSA,
    V1_ANSWER_FOR_VIRGINICA,
    V2_ANSWER_FOR_VIRGINICA,
    VIRGINICA,
    dead_url,
    route,
    split_payload,
    table,
)

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("serving-replicas")]

AUTH = {"Authorization": f"Bearer {SERVE_TOKEN}"}


def post(client: httpx.Client, url: str, payload: dict, request_id: str | None = None) -> httpx.Response:
    headers = dict(AUTH)
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return client.post(url, json=payload, headers=headers)


async def post_many(url: str, bodies: list[tuple[str, bytes]], concurrency: int = 8) -> list[httpx.Response]:
    """POST each (request id, body) with ``concurrency`` calls in flight."""
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(request_id: str, body: bytes) -> httpx.Response:
            async with limit:
                headers = {**AUTH, "X-Request-Id": request_id, "Content-Type": "application/json"}
                return await client.post(url, content=body, headers=headers)

        return await asyncio.gather(*(one(rid, body) for rid, body in bodies))


def test_weights_split_traffic_between_primary_and_canary(replicas, gateway_factory):
    v1a, v1b, v2 = replicas.require("v1a", "v1b", "v2")
    signature = replicas.signature
    server = gateway_factory(
        table(
            1,
            route(1, 0.8, "primary", [v1a, v1b], signature),
            route(2, 0.2, "canary", [v2], signature),
        )
    )
    body = json.dumps(split_payload([VIRGINICA])).encode()
    answers = asyncio.run(post_many(server.invocations(), [(uuid.uuid4().hex, body) for _ in range(1000)]))

    assert Counter(a.status_code for a in answers) == {200: 1000}
    versions = Counter(a.headers["X-ModelGate-Version"] for a in answers)
    assert 150 <= versions["2"] <= 250, versions
    # The predictions are the versions' own: each header matches what its model says.
    for answer in answers:
        expected = V2_ANSWER_FOR_VIRGINICA if answer.headers["X-ModelGate-Version"] == "2" else V1_ANSWER_FOR_VIRGINICA
        assert answer.json() == {"predictions": [expected]}
    modes = {(a.headers["X-ModelGate-Version"], a.headers["X-ModelGate-Route"]) for a in answers}
    assert modes == {("1", "primary"), ("2", "canary")}


def test_the_same_request_id_always_lands_on_the_same_version(replicas, gateway_factory):
    v1a, v1b, v2 = replicas.require("v1a", "v1b", "v2")
    signature = replicas.signature
    server = gateway_factory(
        table(
            1,
            route(1, 0.5, "primary", [v1a, v1b], signature),
            route(2, 0.5, "canary", [v2], signature),
        )
    )
    with httpx.Client(timeout=30) as client:
        seen: dict[str, set[str]] = {}
        for request_id in [f"order-{i}" for i in range(10)]:
            for _ in range(5):
                answer = post(client, server.invocations(), split_payload([SETOSA]), request_id)
                assert answer.headers["X-Request-Id"] == request_id
                seen.setdefault(request_id, set()).add(answer.headers["X-ModelGate-Version"])
    assert all(len(versions) == 1 for versions in seen.values()), seen
    # Ten ids over two equal routes: both are used.
    assert set().union(*seen.values()) == {"1", "2"}


class RecordingShadow:
    """A stand-in shadow replica that records what it is sent and answers slowly with a
    prediction no model makes: if either reached the caller, the test would see it."""

    def __init__(self, delay: float = 1.5) -> None:
        self.calls: list[dict] = []
        self.seen = threading.Event()
        shadow = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                shadow.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
                shadow.seen.set()
                time.sleep(delay)
                answer = b'{"predictions": ["from-the-shadow"]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_shadow_gets_a_copy_and_its_answer_never_reaches_the_caller(replicas, gateway_factory):
    shadow = RecordingShadow(delay=1.5)
    try:
        server = gateway_factory(
            table(
                1,
                route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature),
                route(3, 0.0, "shadow", [shadow.url]),
            )
        )
        payload = split_payload([VIRGINICA])
        with httpx.Client(timeout=30) as client:
            started = time.monotonic()
            answer = post(client, server.invocations(), payload, "mirror-me")
            elapsed = time.monotonic() - started
        assert answer.status_code == 200
        assert answer.json() == {"predictions": [V1_ANSWER_FOR_VIRGINICA]}
        assert answer.headers["X-ModelGate-Version"] == "1"
        # The caller did not wait for the slow shadow.
        assert elapsed < 1.0, elapsed
        assert shadow.seen.wait(timeout=10)
        call = shadow.calls[0]
        assert call["path"] == "/invocations"
        assert json.loads(call["body"]) == payload
        assert call["headers"]["X-Request-Id"] == "mirror-me"
        assert call["headers"]["X-ModelGate-Shadow"] == "1"
        assert "Authorization" not in call["headers"]
        deadline = time.monotonic() + 10
        while server.gateway.counters.shadow_sent < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.gateway.counters.shadow_sent == 1
    finally:
        shadow.close()


def test_killing_one_of_two_primary_replicas_mid_traffic_costs_no_request(replicas, gateway_factory):
    doomed, survivor = replicas.require("v1-doomed", "v1a")
    server = gateway_factory(table(1, route(1, 1.0, "primary", [doomed, survivor], replicas.signature)))
    body = json.dumps(split_payload([SETOSA])).encode()
    answers: list[httpx.Response] = []

    async def traffic() -> None:
        limit = asyncio.Semaphore(4)
        killed = asyncio.Event()

        async with httpx.AsyncClient(timeout=30) as client:

            async def one(i: int) -> None:
                async with limit:
                    headers = {**AUTH, "X-Request-Id": f"kill-{i}", "Content-Type": "application/json"}
                    answers.append(await client.post(server.invocations(), content=body, headers=headers))
                if i == 150 and not killed.is_set():
                    killed.set()
                    doomed.kill()

            await asyncio.gather(*(one(i) for i in range(400)))

    asyncio.run(traffic())
    assert doomed.process.poll() is not None
    assert Counter(a.status_code for a in answers) == {200: 400}
    by_replica = Counter(a.headers["X-ModelGate-Replica"] for a in answers)
    # Both served before the kill; the survivor took over after it.
    assert len(by_replica) == 2, by_replica
    assert answers[-1].headers["X-ModelGate-Replica"] == "101"  # the survivor's id in the table


def test_a_new_revision_reaches_callers_within_the_refresh_period(replicas, gateway_factory):
    v1a, v2 = replicas.require("v1a", "v2")
    signature = replicas.signature
    refresh = 1.0
    server = gateway_factory(
        table(1, route(1, 1.0, "primary", [v1a], signature)),
        settings=GatewaySettings(refresh_seconds=refresh),
    )
    with httpx.Client(timeout=30) as client:
        answer = post(client, server.invocations(), split_payload([VIRGINICA]))
        assert answer.headers["X-ModelGate-Version"] == "1"
        assert answer.headers["X-ModelGate-Route-Revision"] == "1"
        # The rollback: v2 becomes the primary.
        assert isinstance(server.source, StaticSource)
        server.source.publish(table(2, route(2, 1.0, "primary", [v2], signature)))
        published = time.monotonic()
        while True:
            answer = post(client, server.invocations(), split_payload([VIRGINICA]))
            if answer.headers["X-ModelGate-Version"] == "2":
                break
            assert time.monotonic() - published < 5, "the new revision was not followed within 5 s"
            time.sleep(0.02)
        followed_after = time.monotonic() - published
    assert answer.headers["X-ModelGate-Route-Revision"] == "2"
    assert answer.json() == {"predictions": [V2_ANSWER_FOR_VIRGINICA]}
    assert followed_after <= refresh + 0.5, followed_after
    health = httpx.get(f"{server.url}/serve/-/health").json()
    assert health == {"status": "ok", "revision": 2, "deployments": 1}


def test_a_wrong_column_or_type_is_a_400_naming_the_column(replicas, gateway_factory):
    server = gateway_factory(table(1, route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature)))
    with httpx.Client(timeout=30) as client:
        unknown = post(
            client,
            server.invocations(),
            {"dataframe_split": {"columns": [*COLUMNS, "colour"], "data": [[*SETOSA, "red"]]}},
        )
        wrong_type = post(
            client,
            server.invocations(),
            {"dataframe_records": [dict(zip(COLUMNS, [5.1, "wide", 1.4, 0.2], strict=True))]},
        )
        missing = post(client, server.invocations(), {"inputs": {COLUMNS[0]: [5.1]}})
        not_json = client.post(
            server.invocations(), content=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
        )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "invalid"
    assert unknown.json()["error"]["details"]["column"] == "colour"
    assert "'colour'" in unknown.json()["error"]["message"]
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"]["details"] == {
        "column": "sepal width (cm)",
        "row": 0,
        "expected": "double",
        "got": "string",
        "version": 1,
    }
    assert missing.status_code == 400 and missing.json()["error"]["details"]["column"] == "sepal width (cm)"
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "malformed_request"
    # None of them reached a replica.
    assert server.gateway.forwarder.requests == 0


def test_a_4xx_from_the_replica_is_returned_as_it_is(replicas, gateway_factory):
    server = gateway_factory(table(1, route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature)))
    with httpx.Client(timeout=30) as client:
        # null is a valid double (NaN) for the signature, but the logistic regression
        # refuses NaN: the replica's own 400 comes back.
        answer = post(client, server.invocations(), split_payload([[None, 3.5, 1.4, 0.2]]))
    assert answer.status_code == 400
    assert "error_code" in answer.json()
    assert answer.headers["X-ModelGate-Version"] == "1"
    assert server.gateway.forwarder.requests == 1


def test_no_replica_up_is_a_503_with_retry_after(replicas, gateway_factory):
    server = gateway_factory(
        table(
            1,
            route(1, 0.5, "primary", [dead_url(), dead_url()], replicas.signature),
            route(2, 0.5, "canary", [dead_url()], replicas.signature),
        )
    )
    with httpx.Client(timeout=30) as client:
        answers = [post(client, server.invocations(), split_payload([SETOSA]), f"dead-{i}") for i in range(4)]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "1"
        assert answer.json()["error"]["code"] == "unavailable"
    # A canary call fell back to the primary's replicas too before giving up.
    assert max(len(a.json()["error"]["details"]["attempts"]) for a in answers) == 3


def test_a_deployment_is_named_by_id_or_name_and_unknown_ones_are_404(replicas, gateway_factory):
    server = gateway_factory(table(1, route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature)))
    with httpx.Client(timeout=30) as client:
        assert post(client, server.invocations("no-such-model"), split_payload([SETOSA])).status_code == 404
        assert post(client, f"{server.url}/serve/iris/99/invocations", split_payload([SETOSA])).status_code == 404
        by_id = post(client, f"{server.url}/serve/iris/7/invocations", split_payload([SETOSA]))
        assert by_id.status_code == 200 and by_id.headers["X-ModelGate-Deployment"] == "7"
        by_name = post(client, f"{server.url}/serve/iris/production/invocations", split_payload([SETOSA]))
        assert by_name.status_code == 200 and by_name.headers["X-ModelGate-Deployment"] == "7"
        unknown_name = post(client, f"{server.url}/serve/iris/staging/invocations", split_payload([SETOSA]))
        assert unknown_name.status_code == 404
        assert unknown_name.json()["error"]["message"] == "model 'iris' has no deployment 'staging'"
        wrong_path = client.get(f"{server.url}/serve/iris/7/predict")
    assert wrong_path.status_code == 404 and wrong_path.json()["error"]["code"] == "not_found"


def test_with_caching_on_a_repeated_request_is_answered_from_the_cache(replicas, gateway_factory):
    server = gateway_factory(table(1, route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature), cache=True))
    with httpx.Client(timeout=30) as client:
        first = post(client, server.invocations(), split_payload([VIRGINICA]))
        again = post(client, server.invocations(), split_payload([VIRGINICA]))
        other = post(client, server.invocations(), split_payload([SETOSA]))
    assert first.headers["X-ModelGate-Cache"] == "miss"
    assert again.headers["X-ModelGate-Cache"] == "hit"
    assert again.content == first.content and again.headers["X-ModelGate-Version"] == "1"
    assert other.headers["X-ModelGate-Cache"] == "miss"
    assert (server.gateway.cache.hits, len(server.gateway.cache)) == (1, 2)


def test_caching_is_off_unless_the_deployment_asks_for_it(replicas, gateway_factory):
    server = gateway_factory(table(1, route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature)))
    with httpx.Client(timeout=30) as client:
        answers = [post(client, server.invocations(), split_payload([VIRGINICA])) for _ in range(2)]
    assert all("X-ModelGate-Cache" not in a.headers for a in answers)
    assert len(server.gateway.cache) == 0


def test_every_answer_is_handed_to_the_prediction_hook(replicas, gateway_factory):
    server = gateway_factory(table(1, route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature)))
    payload = json.dumps(split_payload([VIRGINICA])).encode()
    with httpx.Client(timeout=30) as client:
        ok = client.post(server.invocations(), content=payload, headers={**AUTH, "X-Request-Id": "hook-1"})
        bad = post(client, server.invocations(), {"instances": [[1.0]]}, "hook-2")
    assert (ok.status_code, bad.status_code) == (200, 400)
    first, second = server.predictions
    assert (first.request_id, first.deployment_id, first.version, first.mode, first.status) == (
        "hook-1",
        7,
        1,
        "primary",
        200,
    )
    assert first.input == payload and first.output == ok.content and first.latency_ms > 0
    assert (second.request_id, second.version, second.status) == ("hook-2", None, 400)


def test_health_says_which_revision_is_served(replicas, gateway_factory):
    server = gateway_factory(table(42, route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature)))
    answer = httpx.get(f"{server.url}/serve/-/health")
    assert answer.json() == {"status": "ok", "revision": 42, "deployments": 1}
    assert answer.headers["X-ModelGate-Route-Revision"] == "42"
