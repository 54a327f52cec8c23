"""The gateway's Prometheus metrics, served at ``GET /metrics``.

Request counts and latencies per model, version and route are recorded as each call is
answered; the gateway's own counters (prediction-log queue and drops, shadows, the route
table) are read when Prometheus scrapes. Each app has its own registry, so several
gateways in one process (tests, benchmarks) do not mix their figures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Gateway overhead is sub-millisecond; predictions themselves take up to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# What a label holds when the call never reached a deployment (unknown model, bad token):
# never the caller's path, so that a scan of made-up names cannot grow the series.
NONE = "-"


class GatewayMetrics:
    def __init__(self, gateway: Any, hook: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelgate_gateway_requests",
            "Scoring calls answered by the gateway",
            ["model", "version", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelgate_gateway_request_duration_seconds",
            "Time from a call's arrival to its answer, per model, version and route",
            ["model", "version", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_GatewayCollector(gateway, hook))

    def observe(
        self, *, model: str | None, version: str | None, route: str | None, status: int, seconds: float
    ) -> None:
        labels = (model or NONE, version or NONE, route or NONE)
        self.requests.labels(*labels, str(status)).inc()
        self.latency.labels(*labels).observe(seconds)


class _GatewayCollector(Collector):
    def __init__(self, gateway: Any, hook: Any) -> None:
        self._gateway = gateway
        self._hook = hook

    def collect(self) -> Iterator[Metric]:
        gateway = self._gateway
        handover = gateway.predictions
        dropped = CounterMetricFamily(
            "modelgate_prediction_log_dropped",
            "Calls the prediction log did not keep, by reason (queue full, hook busy, write failed)",
            labels=["reason"],
        )
        buffer = getattr(self._hook, "buffer", None)
        if buffer is not None:
            dropped.add_metric(["queue_full"], buffer.counters.dropped)
            dropped.add_metric(["write_failed"], buffer.counters.lost)
        dropped.add_metric(["hook_busy"], handover.dropped)
        dropped.add_metric(["hook_failed"], handover.failures)
        yield dropped
        if buffer is not None:
            written = CounterMetricFamily(
                "modelgate_prediction_log_written_rows", "Rows the prediction log wrote to its store"
            )
            written.add_metric([], buffer.counters.written_rows)
            yield written
            queued = GaugeMetricFamily("modelgate_prediction_log_queued", "Calls waiting to be written")
            queued.add_metric([], buffer.depth)
            yield queued
        sampled_out = getattr(self._hook, "sampled_out", None)
        if sampled_out is not None:
            skipped = CounterMetricFamily(
                "modelgate_prediction_log_sampled_out", "Calls left out of the log by the deployment's sample rate"
            )
            skipped.add_metric([], sampled_out)
            yield skipped
        counters = gateway.counters
        shadows = CounterMetricFamily("modelgate_gateway_shadow_calls", "Shadow copies, by outcome", labels=["outcome"])
        shadows.add_metric(["sent"], counters.shadow_sent)
        shadows.add_metric(["failed"], counters.shadow_failed)
        shadows.add_metric(["dropped"], counters.shadow_dropped)
        yield shadows
        table = gateway.routes.current
        revision = GaugeMetricFamily("modelgate_gateway_route_table_revision", "Revision of the route table served")
        revision.add_metric([], table.revision if table is not None else -1)
        yield revision
        failures = CounterMetricFamily(
            "modelgate_gateway_route_table_failures", "Route table refreshes that failed or were refused"
        )
        failures.add_metric([], gateway.routes.failures)
        yield failures
