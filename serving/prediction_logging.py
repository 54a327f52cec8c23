"""The gateway's prediction log hook: which calls are kept, and handing them to the
queue that writes them (``lifecycle.monitoring.prediction_log.PredictionBuffer``).

On the request path it only looks the deployment up in the route table it already
holds (sample rate, model name, ``pii`` columns), draws the sample and appends to a
bounded queue: no parsing, no I/O, no database. Flattening, masking and writing happen
on the buffer's thread; a full queue drops the call and counts it."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lifecycle.deployments.routing import Deployment
from lifecycle.monitoring.prediction_log import BatchWriter, LoggedCall, PredictionBuffer
from serving.prediction_hook import PredictionRecord
from serving.route_table import ServingTable

logger = logging.getLogger(__name__)


class PredictionLogHook:
    """``on_prediction`` for ``create_app``: samples, queues, never waits."""

    def __init__(self, buffer: PredictionBuffer, *, table: Callable[[], ServingTable | None] | None = None) -> None:
        self.buffer = buffer
        self._table = table or (lambda: None)
        self._revision: int | None = None
        self._deployments: dict[int, Deployment] = {}
        self.sampled_out = 0
        self.unrouted = 0

    def attach(self, gateway: Any) -> None:
        """Follow the gateway's route table (``create_app`` calls this)."""
        routes = gateway.routes
        self._table = lambda: routes.current

    def start(self) -> None:
        self.buffer.start()

    def close(self) -> None:
        """Write what is queued; the gateway calls this when it stops."""
        self.buffer.stop()

    def _deployment(self, deployment_id: int) -> Deployment | None:
        table = self._table()
        if table is None:
            return None
        if table.revision != self._revision:
            self._deployments = {d.id: d for d in table.routes.deployments}
            self._revision = table.revision
        return self._deployments.get(deployment_id)

    def __call__(self, record: PredictionRecord) -> None:
        deployment = self._deployment(record.deployment_id)
        if deployment is None:
            self.unrouted += 1
            return
        rate = deployment.log_sample_rate
        # Not the request's routing point: a sample drawn from it would keep one route only.
        if rate < 1.0 and random.random() >= rate:
            self.sampled_out += 1
            return
        self.buffer.offer(
            LoggedCall(
                request_id=record.request_id,
                model=deployment.model,
                version=record.version,
                ts=datetime.now(UTC),
                latency_ms=record.latency_ms,
                status=record.status,
                input=record.input,
                output=record.output,
                deployment_id=record.deployment_id,
                mode=record.mode,
                source="gateway",
                pii=deployment.pii,
            )
        )


def prediction_log_hook(
    writer: BatchWriter, *, capacity: int = 100_000, batch_size: int = 5_000, flush_seconds: float = 5.0
) -> PredictionLogHook:
    return PredictionLogHook(
        PredictionBuffer(writer=writer, capacity=capacity, batch_size=batch_size, flush_seconds=flush_seconds)
    )


def prediction_log_hook_from_settings() -> PredictionLogHook:
    """The production hook: Django's settings, the store ``lifecycle.monitoring.store``
    configures (Django must be set up; the database is not asked)."""
    from django.conf import settings

    from lifecycle.monitoring.store import prediction_store

    store = prediction_store()
    return prediction_log_hook(
        store.write_calls,
        capacity=settings.MODELGATE_PREDICTION_LOG_CAPACITY,
        batch_size=settings.MODELGATE_PREDICTION_LOG_BATCH_ROWS,
        flush_seconds=settings.MODELGATE_PREDICTION_LOG_FLUSH_SECONDS,
    )
