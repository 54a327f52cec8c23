"""Forwarding without replicas (no services): which replica is tried when, on a mock
transport that fails the way real ones do. The same behaviour against MLflow's servers
is in test_gateway.py."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from lifecycle.deployments.routing import Deployment, Replica, Route
from serving.forwarding import Forwarder, NoReplicaAnswered
from serving.gateway import Gateway
from serving.route_table import static_source
from serving.settings import GatewaySettings
from serving.tokens import Principal

BODY = b'{"instances": [[1.0]]}'


def replicas(first_id: int, *names: str) -> tuple[Replica, ...]:
    return tuple(Replica(id=first_id + i, url=f"http://{name}") for i, name in enumerate(names))


PRIMARY = Route(version=1, weight=0.5, mode="primary", replicas=replicas(10, "p0", "p1"))
CANARY = Route(version=2, weight=0.5, mode="canary", replicas=replicas(20, "c0"))
DEPLOYMENT = Deployment(id=1, model="m", name="production", routes=(PRIMARY, CANARY), default=True)


class Replicas:
    """A mock transport: each host answers as told ("ok", a status, "refuse", "drop")."""

    def __init__(self, **behaviour: object) -> None:
        self.behaviour = behaviour
        self.calls: list[str] = []
        self.dropped_once: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.calls.append(host)
        how = self.behaviour.get(host, "ok")
        if how == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        if how == "drop" or (how == "drop-once" and host not in self.dropped_once):
            self.dropped_once.add(host)
            raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)
        if isinstance(how, int):
            return httpx.Response(how, json={"error_code": "X"})
        return httpx.Response(200, json={"predictions": [host]}, headers={"Set-Cookie": f"replica={host}"})


def forward(transport: Replicas, route: Route, point: float, forwarder: Forwarder | None = None):
    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
            return await (forwarder or Forwarder(client)).forward(DEPLOYMENT, route, point, BODY, {})

    return asyncio.run(go())


def test_the_point_chooses_the_first_replica_and_the_next_takes_over_when_it_refuses():
    assert forward(Replicas(), PRIMARY, 0.1).replica.url == "http://p0"
    assert forward(Replicas(), PRIMARY, 0.9).replica.url == "http://p1"
    transport = Replicas(p0="refuse")
    answer = forward(transport, PRIMARY, 0.1)
    assert (answer.replica.url, transport.calls) == ("http://p1", ["p0", "p1"])


def test_a_5xx_moves_on_and_a_4xx_is_the_answer():
    transport = Replicas(p0=503)
    assert forward(transport, PRIMARY, 0.1).replica.url == "http://p1"
    transport = Replicas(p0=400)
    answer = forward(transport, PRIMARY, 0.1)
    assert (answer.status, transport.calls) == (400, ["p0"])


def test_a_dropped_kept_alive_connection_is_retried_once_on_the_same_replica():
    transport = Replicas(p0="drop-once")
    answer = forward(transport, PRIMARY, 0.1)
    assert (answer.replica.url, transport.calls) == ("http://p0", ["p0", "p0"])
    transport = Replicas(p0="drop")
    answer = forward(transport, PRIMARY, 0.1)
    assert (answer.replica.url, transport.calls) == ("http://p1", ["p0", "p0", "p1"])


def test_a_canary_with_no_replica_answering_falls_back_to_the_primary():
    transport = Replicas(c0="refuse")
    answer = forward(transport, CANARY, 0.7)
    assert (answer.route.mode, answer.route.version) == ("primary", 1)


def test_nothing_answering_lists_every_attempt():
    transport = Replicas(p0="refuse", p1=502, c0="refuse")
    with pytest.raises(NoReplicaAnswered) as failed:
        forward(transport, CANARY, 0.7)
    # The canary's replica, then the primary's from the one the point picks (p1).
    assert failed.value.attempts == [
        {"replica": 20, "error": "ConnectError"},
        {"replica": 11, "status": 502},
        {"replica": 10, "error": "ConnectError"},
    ]


def test_a_replica_that_refused_is_tried_last_for_a_while():
    transport = Replicas(p0="refuse")
    now = [0.0]

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
            forwarder = Forwarder(client, suspend_seconds=5, clock=lambda: now[0])
            await forwarder.forward(DEPLOYMENT, PRIMARY, 0.1, BODY, {})
            await forwarder.forward(DEPLOYMENT, PRIMARY, 0.1, BODY, {})
            now[0] = 6.0
            await forwarder.forward(DEPLOYMENT, PRIMARY, 0.1, BODY, {})

    asyncio.run(go())
    # Refused, then skipped while suspended, then tried again once the time is up.
    assert transport.calls == ["p0", "p1", "p1", "p0", "p1"]


def test_a_cookie_one_replica_sets_is_not_sent_on_later_calls():
    seen: list[str | None] = []

    def replica(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json={"predictions": [1]}, headers={"Set-Cookie": "session=caller-a"})

    document = {
        "revision": 1,
        "deployments": [
            {
                "id": 1,
                "model": "m",
                "default": True,
                "routes": [
                    {"version": 1, "weight": 1.0, "mode": "primary", "replicas": [{"id": 1, "url": "http://r"}]}
                ],
            }
        ],
    }

    async def serve(token: str) -> Principal:
        return Principal("t", 1, frozenset({"serve"}))

    async def go():
        gateway = Gateway(
            source=static_source(document),
            authenticator=serve,
            settings=GatewaySettings(),
            transport=httpx.MockTransport(replica),
        )
        async with gateway.running():
            for _ in range(2):

                async def body() -> bytes:
                    return BODY

                answer = await gateway.invoke(
                    model="m", deployment_id=None, headers={"authorization": "Bearer x"}, read_body=body
                )
                assert (answer.status, json.loads(answer.body)) == (200, {"predictions": [1]})

    asyncio.run(go())
    assert seen == [None, None]


def _document(*routes: dict) -> dict:
    return {"revision": 1, "deployments": [{"id": 1, "model": "m", "default": True, "routes": list(routes)}]}


def _route(version: int, weight: float, mode: str, host: str) -> dict:
    return {"version": version, "weight": weight, "mode": mode, "replicas": [{"id": version, "url": f"http://{host}"}]}


async def _serve_everyone(token: str) -> Principal:
    return Principal("t", 1, frozenset({"serve"}))


async def _body() -> bytes:
    return BODY


def test_shadow_copies_beyond_the_bound_are_dropped_and_counted_not_queued():
    release = asyncio.Event()
    shadow_calls: list[str] = []

    async def replicas_answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "shadow":
            shadow_calls.append(request.headers["x-request-id"])
            await release.wait()  # a shadow that hangs
        return httpx.Response(200, json={"predictions": [request.url.host]})

    async def go():
        gateway = Gateway(
            source=static_source(_document(_route(1, 1.0, "primary", "live"), _route(2, 0.0, "shadow", "shadow"))),
            authenticator=_serve_everyone,
            settings=GatewaySettings(shadow_concurrency=2),
            transport=httpx.MockTransport(replicas_answer),
        )
        async with gateway.running():
            for i in range(5):
                answer = await gateway.invoke(
                    model="m",
                    deployment_id=None,
                    headers={"authorization": "Bearer x", "x-request-id": f"r{i}"},
                    read_body=_body,
                )
                assert json.loads(answer.body) == {"predictions": ["live"]}
            await asyncio.sleep(0.01)
            counters = (gateway.counters.shadow_sent, gateway.counters.shadow_dropped)
            release.set()
            await asyncio.sleep(0.01)
            return counters, gateway.counters.shadow_sent

    (in_flight, dropped), sent = asyncio.run(go())
    assert (in_flight, dropped, sent) == (0, 3, 2)
    assert shadow_calls == ["r0", "r1"]


def test_an_async_prediction_hook_runs_after_the_answer_without_holding_it():
    records = []

    async def slow_hook(record) -> None:
        await asyncio.sleep(0.05)
        records.append(record)

    async def go():
        gateway = Gateway(
            source=static_source(_document(_route(1, 1.0, "primary", "live"))),
            authenticator=_serve_everyone,
            on_prediction=slow_hook,
            transport=httpx.MockTransport(lambda request: httpx.Response(200, json={"predictions": [1]})),
        )
        async with gateway.running():
            answer = await gateway.invoke(
                model="m",
                deployment_id=None,
                headers={"authorization": "Bearer x", "x-request-id": "h1"},
                read_body=_body,
            )
            answered_before_the_hook_finished = records == []
            await asyncio.sleep(0.1)
        return answer, answered_before_the_hook_finished

    answer, early = asyncio.run(go())
    assert answer.status == 200 and early
    (record,) = records
    assert (record.request_id, record.version, record.mode, record.status, record.input) == (
        "h1",
        1,
        "primary",
        200,
        BODY,
    )
