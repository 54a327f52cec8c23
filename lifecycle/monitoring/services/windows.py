"""Windows of a deployed version's traffic: read from the prediction log, compared with
the reference profile, stored once per window with one drift row per feature.

Windows are aligned on multiples of their length since the epoch (the deployment's
``monitor_every_minutes``, else ``MODELGATE_MONITOR_WINDOW_SECONDS``), so every worker
agrees on where one starts; a window is computed once it has ended, and the unique
constraint on (version, deployment, start) makes a second computation of the same window
a no-op. Ground truth that arrives after a window was computed (a late label) has its
labels and live metrics computed again (``route_windows_relabel``); its drift, which no
label changes, stays.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from lifecycle.deployments.choices import DeploymentState, RouteMode
from lifecycle.deployments.models import Deployment, Route
from lifecycle.deployments.monitor_windows import window_floor, window_next_end, window_step
from lifecycle.monitoring.drift import PREDICTION, window_drift
from lifecycle.monitoring.live_metrics import live_metrics
from lifecycle.monitoring.models import DriftResult, MonitorWindow
from lifecycle.monitoring.selectors import prediction_window
from lifecycle.monitoring.selectors.predictions import label_arrivals, prediction_request_ids
from lifecycle.monitoring.services.references import reference_profile_of_version
from registry.models import ModelVersion

log = logging.getLogger(__name__)

_ANSWER_KEYS = ("label", "prediction", "predicted_label", "class")


def _answer(value: Any) -> Any:
    """A logged prediction as one value: an object's label, a scalar as it is."""
    if isinstance(value, Mapping):
        return next((value[key] for key in _ANSWER_KEYS if key in value), None)
    return None if isinstance(value, (list, tuple)) else value


def _answers(series: pd.Series) -> pd.Series:
    values = series.map(_answer)
    numeric = pd.to_numeric(values, errors="coerce")
    # All numbers: compare as numbers (so 1 and 1.0 are one class); else as text.
    return numeric if numeric.notna().sum() == values.notna().sum() else values


