"""How the gateway follows the published route table (no services): a new revision is
taken, a failing source or a bad document leaves the last good table in service, and a
slow source is not asked twice at once. Also the answer cache's bounds."""

from __future__ import annotations

import asyncio
import json
import logging

from serving.gateway import Gateway
from serving.response_cache import CachedAnswer, ResponseCache
from serving.route_table import RouteTableFollower, ServingTable, static_source

SIGNATURE = {"inputs": [{"type": "double", "name": "x", "required": True}]}


def document(revision: int, primary_version: int = 1) -> dict:
    return {
        "revision": revision,
        "deployments": [
            {
                "id": 3,
                "model": "fraud-detector",
                "name": "production",
                "default": True,
                "routes": [
                    {
                        "version": primary_version,
                        "weight": 1.0,
                        "mode": "primary",
                        "signature": SIGNATURE,
                        "replicas": [{"id": 1, "url": "http://127.0.0.1:9/", "healthy": True}],
                    }
                ],
            }
        ],
    }


class FlakySource:
    def __init__(self, document: dict | None) -> None:
        self.document = document
        self.failing = False
        self.calls = 0
        self.delay = 0.0

    async def __call__(self):
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing:
            raise ConnectionError("could not connect to server")
        return self.document


def test_a_parsed_table_reads_each_routes_signature_once():
    table = ServingTable.parse(document(4, primary_version=2))
    assert table.revision == 4
    assert [c.name for c in table.schema(3, 2).columns] == ["x"]
    assert table.schema(3, 1) is None


def test_a_new_revision_is_taken_and_the_same_one_is_not_parsed_again():
    source = static_source(document(1))
    follower = RouteTableFollower(source, refresh_seconds=1)

    async def scenario():
        assert await follower.refresh()
        first = follower.current
        assert not await follower.refresh()
        assert follower.current is first
        source.publish(document(2, primary_version=5))
        assert await follower.refresh()

    asyncio.run(scenario())
    assert follower.current.revision == 2
    assert follower.current.routes.deployment_for("fraud-detector").primary.version == 5


def test_a_failing_source_keeps_the_last_table_in_service_and_warns(caplog):
    source = FlakySource(document(7))
    follower = RouteTableFollower(source, refresh_seconds=1)

    async def scenario():
        await follower.refresh()
        source.failing = True
        with caplog.at_level(logging.WARNING, logger="serving.route_table"):
            for _ in range(3):
                assert not await follower.refresh()

    asyncio.run(scenario())
    assert follower.current.revision == 7
    assert follower.failures == 3
    # One warning for the outage, not one per refresh.
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "the route table source failed: ConnectionError('could not connect to server'); still serving revision 7"
    ]


def test_a_published_table_that_does_not_parse_is_refused_and_the_last_one_kept():
    source = FlakySource(document(1))
    follower = RouteTableFollower(source, refresh_seconds=1)

    async def scenario():
        await follower.refresh()
        bad = document(2)
        bad["deployments"][0]["routes"][0]["weight"] = 0.5  # live weights must sum to 1
        source.document = bad
        assert not await follower.refresh()
        source.document = None  # nothing published: keep what we have
        assert not await follower.refresh()

    asyncio.run(scenario())
    assert follower.current.revision == 1
    assert follower.failures == 1


def test_the_background_loop_follows_a_new_revision_within_the_refresh_period():
    source = static_source(document(1))
    follower = RouteTableFollower(source, refresh_seconds=0.05)

    async def scenario():
        await follower.refresh()
        follower.start()
        source.publish(document(2))
        for _ in range(40):
            await asyncio.sleep(0.01)
            if follower.current.revision == 2:
                break
        await follower.stop()

    asyncio.run(scenario())
    assert follower.current.revision == 2


def test_before_anything_is_published_the_table_is_empty_at_revision_zero():
    source = static_source(None)
    follower = RouteTableFollower(source, refresh_seconds=1)

    async def scenario():
        await follower.refresh()
        assert (follower.current.revision, follower.current.routes.deployments) == (0, ())
        source.publish(document(1))
        assert await follower.refresh()

    asyncio.run(scenario())
    assert follower.current.revision == 1


def test_a_gateway_whose_source_never_answered_reports_starting():
    source = FlakySource(None)
    source.failing = True
    gateway = Gateway(source=source, authenticator=None)  # type: ignore[arg-type]
    asyncio.run(gateway.routes.refresh())
    health = gateway.health()
    assert (health.status, json.loads(health.body)) == (503, {"status": "starting", "revision": None, "deployments": 0})
    source.failing = False
    asyncio.run(gateway.routes.refresh())
    assert json.loads(gateway.health().body) == {"status": "ok", "revision": 0, "deployments": 0}


def test_a_slow_source_is_not_asked_again_while_a_question_is_out():
    source = FlakySource(document(1))
    source.delay = 0.3
    follower = RouteTableFollower(source, refresh_seconds=1)

    async def scenario():
        assert not await follower.refresh(timeout=0.05)
        assert not await follower.refresh(timeout=0.05)
        await asyncio.sleep(0.3)
        assert await follower.refresh(timeout=1)

    asyncio.run(scenario())
    assert source.calls == 2


def test_the_answer_cache_is_a_bounded_lru_with_a_ttl_for_successful_answers_only():
    now = [0.0]
    cache = ResponseCache(max_entries=2, ttl_seconds=10, max_answer_bytes=100, clock=lambda: now[0])
    ok = CachedAnswer(200, b'{"predictions": [1]}', "application/json")
    a, b, c = (ResponseCache.key(1, 1, body) for body in (b"a", b"b", b"c"))
    cache.put(a, ok)
    cache.put(b, ok)
    assert cache.get(a) == ok
    cache.put(c, ok)  # b was the least recently used
    assert cache.get(b) is None and cache.get(a) == ok and cache.get(c) == ok
    now[0] = 11
    assert cache.get(a) is None
    cache.put(a, CachedAnswer(400, b"{}", "application/json"))
    cache.put(b, CachedAnswer(200, b"x" * 101, "application/json"))
    assert cache.get(a) is None and cache.get(b) is None
    assert ResponseCache.key(1, 1, b"a") != ResponseCache.key(1, 2, b"a") != ResponseCache.key(2, 1, b"a")
