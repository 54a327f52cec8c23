"""Every write about jobs and workers: submit, cancel, start, log, finish, reap (the
scheduling pass is ``lifecycle.jobs.placement``).

The database is the source of truth. A job's result is recorded by a compare-and-swap
on (job, attempt, state), so a late duplicate of an attempt that was given up on can
never overwrite the outcome of the attempt that replaced it. Dispatch happens after
commit; a dispatch the broker lost is sent again by the reaper.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from lifecycle.governance.services.audit import audit_append
from lifecycle.jobs import dispatch
from lifecycle.jobs.choices import JOB_ACTIVE_STATES, JOB_FINAL_STATES, JobState, WorkerState
from lifecycle.jobs.inventory import Inventory
from lifecycle.jobs.models import Job, JobLogChunk, PoolQuota, ResourcePool, Worker
from lifecycle.jobs.placement import gpu_cost_per_hour
from lifecycle.jobs.runner import Outcome
from lifecycle.jobs.spec import JOB_KINDS, SpecError, parse_spec
from registry.choices import Role
from registry.errors import Conflict, Forbidden, InvalidInput
from registry.models import ModelVersion, RegisteredModel, Team
from registry.permissions import require_role

logger = logging.getLogger(__name__)


def pool_ensure(*, name: str) -> ResourcePool:
    pool, _ = ResourcePool.objects.get_or_create(name=name)
    return pool


def pool_quota_set(*, actor: AbstractBaseUser | None, pool: ResourcePool, team: Team, gpu_limit: int) -> PoolQuota:
    """Cap a team's GPUs in a pool (platform admins)."""
    if actor is not None and not getattr(actor, "is_superuser", False):
        raise Forbidden("pool quotas are set by platform admins")
    with transaction.atomic():
        quota, _ = PoolQuota.objects.update_or_create(pool=pool, team=team, defaults={"gpu_limit": gpu_limit})
        audit_append(
            actor=actor,
            action="pool.quota_set",
            object_type="pool_quota",
            object_id=f"{pool.name}/{team.name}",
            after={"gpu_limit": gpu_limit},
        )
    return quota


# --- submitting and cancelling ------------------------------------------------------


def job_submit(
    *,
    actor: AbstractBaseUser | None,
    team: Team,
    kind: str,
    spec: Any,
    priority: int = 0,
    pool: str = "default",
    model: RegisteredModel | None = None,
    version: ModelVersion | None = None,
    deadline: datetime | None = None,
) -> Job:
    """Queue a job; the scheduler places it on a worker. ``actor`` None is the platform
    itself (a deployment's reconciliation replacing a replica), which needs no role."""
    if actor is not None:
        require_role(actor, team, Role.DEVELOPER, action="submitting a job")
    if kind not in JOB_KINDS:
        raise InvalidInput(
            f"unknown job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}", details={"kind": "unknown"}
        )
    if model is not None and model.team_id != team.pk:
        raise InvalidInput(f"model {model.name!r} belongs to another team", details={"model": "not this team's"})
    if version is not None and (model is None or version.model_id != model.pk):
        raise InvalidInput("version must be a version of the job's model", details={"version": "wrong model"})
    try:
        parsed = parse_spec(spec)
    except SpecError as exc:
        raise InvalidInput(f"invalid job spec: {exc}", details=exc.errors) from exc
    resource_pool = pool_ensure(name=pool) if pool == "default" else ResourcePool.objects.filter(name=pool).first()
    if resource_pool is None:
        raise InvalidInput(f"no resource pool named {pool!r}", details={"pool": "unknown pool"})
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind,
            team=team,
            model=model,
            version=version,
            spec=parsed.to_dict(),
            priority=priority,
            pool=resource_pool,
            max_attempts=parsed.max_attempts,
            deadline=deadline,
            created_by=actor,
            state_detail="waiting for the scheduler",
        )
        audit_append(
            actor=actor,
            action="job.submit",
            object_type="job",
            object_id=job.pk,
            model_name=model.name if model else "",
            after={"kind": kind, "pool": pool, "priority": priority, "gpus": parsed.resources.gpus},
        )
        transaction.on_commit(dispatch.scheduler_kick)
    return job


def job_cancel(*, actor: AbstractBaseUser, job: Job) -> Job:
    """Cancel a job: at once when it has not started, else the runner stops it (SIGTERM,
    then SIGKILL after the grace period)."""
    if job.created_by_id != actor.pk:
        require_role(actor, job.team, Role.APPROVER, action="cancelling someone else's job")
    return _cancel(job_id=job.pk, actor=actor, who=actor.get_username(), reason="")


def job_cancel_system(*, job_id: int, reason: str) -> Job | None:
    """Cancel a job the platform started (a drained replica); nothing when it has ended."""
    try:
        return _cancel(job_id=job_id, actor=None, who="the platform", reason=reason)
    except Conflict:
        return None


