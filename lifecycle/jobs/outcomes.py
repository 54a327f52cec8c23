"""What a finished job means is decided by the stage that submitted it.

The jobs subsystem runs jobs and records their results; it knows nothing of training
or evaluation. Each stage registers a handler for its job kinds when the app starts
(``LifecycleConfig.ready``), and ``job_outcome_apply`` calls it exactly once per job:
the claim is a compare-and-swap on ``outcome_applied_at``, undone when a dependency is
down so that the reaper tries again later.

The claim and what the handler writes commit in one transaction: a worker killed while
applying a result (after the claim, before the handler's last write) leaves the job
unclaimed, and the reaper applies it again. A second claimant waits on the row lock and
then finds the job claimed. What the handler asks of external systems carries a key
that makes the second try adopt what the first created (a version registered by job N
is adopted by the retry of job N), so nothing is applied twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from lifecycle.jobs.choices import JOB_FINAL_STATES
from lifecycle.jobs.models import Job
from registry.errors import DependencyUnavailable, DomainError

logger = logging.getLogger(__name__)

OutcomeHandler = Callable[[Job], None]
_handlers: dict[str, OutcomeHandler] = {}


def job_outcome_handler_register(*, kinds: tuple[str, ...], handler: OutcomeHandler) -> None:
    """Have ``handler`` apply the outcome of every finished job of these kinds."""
    for kind in kinds:
        _handlers[kind] = handler


def job_outcome_apply(*, job_id: int) -> None:
    """Apply what a finished job's result means, once (claimed by a compare-and-swap that
    commits with the handler's writes)."""
    try:
        with transaction.atomic():
            claimed = Job.objects.filter(pk=job_id, outcome_applied_at__isnull=True, state__in=JOB_FINAL_STATES).update(
                outcome_applied_at=timezone.now()
            )
            if not claimed:
                return
            job = Job.objects.select_related("model", "model__dataset", "model__team", "created_by", "parent").get(
                pk=job_id
            )
            handler = _handlers.get(job.kind)
            if handler is None:
                return
            try:
                handler(job)
            except DependencyUnavailable:
                raise
            except DomainError as exc:
                logger.warning("applying job %s failed: %s", job_id, exc)
                Job.objects.filter(pk=job_id).update(state_detail=f"result not applied: {exc.message}")
    except DependencyUnavailable as exc:
        # MLflow or S3 is down: the claim was rolled back with the rest; the reaper tries again.
        Job.objects.filter(pk=job_id).update(state_detail=f"applying the result waits: {exc}")
        raise
