"""What the gateway hands over after each answer, for the prediction log to keep.

The hook is called without the caller's answer waiting for it: a plain function should
only queue the record; a coroutine function runs as a task of its own (at most
``max_pending`` at once, the rest dropped and counted). A failing hook is logged and
counted, never felt by the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionRecord:
    request_id: str
    deployment_id: int
    # The version and route mode that answered; None when no replica did.
    version: int | None
    mode: str | None
    latency_ms: float
    status: int
    input: bytes
    output: bytes


PredictionHook = Callable[[PredictionRecord], Awaitable[None] | None]


class PredictionHandOver:
    def __init__(self, hook: PredictionHook | None, *, max_pending: int = 1024) -> None:
        self._hook = hook
        self._max_pending = max_pending
        self._pending: set[asyncio.Task[None]] = set()
        self.failures = 0
        self.dropped = 0

    def __call__(self, record: PredictionRecord) -> None:
        if self._hook is None:
            return
        try:
            result = self._hook(record)
        except Exception:
            self.failures += 1
            logger.exception("the prediction hook failed for request %s", record.request_id)
            return
        if not inspect.isawaitable(result):
            return
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            if inspect.iscoroutine(result):
                result.close()
            return
        task = asyncio.ensure_future(result)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failures += 1
            logger.error("the prediction hook failed: %r", task.exception())

    def start(self) -> None:
        """Start the hook's own machinery (a writer thread), when it has any."""
        start = getattr(self._hook, "start", None)
        if start is not None:
            start()

    async def close(self) -> None:
        """Let the hook write what it holds (``close``, off the event loop)."""
        close = getattr(self._hook, "close", None)
        if close is not None:
            try:
                await asyncio.to_thread(close)
            except Exception:
                logger.exception("the prediction hook failed to close")

    async def drain(self, timeout: float) -> None:
        """Let pending hooks finish for up to ``timeout`` seconds, then cancel the rest."""
        if not self._pending:
            return
        _, late = await asyncio.wait(set(self._pending), timeout=timeout)
        for task in late:
            task.cancel()