def _cancel(*, job_id: int, actor: AbstractBaseUser | None, who: str, reason: str) -> Job:
    with transaction.atomic():
        locked = Job.objects.select_for_update(of=("self",)).get(pk=job_id)
        if locked.state in JOB_FINAL_STATES:
            raise Conflict(f"job {locked.pk} is already {locked.state}", code="stale_state")
        before = locked.state
        if locked.state == JobState.RUNNING:
            locked.cancel_requested = True
            locked.state_detail = f"cancel requested by {who}"
        else:
            locked.state, locked.finished_at = JobState.CANCELLED, timezone.now()
            locked.state_detail = f"cancelled by {who} before it started"
        locked.save()
        audit_append(
            actor=actor,
            action="job.cancel",
            object_type="job",
            object_id=locked.pk,
            model_name=locked.model.name if locked.model_id else "",
            before={"state": before},
            after={"state": locked.state, "cancel_requested": locked.cancel_requested},
            reason=reason,
        )
    return locked


# --- workers ------------------------------------------------------------------------


def worker_register(*, name: str, pool: str, inventory: Inventory, slots: int, address: str = "") -> Worker:
    """A worker announces itself and its inventory on start-up."""
    now = timezone.now()
    gpu_types = sorted({gpu.gpu_type for gpu in inventory.gpus})
    worker, _ = Worker.objects.update_or_create(
        name=name,
        defaults={
            "hostname": socket.gethostname(),
            "address": address,
            "pool": pool_ensure(name=pool),
            "queue": dispatch.worker_queue(name),
            "gpus": [
                {"index": g.index, "name": g.name, "type": g.gpu_type, "memory_mb": g.memory_mb, "uuid": g.uuid}
                for g in inventory.gpus
            ],
            "gpu_type": ",".join(gpu_types),
            "inventory_source": inventory.source,
            "cpus": inventory.cpus,
            "memory_mb": inventory.memory_mb,
            "labels": inventory.labels,
            "cost_per_hour": inventory.cost_per_hour,
            "slots": slots,
            "state": WorkerState.ONLINE,
            "last_heartbeat": now,
            "started_at": now,
        },
    )
    transaction.on_commit(dispatch.scheduler_kick)
    return worker


def worker_heartbeat(*, name: str) -> bool:
    """Renew the worker's heartbeat; False when the platform no longer knows it."""
    updated = Worker.objects.filter(name=name).update(last_heartbeat=timezone.now())
    Worker.objects.filter(name=name, state=WorkerState.OFFLINE).update(state=WorkerState.ONLINE)
    return updated > 0


def worker_set_state(*, name: str, state: str) -> None:
    Worker.objects.filter(name=name).update(state=state)


# --- on the worker: start, progress, logs, finish -----------------------------------


def job_start(*, job_id: int, attempt: int, rank: int) -> Job | None:
    """Claim the attempt for running; ``None`` when it is no longer current (cancelled,
    reaped, or a duplicate delivery), in which case the worker does nothing."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.MODELGATE_JOB_LEASE_SECONDS)
    if rank == 0:
        claimed = Job.objects.filter(pk=job_id, attempts=attempt, state=JobState.SCHEDULED).update(
            state=JobState.RUNNING, started_at=now, lease_expires_at=lease, state_detail="running"
        )
        if not claimed:
            return None
    elif not Job.objects.filter(pk=job_id, attempts=attempt, state__in=JOB_ACTIVE_STATES).exists():
        return None
    return Job.objects.select_related("team", "pool", "model").get(pk=job_id)


def job_tick(*, job_id: int, attempt: int) -> bool:
    """Renew the attempt's lease; True when the runner must stop (cancel requested, or
    the attempt was given up on and replaced)."""
    lease = timezone.now() + timedelta(seconds=settings.MODELGATE_JOB_LEASE_SECONDS)
    renewed = Job.objects.filter(pk=job_id, attempts=attempt, state__in=JOB_ACTIVE_STATES).update(
        lease_expires_at=lease
    )
    if not renewed:
        return True
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()


def job_log_append(*, job_id: int, attempt: int, text: str) -> None:
    with transaction.atomic():
        size = Job.objects.select_for_update(of=("self",)).values_list("log_size", flat=True).get(pk=job_id)
        JobLogChunk.objects.create(job_id=job_id, attempt=attempt, offset=size, text=text)
        Job.objects.filter(pk=job_id).update(log_size=F("log_size") + len(text))


def job_progress(*, job_id: int, attempt: int, progress: float) -> None:
    Job.objects.filter(pk=job_id, attempts=attempt, state=JobState.RUNNING).update(
        progress=max(0.0, min(progress, 1.0))
    )


def job_finish(*, job_id: int, attempt: int, outcome: Outcome) -> bool:
    """Record the attempt's outcome exactly once; False when the attempt is stale."""
    now = timezone.now()
    job = Job.objects.select_related("pool").filter(pk=job_id).first()
    if job is None:
        return False
    workers = {w.name: w for w in Worker.objects.filter(name__in=[n["worker"] for n in job.assignment])}
    cost = sum(
        max(len(n["gpus"]), 1) * gpu_cost_per_hour(workers[n["worker"]]) * outcome.duration_s / 3600
        for n in job.assignment
        if n["worker"] in workers
    )
    state = {"succeeded": JobState.SUCCEEDED, "cancelled": JobState.CANCELLED}.get(outcome.state, JobState.FAILED)
    with transaction.atomic():
        recorded = Job.objects.filter(pk=job_id, attempts=attempt, state=JobState.RUNNING).update(
            state=state,
            result=outcome.result,
            exit_code=outcome.exit_code,
            finished_at=now,
            lease_expires_at=None,
            progress=1.0 if state == JobState.SUCCEEDED else F("progress"),
            cost_actual=round(cost, 6),
            state_detail=outcome.error or f"{state} on attempt {attempt}",
        )
        if recorded:
            audit_append(
                actor=None,
                action=f"job.{state}",
                object_type="job",
                object_id=job_id,
                model_name=job.model.name if job.model_id else "",
                after={"attempt": attempt, "exit_code": outcome.exit_code, "error": outcome.error},
            )
    if recorded and Job.objects.filter(state=JobState.QUEUED).exists():
        # The freed capacity matters only to jobs waiting for it; a kick per finished
        # job would cost a task and a pass each when nothing waits.
        transaction.on_commit(dispatch.scheduler_kick)
    return bool(recorded)


