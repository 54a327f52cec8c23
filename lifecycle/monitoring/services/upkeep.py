"""Upkeep of the prediction log, what the periodic ``lifecycle.compact_prediction_log``
task runs: the files of closed partitions merged, partitions past the retention
(``MODELGATE_PREDICTION_RETENTION_DAYS``) deleted (``lifecycle.monitoring.prediction_upkeep``).

One upkeep of a log runs at a time, on PostgreSQL and SQLite alike: a run first claims the
log's ``PredictionLogLease`` with a compare-and-swap ``UPDATE`` that only a free or
expired lease matches (0 rows updated: another run holds it, and this one does nothing),
renews it before each partition it compacts, and stops if it was taken over meanwhile
(its lease ran out while it was stalled). A run that died frees the log when its lease
expires (``MODELGATE_PREDICTION_UPKEEP_LEASE_SECONDS``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from lifecycle.deployments.choices import DeploymentState
from lifecycle.deployments.models import Deployment
from lifecycle.monitoring.models import PredictionLogLease
from lifecycle.monitoring.prediction_upkeep import PredictionLogUpkeep, UpkeepReport
from lifecycle.monitoring.store import prediction_store
from registry.errors import DependencyUnavailable

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The run's lease was taken over by another run: it stops before the next partition."""


def _lease_duration() -> timedelta:
    return timedelta(seconds=settings.MODELGATE_PREDICTION_UPKEEP_LEASE_SECONDS)


def prediction_log_lease_claim(*, name: str, holder: str, now: datetime | None = None) -> bool:
    """Claim the lease ``name`` for ``holder`` if it is free or expired; whether it was."""
    now = now or timezone.now()
    if not PredictionLogLease.objects.filter(name=name).exists():
        try:
            with transaction.atomic():
                PredictionLogLease.objects.create(name=name)
        except IntegrityError:
            pass  # created meanwhile by another run: the update below decides
    claimed = (
        PredictionLogLease.objects.filter(name=name)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__lte=now))
        .update(holder=holder, claimed_at=now, expires_at=now + _lease_duration())
    )
    return claimed == 1


def prediction_log_lease_renew(*, name: str, holder: str) -> None:
    """Extend ``holder``'s lease; ``LeaseLost`` when another run holds it now."""
    renewed = PredictionLogLease.objects.filter(name=name, holder=holder).update(
        expires_at=timezone.now() + _lease_duration()
    )
    if renewed != 1:
        raise LeaseLost(f"the upkeep lease of {name} was taken over by another run")


def prediction_log_lease_release(*, name: str, holder: str) -> None:
    """Free the lease if ``holder`` still holds it."""
    PredictionLogLease.objects.filter(name=name, holder=holder).update(holder="", expires_at=None)


@contextmanager
def _one_at_a_time(name: str) -> Iterator[str | None]:
    """The holder token of this run when it claimed the lease ``name``, else ``None``."""
    holder = uuid.uuid4().hex
    if not prediction_log_lease_claim(name=name, holder=holder):
        yield None
        return
    try:
        yield holder
    finally:
        prediction_log_lease_release(name=name, holder=holder)


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
    closed ones older than the monitored span. ``None`` when another upkeep holds the
    log's lease; the report so far when another took it over mid-way."""
    now = now or timezone.now()
    store = prediction_store()
    upkeep = PredictionLogUpkeep(store)
    name = store.root
    with _one_at_a_time(name) as holder:
        if holder is None:
            log.info("prediction log upkeep: another run holds the lease of %s", name)
            return None
        try:
            # Expired partitions first: nothing is merged only to be deleted.
            report = UpkeepReport()
            days = settings.MODELGATE_PREDICTION_RETENTION_DAYS
            if days:
                upkeep.expire(older_than=(now - timedelta(days=days)).date(), report=report)
            upkeep.compact(
                closed_before=now - monitored_span(),
                report=report,
                before_partition=lambda directory: prediction_log_lease_renew(name=name, holder=holder),
            )
        except LeaseLost as exc:
            # The other run finishes what this one left: a partition is never half done by
            # two runs, since each renews before starting one.
            log.warning("prediction log upkeep stopped: %s", exc)
            return report
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
