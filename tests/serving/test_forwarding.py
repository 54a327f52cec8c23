"""Forwarding without replicas (no services): which replica is tried when, on a replica
client that fails the way the real one does. The same behaviour against MLflow's servers
is in test_gateway.py; the real client against a real HTTP server is at the end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from lifecycle.deployments.routing import Deployment, Replica, Route
from serving.forwarding import Forwarder, NoReplicaAnswered
from serving.gateway import Gateway
from serving.replica_client import PooledReplicaClient, ReplicaDropped, ReplicaReply, ReplicaUnreachable
from serving.route_table import static_source
from serving.settings import GatewaySettings
from serving.tokens import Principal

BODY = b'{"instances": [[1.0]]}'


def replicas(first_id: int, *names: str) -> tuple[Replica, ...]:
    return tuple(Replica(id=first_id + i, url=f"http://{name}") for i, name in enumerate(names))


PRIMARY = Route(version=1, weight=0.5, mode="primary", replicas=replicas(10, "p0", "p1"))
CANARY = Route(version=2, weight=0.5, mode="canary", replicas=replicas(20, "c0"))
DEPLOYMENT = Deployment(id=1, model="m", name="production", routes=(PRIMARY, CANARY), default=True)


def _reply(status: int, payload: object) -> ReplicaReply:
    return ReplicaReply(status=status, body=json.dumps(payload).encode(), content_type="application/json")


class Replicas:
    """Replicas that answer as told per host ("ok", a status, "refuse", "drop", "drop-once")."""

    def __init__(self, **behaviour: object) -> None:
        self.behaviour = behaviour
        self.calls: list[str] = []
        self.dropped_once: set[str] = set()
        self.timeouts: list[float | None] = []

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float | None = None
    ) -> ReplicaReply:
        host = urlsplit(url).hostname or ""
        self.calls.append(host)
        self.timeouts.append(timeout_seconds)
        how = self.behaviour.get(host, "ok")
        if how == "refuse":
            raise ReplicaUnreachable("connection refused")
        if how == "drop" or (how == "drop-once" and host not in self.dropped_once):
            self.dropped_once.add(host)
            raise ReplicaDropped("server disconnected without sending a response")
        if isinstance(how, int):
            return _reply(how, {"error_code": "X"})
        return _reply(200, {"predictions": [host]})

    async def aclose(self) -> None:
        pass


class Answering:
    """Every replica answers through ``handler(host, headers)``."""

    def __init__(self, handler: Callable[[str, Mapping[str, str]], Awaitable[ReplicaReply]]) -> None:
        self.handler = handler

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float | None = None
    ) -> ReplicaReply:
        return await self.handler(urlsplit(url).hostname or "", headers)

    async def aclose(self) -> None:
        pass


def forward(replicas: Replicas, route: Route, point: float, forwarder: Forwarder | None = None):
    async def go():
        return await (forwarder or Forwarder(replicas)).forward(DEPLOYMENT, route, point, BODY, {})

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
        {"replica": 20, "error": "refused"},
        {"replica": 11, "status": 502},
        {"replica": 10, "error": "refused"},
    ]


def test_a_replica_that_refused_is_tried_last_for_a_while():
    transport = Replicas(p0="refuse")
    now = [0.0]

    async def go():
        forwarder = Forwarder(transport, suspend_seconds=5, clock=lambda: now[0])
        await forwarder.forward(DEPLOYMENT, PRIMARY, 0.1, BODY, {})
        await forwarder.forward(DEPLOYMENT, PRIMARY, 0.1, BODY, {})
        now[0] = 6.0
        await forwarder.forward(DEPLOYMENT, PRIMARY, 0.1, BODY, {})

    asyncio.run(go())
    # Refused, then skipped while suspended, then tried again once the time is up.
    assert transport.calls == ["p0", "p1", "p1", "p0", "p1"]


class SlowReplicas(Replicas):
    """Replicas that each take ``seconds`` of a fake clock and then time out; a call's
    own ``timeout_seconds`` cuts that short, as the real client's cap does."""

    def __init__(self, now: list[float], seconds: float) -> None:
        super().__init__()
        self.now = now
        self.seconds = seconds

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float | None = None
    ) -> ReplicaReply:
        self.calls.append(urlsplit(url).hostname or "")
        self.timeouts.append(timeout_seconds)
        self.now[0] += self.seconds if timeout_seconds is None else min(self.seconds, timeout_seconds)
        raise ReplicaUnreachable("no answer in time", kind="timeout")


def test_each_attempt_gets_what_is_left_of_the_calls_deadline_and_none_starts_after_it():
    now = [0.0]
    transport = SlowReplicas(now, seconds=4.0)
    forwarder = Forwarder(transport, deadline_seconds=10.0, clock=lambda: now[0])
    with pytest.raises(NoReplicaAnswered) as failed:
        forward(transport, CANARY, 0.7, forwarder)
    # c0 takes 4 s, p1 4 s, p0 is cut to the 2 s left; nothing is tried after that.
    assert transport.calls == ["c0", "p1", "p0"]
    assert transport.timeouts == [10.0, 6.0, 2.0]
    assert failed.value.deadline_exceeded
    assert [a["error"] for a in failed.value.attempts] == ["timeout", "timeout", "timeout"]


