"""Answers kept for identical requests, for deployments whose ``cache`` flag is on.

Keyed by deployment, version and a digest of the request's exact bytes: a version's
model never changes, so its answer to the same bytes stays right until the entry's
time runs out. A small LRU, so memory stays bounded whatever callers send.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

CacheKey = tuple[int, int, bytes]


@dataclass(frozen=True)
class CachedAnswer:
    status: int
    body: bytes
    content_type: str


class ResponseCache:
    def __init__(
        self,
        *,
        max_entries: int,
        ttl_seconds: float,
        max_answer_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._max_answer_bytes = max_answer_bytes
        self._clock = clock
        self._entries: OrderedDict[CacheKey, tuple[float, CachedAnswer]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(deployment_id: int, version: int, body: bytes) -> CacheKey:
        return (deployment_id, version, hashlib.blake2b(body, digest_size=16).digest())

    def get(self, key: CacheKey) -> CachedAnswer | None:
        found = self._entries.get(key)
        if found is None or found[0] <= self._clock():
            if found is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        """Keep a successful answer that is small enough; others are not cached."""
        if answer.status != 200 or len(answer.body) > self._max_answer_bytes or self._ttl <= 0:
            return
        self._entries[key] = (self._clock() + self._ttl, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
