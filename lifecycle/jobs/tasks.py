"""Celery entry points for jobs: thin, each calls services.

``run_job`` is acknowledged late with prefetch 1, so a job task is never lost by a
worker that dies before finishing it; the lease and the reaper recover the job itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import shared_task
from django.conf import settings

from lifecycle.jobs import placement, runner, services
from lifecycle.jobs.outcomes import job_outcome_apply
from lifecycle.jobs.spec import parse_spec

logger = logging.getLogger(__name__)


@shared_task(name="lifecycle.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: int, attempt: int, rank: int = 0) -> str:
    job = services.job_start(job_id=job_id, attempt=attempt, rank=rank)
    if job is None:
        return "stale"
    node = next(n for n in job.assignment if n["rank"] == rank)
    master = job.assignment[0]
    workdir = Path(settings.MODELGATE_JOB_DIR) / str(job_id) / f"attempt-{attempt}-rank-{rank}"
    launch = runner.Launch(
        job_id=job_id,
        attempt=attempt,
        spec=parse_spec(job.spec),
        gpu_indices=tuple(node["gpus"]),
        workdir=workdir,
        node_rank=rank,
        nnodes=len(job.assignment),
        master_addr=services.worker_address(master["worker"]),
        master_port=29500 + job_id % 1000,
        environment={
            "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
            # The built-in programs (python -m lifecycle.…) run from the job's own directory.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH", "")])),
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
            "MODELGATE_WORKER_NAME": os.environ.get("MODELGATE_WORKER_NAME", ""),
        },
    )
    outcome = runner.run(
        launch,
        on_log=lambda text: services.job_log_append(job_id=job_id, attempt=attempt, text=text),
        on_progress=lambda value: services.job_progress(job_id=job_id, attempt=attempt, progress=value),
        on_tick=lambda: services.job_tick(job_id=job_id, attempt=attempt),
        grace_s=settings.MODELGATE_JOB_CANCEL_GRACE_SECONDS,
    )
    if (rank == 0 or outcome.state == "failed") and services.job_finish(
        job_id=job_id, attempt=attempt, outcome=outcome
    ):
        job_outcome_apply(job_id=job_id)
    return outcome.state


@shared_task(name="lifecycle.schedule_jobs", ignore_result=True)
def schedule_jobs() -> dict[str, int]:
    result = placement.schedule_pass()
    return {"placed": len(result.placed), "waiting": len(result.waiting)}


@shared_task(name="lifecycle.reap_jobs", ignore_result=True)
def reap_jobs() -> dict[str, int]:
    report = services.jobs_reap()
    for job_id in services.jobs_with_unapplied_outcome():
        try:
            job_outcome_apply(job_id=job_id)
        except Exception as exc:  # one job's failure must not stop the others
            logger.warning("applying the outcome of job %s failed: %s", job_id, exc)
    return {"requeued": len(report.requeued), "failed": len(report.failed), "redispatched": len(report.redispatched)}
