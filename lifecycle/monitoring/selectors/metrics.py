"""The figures ``/metrics`` reads from the database when Prometheus scrapes: job queue
depth, worker heartbeat ages, firing alerts and the latest drift values. Read at scrape
time, so every server process (or gunicorn worker) answers the same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.apps import apps
from django.db.models import Count
from django.utils import timezone

from lifecycle.jobs.choices import JobState
from lifecycle.jobs.models import Job, Worker

# Drift values of windows older than this are not exported (the version is no longer
# watched, or the monitor stopped: a stale gauge would look current).
DRIFT_HORIZON = timedelta(days=1)


@dataclass
class ScrapeFigures:
    queued_jobs: dict[str, int] = field(default_factory=dict)
    worker_heartbeat_age: dict[tuple[str, str, str], float] = field(default_factory=dict)
    firing_alerts: dict[str, int] = field(default_factory=dict)
    drift: dict[tuple[str, str, str, str], float] = field(default_factory=dict)


def _model(name: str):  # the monitoring stage's own tables, when this build has them
    try:
        return apps.get_model("lifecycle", name)
    except LookupError:
        return None


def scrape_figures(*, now: datetime | None = None) -> ScrapeFigures:
    """Queued jobs per pool, each worker's heartbeat age (seconds) by name, pool and
    state, firing alerts per model, and per model, version, feature and statistic the
    drift of the newest window (``DRIFT_HORIZON`` at most old)."""
    now = now or timezone.now()
    figures = ScrapeFigures()
    for row in Job.objects.filter(state=JobState.QUEUED).values("pool").annotate(n=Count("id")).order_by():
        figures.queued_jobs[row["pool"] or "default"] = row["n"]
    for name, pool, state, heartbeat in Worker.objects.values_list("name", "pool__name", "state", "last_heartbeat"):
        figures.worker_heartbeat_age[(name, pool, state)] = max((now - heartbeat).total_seconds(), 0.0)
    alert = _model("Alert")
    if alert is not None:
        rows = alert.objects.filter(status="firing").values("model__name").annotate(n=Count("id")).order_by()
        figures.firing_alerts = {row["model__name"]: row["n"] for row in rows}
    window, result = _model("MonitorWindow"), _model("DriftResult")
    if window is not None and result is not None:
        newest: dict[tuple[int, int], int] = {}
        recent = (
            window.objects.filter(end__gte=now - DRIFT_HORIZON)
            .order_by("-end")
            .values_list("id", "model_id", "version_id")[:1000]
        )
        for pk, model_id, version_id in recent:
            newest.setdefault((model_id, version_id), pk)
        drift_rows = result.objects.filter(window_id__in=newest.values()).values_list(
            "window__model__name", "window__version__version", "feature", "psi", "ks", "js"
        )
        for model, version, feature, psi, ks, js in drift_rows:
            for statistic, value in (("psi", psi), ("ks", ks), ("js", js)):
                if value is not None:
                    figures.drift[(model, str(version), feature, statistic)] = float(value)
    return figures
