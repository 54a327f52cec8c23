"""``GET /metrics`` of the API service, in Prometheus' text format.

Request counts and latencies per route (the URL pattern, not the path), method, status
and model are counted by ``RequestMetricsMiddleware`` in each process; with several
processes (gunicorn workers) set ``PROMETHEUS_MULTIPROC_DIR`` to a directory they share
and the view adds them up (prometheus_client's multiprocess mode). Figures that live in
the database (job queue depth, worker heartbeats, firing alerts, drift) are read at
scrape time (``selectors.metrics.scrape_figures``), once for all processes. With
``MODELGATE_METRICS_TOKEN`` set, a scrape must send it as a bearer token
(``lifecycle.monitoring.scrape``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from lifecycle.monitoring.scrape import UNAUTHORIZED, scrape_allowed
from lifecycle.monitoring.selectors.metrics import scrape_figures

NONE = "-"
REQUESTS = Counter(
    "modelgate_http_requests",
    "API and UI requests answered, per route pattern, method, status and model",
    ["route", "method", "status", "model"],
)
LATENCY = Histogram(
    "modelgate_http_request_duration_seconds",
    "Time to answer an API or UI request, per route pattern and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class RequestMetricsMiddleware:
    """Counts each request under its URL pattern (bounded: never the raw path)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = f"/{match.route}" if match is not None and match.route else NONE
        if route == "/metrics":
            return response
        # A model name from the URL only for a request that found it: made-up names
        # must not grow the series.
        model = str(match.kwargs.get("name", NONE)) if match is not None and response.status_code != 404 else NONE
        method = request.method or NONE
        REQUESTS.labels(route, method, str(response.status_code), model).inc()
        LATENCY.labels(route, method).observe(time.perf_counter() - started)
        return response


class _DatabaseFigures(Collector):
    def collect(self) -> Iterator[Metric]:
        figures = scrape_figures()
        queued = GaugeMetricFamily("modelgate_job_queue_depth", "Jobs waiting to be placed, per pool", labels=["pool"])
        for pool, count in sorted(figures.queued_jobs.items()):
            queued.add_metric([pool], count)
        yield queued
        heartbeat = GaugeMetricFamily(
            "modelgate_worker_heartbeat_age_seconds",
            "Seconds since each worker's last heartbeat",
            labels=["worker", "pool", "state"],
        )
        for (worker, pool, state), age in sorted(figures.worker_heartbeat_age.items()):
            heartbeat.add_metric([worker, pool, state], age)
        yield heartbeat
        alerts = GaugeMetricFamily("modelgate_alerts_firing", "Alerts firing, per model", labels=["model"])
        for model, count in sorted(figures.firing_alerts.items()):
            alerts.add_metric([model], count)
        yield alerts
        drift = GaugeMetricFamily(
            "modelgate_drift",
            "Drift of each feature in the newest monitoring window, per statistic (psi, ks, js)",
            labels=["model", "version", "feature", "statistic"],
        )
        for (model, version, feature, statistic), value in sorted(figures.drift.items()):
            drift.add_metric([model, version, feature, statistic], value)
        yield drift


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus' scrape: the process's (or all processes') request metrics, then the
    database's figures."""
    if not scrape_allowed(request.headers.get("Authorization"), settings.MODELGATE_METRICS_TOKEN):
        refused = JsonResponse(UNAUTHORIZED, status=401)
        refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
        own = generate_latest(processes)
    else:
        own = generate_latest(REGISTRY)
    database = CollectorRegistry(auto_describe=False)
    database.register(_DatabaseFigures())
    return HttpResponse(own + generate_latest(database), content_type=CONTENT_TYPE_LATEST)
