"""The route table the gateway serves from, and how it follows the one the control plane
publishes.

The gateway never asks the database per request: ``RouteTableFollower`` asks its
``RouteTableSource`` every ``refresh_seconds`` in the background and swaps in a new
snapshot when the revision changes. When the source fails (the database is down) or
publishes a table that does not parse, the last good table keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lifecycle.deployments.routing import RouteTable, RouteTableError, parse_route_table
from serving.validation import InputSchema, input_schema

logger = logging.getLogger(__name__)

# The latest published document, or None when nothing is published yet.
RouteTableSource = Callable[[], Awaitable[Mapping[str, Any] | None]]

# While the source keeps failing, a warning at most this often.
_WARN_EVERY_SECONDS = 30.0


class StaticSource:
    """A source that returns the document it was given; ``publish`` replaces it (as the
    control plane publishing a new revision would)."""

    def __init__(self, document: Mapping[str, Any] | None) -> None:
        self.document = document
        self.calls = 0

    def publish(self, document: Mapping[str, Any] | None) -> None:
        self.document = document

    async def __call__(self) -> Mapping[str, Any] | None:
        self.calls += 1
        return copy.deepcopy(self.document)


def static_source(document: Mapping[str, Any] | None) -> StaticSource:
    return StaticSource(document)


@dataclass(frozen=True)
class ServingTable:
    """A parsed route table with each route's input schema read once."""

    routes: RouteTable
    schemas: Mapping[tuple[int, int], InputSchema]

    @property
    def revision(self) -> int:
        return self.routes.revision

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> ServingTable:
        """The table of a document, or ``RouteTableError`` naming what is wrong."""
        routes = parse_route_table(document)
        schemas = {}
        for deployment in routes.deployments:
            for route in deployment.routes:
                try:
                    schemas[(deployment.id, route.version)] = input_schema(route.signature)
                except ValueError as exc:
                    raise RouteTableError(
                        f"deployment {deployment.id}, version {route.version}: unreadable signature: {exc}"
                    ) from exc
        return cls(routes=routes, schemas=schemas)

    def schema(self, deployment_id: int, version: int) -> InputSchema | None:
        return self.schemas.get((deployment_id, version))


class RouteTableFollower:
    """Holds the current ``ServingTable`` and refreshes it from ``source``."""

    def __init__(
        self, source: RouteTableSource, *, refresh_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._source = source
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self.current: ServingTable | None = None
        self.failures = 0
        self.refreshed_at: float | None = None
        self._failing_since: float | None = None
        self._warned_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fetch: asyncio.Task[Mapping[str, Any] | None] | None = None

    async def refresh(self, *, timeout: float | None = None) -> bool:
        """Ask the source once; True when a new revision was taken."""
        if self._fetch is not None and not self._fetch.done():
            # The previous question is still out (a slow database): don't stack another.
            return False
        self._fetch = asyncio.ensure_future(self._source())
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the fetch completes, and stop() would hang.
            async with asyncio.timeout(timeout):
                document = await asyncio.shield(self._fetch)
        except Exception as exc:
            self._failed(f"the route table source failed: {exc!r}")
            return False
        if document is None:
            # Nothing published yet: an empty table (revision 0), so the gateway is up
            # and answers 404 until the first deployment; a table already held is kept.
            if self.current is None:
                self.current = ServingTable(routes=RouteTable(revision=0), schemas={})
            self._succeeded()
            return False
        current = self.current
        if current is not None and isinstance(document, Mapping) and document.get("revision") == current.revision:
            self._succeeded()
            return False
        try:
            table = ServingTable.parse(document)
        except RouteTableError as exc:
            self._failed(f"the published route table is refused: {exc}")
            return False
        self.current = table
        self._succeeded()
        logger.info(
            "serving route table revision %s (%s deployments)%s",
            table.revision,
            len(table.routes.deployments),
            f", was {current.revision}" if current is not None else "",
        )
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="route-table-refresh")

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._task, self._fetch):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._refresh_seconds)
            if self._stopping:
                return
            try:
                await self.refresh(timeout=max(5.0, 5 * self._refresh_seconds))
            except Exception:  # never let the loop die: the next round may work
                logger.exception("route table refresh failed")

    def _succeeded(self) -> None:
        self.refreshed_at = self._clock()
        if self._failing_since is not None:
            logger.info("the route table source answers again after %.1f s", self.refreshed_at - self._failing_since)
        self._failing_since = None
        self._warned_at = None

    def _failed(self, message: str) -> None:
        self.failures += 1
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if self._warned_at is None or now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            revision = self.current.revision if self.current is not None else None
            logger.warning("%s; still serving revision %s", message, revision)
