"""What a finished job means is decided by the stage that submitted it.

The jobs subsystem runs jobs and records their results; it knows nothing of training
or evaluation. Each stage registers a handler for its job kinds when the app starts
(``LifecycleConfig.ready``), and ``job_outcome_apply`` calls it exactly once per job:
the claim is a compare-and-swap on ``outcome_applied_at``, undone when a dependency is
down so that the reaper tries again later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

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
    """Apply what a finished job's result means, once (claimed by a compare-and-swap)."""
    claimed = Job.objects.filter(pk=job_id, outcome_applied_at__isnull=True, state__in=JOB_FINAL_STATES).update(
        outcome_applied_at=timezone.now()
    )
    if not claimed:
        return
    job = Job.objects.select_related("model", "model__dataset", "model__team", "created_by", "parent").get(pk=job_id)
    handler = _handlers.get(job.kind)
    if handler is None:
        return
    try:
        handler(job)
    except DependencyUnavailable as exc:
        # MLflow or S3 is down: let the reaper try again later.
        Job.objects.filter(pk=job_id).update(outcome_applied_at=None, state_detail=f"applying the result waits: {exc}")
        raise
    except DomainError as exc:
        logger.warning("applying job %s failed: %s", job_id, exc)
        Job.objects.filter(pk=job_id).update(state_detail=f"result not applied: {exc.message}")
