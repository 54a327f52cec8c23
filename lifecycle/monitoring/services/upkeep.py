"""Upkeep of the prediction log, what the periodic ``lifecycle.compact_prediction_log``
task runs: the files of closed partitions merged, partitions past the retention
(``MODELGATE_PREDICTION_RETENTION_DAYS``) deleted (``lifecycle.monitoring.prediction_upkeep``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from lifecycle.deployments.choices import DeploymentState
from lifecycle.deployments.models import Deployment
from lifecycle.monitoring.prediction_upkeep import PredictionLogUpkeep, UpkeepReport
from lifecycle.monitoring.store import prediction_store
from registry.errors import DependencyUnavailable

log = logging.getLogger(__name__)

# Arbitrary constant naming the advisory lock that lets one upkeep run at a time.
_UPKEEP_LOCK = 0x6D67_7570_6B65_6570 & 0x7FFF_FFFF_FFFF_FFFF


@contextmanager
def _one_at_a_time() -> Iterator[bool]:
    """Whether this process may run the upkeep now (PostgreSQL: an advisory lock held
    for the run; elsewhere one local worker runs the periodic tasks)."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_UPKEEP_LOCK])
        (held,) = cursor.fetchone()
    try:
        yield bool(held)
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_UPKEEP_LOCK])


def monitored_span() -> timedelta:
    """How far back monitoring passes still read the log: the lookback of the longest
    windows any running deployment has. Compaction leaves that span alone, so that no pass
    reads a partition while its files are being replaced."""
    longest = (
        Deployment.objects.exclude(state=DeploymentState.STOPPED).aggregate(m=Max("monitor_every_minutes"))["m"] or 0
    )
    step = max(timedelta(minutes=longest), timedelta(seconds=settings.MODELGATE_MONITOR_WINDOW_SECONDS))
    return step * (settings.MODELGATE_MONITOR_LOOKBACK_WINDOWS + 1)


def prediction_log_upkeep(*, now: datetime | None = None) -> UpkeepReport | None:
    """Delete the partitions past the retention (0 days: keep everything) and compact the
    closed ones older than the monitored span. ``None`` when another upkeep is running."""
    now = now or timezone.now()
    upkeep = PredictionLogUpkeep(prediction_store())
    with _one_at_a_time() as allowed:
        if not allowed:
            return None
        try:
            # Expired partitions first: nothing is merged only to be deleted.
            report = UpkeepReport()
            days = settings.MODELGATE_PREDICTION_RETENTION_DAYS
            if days:
                upkeep.expire(older_than=(now - timedelta(days=days)).date(), report=report)
            upkeep.compact(closed_before=now - monitored_span(), report=report)
        except OSError as exc:
            raise DependencyUnavailable(
                "artifacts", f"the prediction log cannot be compacted now ({type(exc).__name__}); retry later"
            ) from exc
    log.info(
        "prediction log upkeep: %s partitions compacted (%s files, %s rows), %s recovered, %s deleted (%s rows)",
        report.partitions_compacted,
        report.files_merged,
        report.rows_compacted,
        report.partitions_recovered,
        report.partitions_deleted,
        report.rows_deleted,
    )
    return report