def _status_failed(status: pd.Series) -> np.ndarray:
    codes = pd.to_numeric(status, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return (codes >= 400) | np.isnan(codes)


@dataclass(frozen=True)
class WindowFigures:
    """Rows, latency, errors and live metrics of one window's frame."""

    rows: int
    labels: int
    latency_p95_ms: float | None
    error_rate: float | None
    metrics: dict[str, float | None]


def window_figures(frame: pd.DataFrame, *, task: str) -> WindowFigures:
    rows = len(frame)
    latency = None
    if rows and "latency_ms" in frame:
        values = pd.to_numeric(frame["latency_ms"], errors="coerce").dropna()
        latency = float(np.percentile(values, 95)) if len(values) else None
    error_rate = float(_status_failed(frame["status"]).mean()) if rows and "status" in frame else None
    labels, metrics = 0, {}
    if rows and "label" in frame and PREDICTION in frame:
        scored = live_metrics(
            task, frame[PREDICTION].tolist(), frame["label"].where(frame["label"].notna(), None).tolist()
        )
        labels, metrics = int(scored["labelled_rows"]), dict(scored["metrics"])
    return WindowFigures(rows, labels, latency, error_rate, metrics)


def window_record(
    *,
    version: ModelVersion,
    start: datetime,
    end: datetime,
    frame: pd.DataFrame,
    deployment: Deployment | None = None,
    labels_read_at: datetime | None = None,
) -> MonitorWindow:
    """Store one window of ``version``'s traffic (``frame``, as the prediction log gives
    it, with the labels received up to ``labels_read_at``, default now): figures, schema
    violations and every feature's drift against the reference. The window already
    stored is returned as it is."""
    existing = MonitorWindow.objects.filter(version=version, deployment=deployment, start=start).first()
    if existing is not None:
        return existing
    figures = window_figures(frame, task=version.model.task)
    reference = reference_profile_of_version(version=version)
    drift = None
    if reference is not None and len(frame):
        served = frame[~_status_failed(frame["status"])] if "status" in frame else frame
        if PREDICTION in served:
            served = served.assign(**{PREDICTION: _answers(served[PREDICTION])})
        drift = window_drift(reference[1], served)
    try:
        with transaction.atomic():
            window = MonitorWindow.objects.create(
                model=version.model,
                version=version,
                deployment=deployment,
                reference=reference[0] if reference is not None else None,
                start=start,
                end=end,
                rows=figures.rows,
                labels=figures.labels,
                latency_p95_ms=figures.latency_p95_ms,
                error_rate=figures.error_rate,
                metrics=figures.metrics,
                schema=[v.to_dict() for v in drift.schema] if drift is not None else [],
                labels_read_at=labels_read_at or timezone.now(),
            )
            if drift is not None:
                results = [*drift.features.values(), *([drift.prediction] if drift.prediction else [])]
                DriftResult.objects.bulk_create(
                    DriftResult(window=window, **_drift_fields(result.to_dict())) for result in results
                )
    except IntegrityError:
        # Computed meanwhile by another worker: theirs stands.
        return MonitorWindow.objects.get(version=version, deployment=deployment, start=start)
    return window


def _drift_fields(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    out["missing_share"] = out["missing_share"] or 0.0
    out["out_of_range_share"] = out["out_of_range_share"] or 0.0
    return out


def monitored_routes() -> list[Route]:
    """The primary and canary routes of every running deployment: what monitors watch."""
    return list(
        Route.objects.filter(mode__in=[RouteMode.PRIMARY, RouteMode.CANARY])
        .exclude(deployment__state=DeploymentState.STOPPED)
        .select_related("deployment", "deployment__model", "version", "version__model")
        .order_by("deployment_id", "id")
    )


def deployment_due(deployment: Deployment, now: datetime) -> bool:
    """Whether a window of ``deployment`` has ended since it was last computed."""
    return deployment.monitor_due_at is None or deployment.monitor_due_at <= now


def deployment_computed(*, deployment: Deployment, now: datetime) -> datetime:
    """Record that ``deployment``'s windows ended by ``now`` are stored: it is due again
    when its current window ends. Returns that moment."""
    due = window_next_end(deployment, now)
    Deployment.objects.filter(pk=deployment.pk).update(monitor_due_at=due)
    deployment.monitor_due_at = due
    return due


def windows_due(*, route: Route, now: datetime, step: timedelta, lookback: int) -> list[tuple[datetime, datetime]]:
    """The ended windows of ``route`` not stored yet, oldest first: at most ``lookback``,
    none before the route started."""
    last_end = window_floor(now, step)
    first = max(window_floor(route.started_at, step), last_end - lookback * step)
    done = set(
        MonitorWindow.objects.filter(version=route.version, deployment=route.deployment, start__gte=first).values_list(
            "start", flat=True
        )
    )
    due = []
    start = first
    while start + step <= last_end:
        if start not in done:
            due.append((start, start + step))
        start += step
    return due


def route_windows_compute(*, route: Route, now: datetime | None = None) -> list[MonitorWindow]:
    """Read and store every window of the route's version due by ``now``."""
    now = now or timezone.now()
    step = window_step(route.deployment)
    stored = []
    for start, end in windows_due(
        route=route, now=now, step=step, lookback=settings.MODELGATE_MONITOR_LOOKBACK_WINDOWS
    ):
        read_at = timezone.now()
        frame = prediction_window(
            model=route.deployment.model,
            version=route.version.version,
            start=start,
            end=end,
            deployment_id=route.deployment_id,
            labels=True,
        )
        stored.append(
            window_record(
                version=route.version,
                deployment=route.deployment,
                start=start,
                end=end,
                frame=frame,
                labels_read_at=read_at,
            )
        )
    return stored


def route_windows_relabel(*, route: Route, now: datetime | None = None) -> list[MonitorWindow]:
    """Compute again the labels and live metrics of the route's stored windows (within
    the lookback) for which ground truth arrived after they were computed; returns the
    windows whose figures were computed again."""
    now = now or timezone.now()
    step = window_step(route.deployment)
    first = window_floor(now, step) - settings.MODELGATE_MONITOR_LOOKBACK_WINDOWS * step
    windows = list(
        MonitorWindow.objects.filter(
            version=route.version, deployment=route.deployment, start__gte=first, rows__gt=0
        ).order_by("start")
    )
    if not windows:
        return []
    model = route.deployment.model
    read_at = timezone.now()
    arrivals = label_arrivals(model=model, since=min(w.labels_read_at or w.computed_at for w in windows))
    if arrivals.empty:
        return []
    relabelled = []
    for window in windows:
        seen = window.labels_read_at or window.computed_at
        late = set(arrivals.loc[arrivals["received_at"] > pd.Timestamp(seen), "request_id"])
        if not late:
            continue
        requests = prediction_request_ids(
            model=model,
            version=route.version.version,
            start=window.start,
            end=window.end,
            deployment_id=route.deployment_id,
        )
        if late.isdisjoint(requests):
            MonitorWindow.objects.filter(pk=window.pk).update(labels_read_at=read_at)
            continue
        frame = prediction_window(
            model=model,
            version=route.version.version,
            start=window.start,
            end=window.end,
            deployment_id=route.deployment_id,
            labels=True,
        )
        figures = window_figures(frame, task=model.task)
        MonitorWindow.objects.filter(pk=window.pk).update(
            labels=figures.labels, metrics=figures.metrics, labels_read_at=read_at
        )
        log.info("window %s of %s: %s labels now", window.start, route.version, figures.labels)
        relabelled.append(window)
    return relabelled
