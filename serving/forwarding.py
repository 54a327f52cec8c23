"""Sending a scoring request to a replica: MLflow's scoring server, ``POST /invocations``.

The chosen route's replicas are tried in ``replica_order``, then the fallback routes'.
A replica that cannot be reached, drops the connection or answers 5xx costs only the
time to try the next one; a 4xx is the replica's verdict on the request and is returned
as it is. A replica that could not be reached is tried last for a few seconds, so a dead
one does not cost every request a connection attempt.

One call has one deadline across all of its attempts: each attempt gets what is left of
it, so a caller never waits for every replica's full timeout in turn. When the deadline
passes before any replica answered, the call ends with ``deadline_exceeded`` set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lifecycle.deployments.routing import Deployment, Replica, Route, fallback_routes, replica_order
from serving.replica_client import ReplicaClient, ReplicaDropped, ReplicaUnreachable

logger = logging.getLogger(__name__)

INVOCATIONS_PATH = "/invocations"


@dataclass(frozen=True)
class ReplicaAnswer:
    status: int
    body: bytes
    content_type: str
    route: Route
    replica: Replica


class NoReplicaAnswered(Exception):
    """Every replica of the route and of its fallbacks failed; ``attempts`` says how."""

    def __init__(self, attempts: list[dict[str, Any]], *, deadline_exceeded: bool = False) -> None:
        what = "the call's deadline passed" if deadline_exceeded else "no replica answered"
        super().__init__(f"{what} ({len(attempts)} tried)")
        self.attempts = attempts
        self.deadline_exceeded = deadline_exceeded


class _Deadline:
    """The seconds one call has left, across all of its attempts."""

    def __init__(self, clock: Callable[[], float], seconds: float | None) -> None:
        self._clock = clock
        self._at = None if seconds is None else clock() + seconds

    def remaining(self) -> float | None:
        return None if self._at is None else self._at - self._clock()


class Forwarder:
    def __init__(
        self,
        client: ReplicaClient,
        *,
        suspend_seconds: float = 5.0,
        deadline_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._suspend_seconds = suspend_seconds
        self._deadline_seconds = deadline_seconds
        self._clock = clock
        self._suspended: dict[str, float] = {}
        self.requests = 0
        self.replica_failures = 0

    async def forward(
        self, deployment: Deployment, route: Route, point: float, body: bytes, headers: Mapping[str, str]
    ) -> ReplicaAnswer:
        """The first answer that is no failure, from ``route`` or its fallbacks."""
        attempts: list[dict[str, Any]] = []
        deadline = _Deadline(self._clock, self._deadline_seconds)
        for candidate in (route, *fallback_routes(deployment, route)):
            for replica in self.order(candidate, point):
                answer = await self._try(candidate, replica, body, headers, attempts, deadline)
                if answer is not None:
                    return answer
        raise NoReplicaAnswered(attempts)

    async def mirror(self, route: Route, point: float, body: bytes, headers: Mapping[str, str]) -> ReplicaAnswer:
        """Send a shadow copy: the route's replicas in turn, no fallback."""
        attempts: list[dict[str, Any]] = []
        deadline = _Deadline(self._clock, self._deadline_seconds)
        for replica in self.order(route, point):
            answer = await self._try(route, replica, body, headers, attempts, deadline)
            if answer is not None:
                return answer
        raise NoReplicaAnswered(attempts)

    def order(self, route: Route, point: float) -> list[Replica]:
        """``replica_order``, with the replicas that failed a moment ago moved last."""
        replicas = replica_order(route, point)
        if not self._suspended:
            return replicas
        now = self._clock()
        for url, until in list(self._suspended.items()):
            if until <= now:
                del self._suspended[url]
        return sorted(replicas, key=lambda r: r.url in self._suspended)

    async def _try(
        self,
        route: Route,
        replica: Replica,
        body: bytes,
        headers: Mapping[str, str],
        attempts: list[dict[str, Any]],
        deadline: _Deadline,
    ) -> ReplicaAnswer | None:
        url = replica.url + INVOCATIONS_PATH
        # A kept-alive connection the replica closed between two calls fails without the
        # request having been read: that is worth one more try on a fresh connection
        # before the replica counts as down.
        for attempt in (1, 2):
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0:
                raise NoReplicaAnswered(attempts, deadline_exceeded=True)
            self.requests += 1
            try:
                reply = await self._client.post(url, body, headers, timeout_seconds=remaining)
            except ReplicaDropped as exc:
                if attempt == 1:
                    continue
                self._failed(replica, attempts, exc)
                return None
            except ReplicaUnreachable as exc:
                self._failed(replica, attempts, exc)
                remaining = deadline.remaining()
                if exc.kind == "timeout" and remaining is not None and remaining <= 0:
                    raise NoReplicaAnswered(attempts, deadline_exceeded=True) from exc
                return None
            if reply.status >= 500:
                self.replica_failures += 1
                attempts.append({"replica": replica.id, "status": reply.status})
                logger.warning("replica %s (%s) answered %s", replica.id, replica.url, reply.status)
                return None
            self._suspended.pop(replica.url, None)
            return ReplicaAnswer(
                status=reply.status, body=reply.body, content_type=reply.content_type, route=route, replica=replica
            )
        return None

    def _failed(self, replica: Replica, attempts: list[dict[str, Any]], exc: ReplicaUnreachable) -> None:
        self.replica_failures += 1
        self._suspended[replica.url] = self._clock() + self._suspend_seconds
        attempts.append({"replica": replica.id, "error": exc.kind})
        logger.warning("replica %s (%s) failed: %r", replica.id, replica.url, exc)