# --- the reaper ---------------------------------------------------------------------


@dataclass
class ReapReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    redispatched: list[int] = field(default_factory=list)
    workers_offline: list[str] = field(default_factory=list)


def jobs_reap(*, now: datetime | None = None) -> ReapReport:
    """Recover from faults: workers whose heartbeat stopped go offline; running jobs whose
    lease expired (worker killed, host lost) are requeued up to ``max_attempts``; a
    scheduled job nobody started (the broker lost the dispatch) is dispatched again."""
    now = now or timezone.now()
    report = ReapReport()
    silent = now - timedelta(seconds=settings.MODELGATE_WORKER_HEARTBEAT_TIMEOUT_SECONDS)
    for worker in Worker.objects.filter(
        state__in=[WorkerState.ONLINE, WorkerState.DRAINING], last_heartbeat__lt=silent
    ):
        Worker.objects.filter(pk=worker.pk, last_heartbeat__lt=silent).update(state=WorkerState.OFFLINE)
        report.workers_offline.append(worker.name)
    offline = set(Worker.objects.filter(state=WorkerState.OFFLINE).values_list("name", flat=True))
    with transaction.atomic():
        expired = Job.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            state__in=JOB_ACTIVE_STATES, lease_expires_at__lt=now
        )
        for job in expired:
            on_dead_worker = any(node["worker"] in offline for node in job.assignment)
            if job.state == JobState.SCHEDULED and not on_dead_worker and not job.cancel_requested:
                job.dispatched_at = now
                job.lease_expires_at = now + timedelta(seconds=settings.MODELGATE_JOB_DISPATCH_TIMEOUT_SECONDS)
                job.save(update_fields=["dispatched_at", "lease_expires_at"])
                queues = dict(
                    Worker.objects.filter(name__in=[n["worker"] for n in job.assignment]).values_list("name", "queue")
                )
                transaction.on_commit(
                    lambda j=job.pk, a=job.attempts, ns=job.assignment, qs=queues: dispatch.job_dispatch(j, a, ns, qs)
                )
                report.redispatched.append(job.pk)
                continue
            workers = ", ".join(node["worker"] for node in job.assignment)
            if job.cancel_requested:
                job.state, job.finished_at = JobState.CANCELLED, now
                job.state_detail = f"cancelled; attempt {job.attempts} on {workers} was lost"
                report.failed.append(job.pk)
            elif job.attempts < job.max_attempts:
                job.state = JobState.QUEUED
                job.state_detail = f"attempt {job.attempts} lost on {workers} (lease expired); requeued"
                job.assignment = []
                report.requeued.append(job.pk)
            else:
                job.state, job.finished_at = JobState.FAILED, now
                job.state_detail = (
                    f"attempt {job.attempts} lost on {workers}; gave up after {job.max_attempts} attempts"
                )
                report.failed.append(job.pk)
            job.lease_expires_at = None
            job.save()
            audit_append(
                actor=None,
                action="job.reaped",
                object_type="job",
                object_id=job.pk,
                model_name="",
                after={"state": job.state, "detail": job.state_detail},
            )
    if report.requeued:
        transaction.on_commit(dispatch.scheduler_kick)
    return report


def worker_address(name: str) -> str:
    """Where the gang's other hosts reach this worker (its address, else its hostname)."""
    worker = Worker.objects.filter(name=name).values_list("address", "hostname").first()
    if worker is None:
        return "127.0.0.1"
    return worker[0] or worker[1]


def jobs_with_unapplied_outcome(*, older_than_s: float = 30.0) -> list[int]:
    """Finished jobs whose result was never applied (the worker died right after)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    return list(
        Job.objects.filter(
            state__in=JOB_FINAL_STATES, outcome_applied_at__isnull=True, finished_at__lt=cutoff
        ).values_list("pk", flat=True)[:100]
    )