def test_replicas_that_fail_fast_are_all_tried_within_the_deadline_and_it_is_no_timeout():
    transport = Replicas(p0="refuse", p1=502, c0="refuse")
    with pytest.raises(NoReplicaAnswered) as failed:
        forward(transport, CANARY, 0.7, Forwarder(transport, deadline_seconds=10.0))
    assert transport.calls == ["c0", "p1", "p0"]
    assert not failed.value.deadline_exceeded


def test_the_gateway_answers_504_naming_the_deadline_when_it_passes():
    async def hanging(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({"predictions": [1]})

    async def go():
        runner, url = await _serving(hanging)
        document = _document({"version": 1, "weight": 1.0, "mode": "primary", "replicas": [{"id": 1, "url": url}]})
        gateway = Gateway(
            source=static_source(document),
            authenticator=_serve_everyone,
            settings=GatewaySettings(call_deadline_seconds=0.2, replica_timeout_seconds=30.0),
        )
        try:
            async with gateway.running():
                return await gateway.invoke(
                    model="m", deployment_id=None, headers={"authorization": "Bearer x"}, read_body=_body
                )
        finally:
            await runner.cleanup()

    answer = asyncio.run(go())
    error = json.loads(answer.body)["error"]
    assert (answer.status, error["code"]) == (504, "deadline_exceeded")
    assert error["details"]["attempts"] == [{"replica": 1, "error": "timeout"}]
    assert error["details"]["deadline_seconds"] == 0.2


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

    async def replicas_answer(host: str, headers: Mapping[str, str]) -> ReplicaReply:
        if host == "shadow":
            shadow_calls.append(headers["X-Request-Id"])
            await release.wait()  # a shadow that hangs
        return _reply(200, {"predictions": [host]})

    async def go():
        gateway = Gateway(
            source=static_source(_document(_route(1, 1.0, "primary", "live"), _route(2, 0.0, "shadow", "shadow"))),
            authenticator=_serve_everyone,
            settings=GatewaySettings(shadow_concurrency=2),
            replica_client=Answering(replicas_answer),
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
            replica_client=Replicas(),
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


# --- the real client against a real HTTP server on loopback ----------------------------


async def _serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/invocations", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def _client(**overrides: float) -> PooledReplicaClient:
    options = {
        "max_connections": 8,
        "keepalive_expiry_seconds": 4.0,
        "connect_timeout_seconds": 1.0,
        "replica_timeout_seconds": 5.0,
        **overrides,
    }
    return PooledReplicaClient(**options)


def test_a_cookie_one_replica_sets_is_not_sent_on_later_calls():
    seen: list[str | None] = []

    async def replica(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response({"predictions": [1]})
        response.set_cookie("session", "caller-a")
        return response

    async def go():
        runner, url = await _serving(replica)
        document = _document({"version": 1, "weight": 1.0, "mode": "primary", "replicas": [{"id": 1, "url": url}]})
        gateway = Gateway(source=static_source(document), authenticator=_serve_everyone, settings=GatewaySettings())
        try:
            async with gateway.running():
                for _ in range(2):
                    answer = await gateway.invoke(
                        model="m", deployment_id=None, headers={"authorization": "Bearer x"}, read_body=_body
                    )
                    assert (answer.status, json.loads(answer.body)) == (200, {"predictions": [1]})
        finally:
            await runner.cleanup()

    asyncio.run(go())
    assert seen == [None, None]


def test_the_real_client_passes_body_headers_and_status_through():
    async def replica(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(
            status=400,
            body=json.dumps({"echo": body.decode(), "id": request.headers["X-Request-Id"]}).encode(),
            content_type="application/json",
        )

    async def go():
        runner, url = await _serving(replica)
        client = _client()
        try:
            return await client.post(url + "/invocations", BODY, {"X-Request-Id": "r-1"})
        finally:
            await client.aclose()
            await runner.cleanup()

    reply = asyncio.run(go())
    assert reply.status == 400
    assert reply.content_type.startswith("application/json")
    assert json.loads(reply.body) == {"echo": BODY.decode(), "id": "r-1"}


def test_the_real_client_names_a_refused_connection_and_a_timeout():
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"predictions": [1]})

    async def go():
        runner, url = await _serving(slow)
        client = _client(replica_timeout_seconds=0.2)
        try:
            with pytest.raises(ReplicaUnreachable) as timed_out:
                await client.post(url + "/invocations", BODY, {})
            port = runner.addresses[0][1]
            await runner.cleanup()
            with pytest.raises(ReplicaUnreachable) as refused:
                await client.post(f"http://127.0.0.1:{port}/invocations", BODY, {})
        finally:
            await client.aclose()
        return timed_out.value, refused.value

    timed_out, refused = asyncio.run(go())
    assert (timed_out.kind, refused.kind) == ("timeout", "refused")
    assert not isinstance(refused, ReplicaDropped)


def test_the_real_client_names_a_connection_closed_without_an_answer_a_drop():
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def go():
        server = await asyncio.start_server(closing, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = _client()
        try:
            with pytest.raises(ReplicaDropped) as dropped:
                await client.post(f"http://127.0.0.1:{port}/invocations", BODY, {})
        finally:
            await client.aclose()
            server.close()
            await server.wait_closed()
        return dropped.value

    assert asyncio.run(go()).kind == "dropped"
