"""The gateway's token cache (no services): one check per token per TTL, a bounded size,
one check shared by concurrent first calls, and accepted tokens honoured while the
database is down."""

from __future__ import annotations

import asyncio

import pytest

from serving.tokens import AuthenticationUnavailable, Principal, TokenCache, TokenRefused

SERVE = Principal("abc", 1, frozenset({"serve"}))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Registry:
    """A token check that counts its calls and can be made to fail like a database."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.down = False
        self.delay = 0.0

    async def __call__(self, plaintext: str) -> Principal:
        self.calls.append(plaintext)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise ConnectionError("database is down")
        if plaintext.startswith("good"):
            return SERVE
        raise TokenRefused("token revoked")


def test_a_token_is_checked_once_within_its_ttl_and_again_after():
    registry, clock = Registry(), Clock()
    cache = TokenCache(registry, ttl_seconds=30, max_entries=10, clock=clock)

    async def scenario():
        for _ in range(5):
            assert await cache.principal("good-1") == SERVE
        clock.now += 31
        assert await cache.principal("good-1") == SERVE

    asyncio.run(scenario())
    assert registry.calls == ["good-1", "good-1"]


def test_a_refused_token_is_refused_from_the_cache_too():
    registry = Registry()
    cache = TokenCache(registry, ttl_seconds=30, max_entries=10)

    async def scenario():
        for _ in range(3):
            with pytest.raises(TokenRefused, match="revoked"):
                await cache.principal("bad")

    asyncio.run(scenario())
    assert registry.calls == ["bad"]


def test_the_cache_keeps_at_most_its_size_and_forgets_the_least_recently_used():
    registry = Registry()
    cache = TokenCache(registry, ttl_seconds=30, max_entries=2)

    async def scenario():
        await cache.principal("good-a")
        await cache.principal("good-b")
        await cache.principal("good-a")  # a is now the most recent
        await cache.principal("good-c")  # b goes
        await cache.principal("good-a")
        await cache.principal("good-b")

    asyncio.run(scenario())
    assert len(cache) == 2
    assert registry.calls == ["good-a", "good-b", "good-c", "good-b"]


def test_concurrent_first_calls_with_one_token_share_one_check():
    registry = Registry()
    registry.delay = 0.05
    cache = TokenCache(registry, ttl_seconds=30, max_entries=10)

    async def scenario():
        return await asyncio.gather(*(cache.principal("good-1") for _ in range(20)))

    assert asyncio.run(scenario()) == [SERVE] * 20
    assert registry.calls == ["good-1"]


def test_an_accepted_token_is_honoured_while_the_database_is_down_and_an_unknown_one_is_not():
    registry, clock = Registry(), Clock()
    cache = TokenCache(registry, ttl_seconds=30, max_entries=10, retry_seconds=5, clock=clock)

    async def scenario():
        await cache.principal("good-1")
        registry.down = True
        clock.now += 31
        assert await cache.principal("good-1") == SERVE
        # Not asked again until the retry delay has passed.
        assert await cache.principal("good-1") == SERVE
        with pytest.raises(AuthenticationUnavailable):
            await cache.principal("good-2")

    asyncio.run(scenario())
    assert registry.calls == ["good-1", "good-1", "good-2"]
    assert cache.stale_answers == 1


def test_the_plaintext_is_never_kept():
    cache = TokenCache(Registry(), ttl_seconds=30, max_entries=10)
    asyncio.run(cache.principal("good-secret"))
    assert all("good-secret" not in key for key in cache._entries)


def test_a_caller_that_goes_away_does_not_cancel_the_check_others_wait_for():
    registry = Registry()
    registry.delay = 0.05
    cache = TokenCache(registry, ttl_seconds=30, max_entries=10)

    async def scenario():
        first = asyncio.ensure_future(cache.principal("good-1"))
        second = asyncio.ensure_future(cache.principal("good-1"))
        await asyncio.sleep(0.01)
        first.cancel()
        assert await second == SERVE
        assert await cache.principal("good-1") == SERVE

    asyncio.run(scenario())
    assert registry.calls == ["good-1"]
