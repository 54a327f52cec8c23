"""Celery entry points of the lifecycle app: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from lifecycle.services.outbox import outbox_relay


@shared_task(name="lifecycle.relay_outbox", ignore_result=True)
def relay_outbox() -> dict[str, int]:
    """Deliver due outbox rows (kicked after each commit, and scheduled in settings)."""
    report = outbox_relay()
    return {"aliases": report.aliases, "delivered": report.delivered, "failed": report.failed, "dead": report.dead}


# Job tasks and the job worker's start-up hooks live with the jobs subsystem; importing
# them here is what lets Celery's autodiscovery find them.
from lifecycle.jobs import tasks as job_tasks  # noqa: E402,F401
from lifecycle.jobs import worker as job_worker  # noqa: E402,F401
