"""Every write about jobs and workers: submit, cancel, schedule, start, log, finish, reap.

The database is the source of truth. A job's result is recorded by a compare-and-swap
on (job, attempt, state), so a late duplicate of an attempt that was given up on can
never overwrite the outcome of the attempt that replaced it. Dispatch happens after
commit; a dispatch the broker lost is sent again by the reaper.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from lifecycle.jobs.inventory import Inventory
from lifecycle.jobs.models import (
    JOB_ACTIVE_STATES,
    JOB_FINAL_STATES,
    Job,
    JobLogChunk,
    JobState,
    PoolQuota,
    ResourcePool,
    Worker,
    WorkerState,
)
from lifecycle.jobs.runner import Outcome
from lifecycle.jobs.spec import JOB_KINDS, JobSpec, SpecError, parse_spec
from lifecycle.scheduling import (
    STRATEGIES,
    ClusterSnapshot,
    GpuSnapshot,
    JobRequest,
    RoundRobinCursor,
    RunningJob,
    SchedulingPolicy,
    WorkerSnapshot,
    schedule,
)
from lifecycle.scheduling import PoolQuota as QuotaSnapshot
from lifecycle.scheduling.capacity import CPU_TYPE
from lifecycle.scheduling.context import RoundContext
from lifecycle.services.audit import audit_append
from registry.choices import Role
from registry.errors import Conflict, Forbidden, InvalidInput
from registry.models import ModelVersion, RegisteredModel, Team
from registry.permissions import require_role

logger = logging.getLogger(__name__)


def worker_queue(name: str) -> str:
    return f"worker.{name}"


def pool_queue(pool: str) -> str:
    return f"pool.{pool}"


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


def _kick_scheduler() -> None:
    from lifecycle.jobs.tasks import schedule_jobs

    try:
        schedule_jobs.delay()
    except Exception as exc:  # the periodic pass places the job if the broker is down now
        logger.warning("could not enqueue a scheduling pass (it runs periodically anyway): %s", exc)


def job_submit(
    *,
    actor: AbstractBaseUser,
    team: Team,
    kind: str,
    spec: Any,
    priority: int = 0,
    pool: str = "default",
    model: RegisteredModel | None = None,
    version: ModelVersion | None = None,
    deadline: datetime | None = None,
) -> Job:
    """Queue a job; the scheduler places it on a worker."""
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
        transaction.on_commit(_kick_scheduler)
    return job


def job_cancel(*, actor: AbstractBaseUser, job: Job) -> Job:
    """Cancel a job: at once when it has not started, else the runner stops it (SIGTERM,
    then SIGKILL after the grace period)."""
    if job.created_by_id != actor.pk:
        require_role(actor, job.team, Role.APPROVER, action="cancelling someone else's job")
    with transaction.atomic():
        locked = Job.objects.select_for_update(of=("self",)).get(pk=job.pk)
        if locked.state in JOB_FINAL_STATES:
            raise Conflict(f"job {locked.pk} is already {locked.state}", code="stale_state")
        before = locked.state
        if locked.state == JobState.RUNNING:
            locked.cancel_requested = True
            locked.state_detail = f"cancel requested by {actor.get_username()}"
        else:
            locked.state, locked.finished_at = JobState.CANCELLED, timezone.now()
            locked.state_detail = f"cancelled by {actor.get_username()} before it started"
        locked.save()
        audit_append(
            actor=actor,
            action="job.cancel",
            object_type="job",
            object_id=locked.pk,
            model_name=locked.model.name if locked.model_id else "",
            before={"state": before},
            after={"state": locked.state, "cancel_requested": locked.cancel_requested},
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
            "queue": worker_queue(name),
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
    transaction.on_commit(_kick_scheduler)
    return worker


def worker_heartbeat(*, name: str) -> bool:
    """Renew the worker's heartbeat; False when the platform no longer knows it."""
    updated = Worker.objects.filter(name=name).update(last_heartbeat=timezone.now())
    Worker.objects.filter(name=name, state=WorkerState.OFFLINE).update(state=WorkerState.ONLINE)
    return updated > 0


def worker_set_state(*, name: str, state: str) -> None:
    Worker.objects.filter(name=name).update(state=state)


# --- scheduling ---------------------------------------------------------------------


@dataclass
class SchedulePass:
    placed: list[int] = field(default_factory=list)
    waiting: dict[int, str] = field(default_factory=dict)


def _gpu_cost(worker: Worker) -> float:
    return worker.cost_per_hour / max(len(worker.gpus), 1)


def _gpu_types(workers: dict[str, Worker]) -> dict[str, dict[int, str]]:
    """Worker name -> GPU index -> GPU type, from the inventories."""
    return {name: {g["index"]: g["type"] for g in w.gpus} for name, w in workers.items()}


def _ran_on(assignment: list[dict[str, Any]], gpu_types: dict[str, dict[int, str]]) -> str:
    """The GPU type a job's attempt ran on (as the scheduler keys it), or ``cpu``."""
    for node in assignment:
        for index in node["gpus"]:
            found = gpu_types.get(node["worker"], {}).get(index)
            if found:
                return found.casefold()
    return CPU_TYPE if not any(node["gpus"] for node in assignment) else "gpu"


def _duration_history(gpu_types: dict[str, dict[int, str]]) -> dict[tuple[str, str], list[float]]:
    """Seconds of recent successful jobs by (entrypoint, GPU type) and (kind, GPU type).

    The GPU type is the one the job ran on, which is what the scheduler looks up for a
    candidate worker; a job that asked for no type in particular still teaches it.
    """
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    recent = Job.objects.filter(state=JobState.SUCCEEDED, started_at__isnull=False, finished_at__isnull=False).order_by(
        "-finished_at"
    )[:2000]
    for job in recent.only("kind", "spec", "started_at", "finished_at", "assignment"):
        seconds = (job.finished_at - job.started_at).total_seconds()
        gpu_type = _ran_on(job.assignment, gpu_types)
        entry = (job.spec.get("entrypoint") or [job.kind])[-1]
        samples[(entry, gpu_type)].append(seconds)
        if entry != job.kind:
            samples[(job.kind, gpu_type)].append(seconds)
    return dict(samples)


def _snapshot(now: datetime, *, durations_needed: bool = True) -> tuple[ClusterSnapshot, dict[str, Worker]]:
    """The cluster as the scheduling core sees it. Past durations and the hosts' backlog
    are read only for the strategies that use them (they cost most of a pass)."""
    workers = {w.name: w for w in Worker.objects.select_related("pool")}
    gpu_types = _gpu_types(workers)
    history = _duration_history(gpu_types) if durations_needed else {}
    durations = RoundContext(now, SchedulingPolicy(), history, {})
    allocated: dict[str, set[int]] = defaultdict(set)
    cpus: dict[str, float] = defaultdict(float)
    memory: dict[str, int] = defaultdict(int)
    running_jobs: dict[str, int] = defaultdict(int)
    backlog: dict[str, float] = defaultdict(float)
    running: list[RunningJob] = []
    for job in Job.objects.filter(state__in=JOB_ACTIVE_STATES).select_related("team", "pool", "model"):
        spec = _stored_spec(job)
        remaining = 0.0
        if durations_needed:
            # What is left of the job's expected run, so min_completion_time and cost see
            # the work already on a host, not only the work placed in this round.
            expected, _ = durations.duration(_request(job, spec), _ran_on(job.assignment, gpu_types))
            elapsed = (now - job.started_at).total_seconds() if job.started_at else 0.0
            remaining = max(expected - elapsed, 0.0)
        total = 0
        for node in job.assignment:
            name = node["worker"]
            allocated[name].update(node["gpus"])
            cpus[name] += spec.resources.cpus
            memory[name] += spec.resources.memory_mb
            running_jobs[name] += 1
            total += len(node["gpus"])
            host = workers.get(name)
            if host is not None and remaining:
                if node["gpus"] and host.gpus:
                    share = len(node["gpus"]) / len(host.gpus)
                elif spec.resources.cpus > 0 and host.cpus:
                    share = min(1.0, spec.resources.cpus / host.cpus)
                else:
                    share = 1.0
                backlog[name] += remaining * share
        running.append(RunningJob(job_id=str(job.pk), team=job.team.name, pool=job.pool.name, gpus=total))
    snapshots = []
    for worker in workers.values():
        full = running_jobs[worker.name] >= worker.slots
        snapshots.append(
            WorkerSnapshot(
                name=worker.name,
                pool=worker.pool.name,
                gpus=tuple(GpuSnapshot(g["index"], g["type"], g["memory_mb"]) for g in worker.gpus),
                cpus=worker.cpus,
                memory_mb=worker.memory_mb,
                labels=worker.labels,
                cost_per_gpu_hour=_gpu_cost(worker),
                # A worker with every slot busy takes no more jobs this round.
                state=WorkerState.DRAINING if full and worker.state == WorkerState.ONLINE else worker.state,
                allocated_gpu_indices=frozenset(allocated[worker.name]),
                allocated_cpus=cpus[worker.name],
                allocated_memory_mb=memory[worker.name],
                running_jobs=running_jobs[worker.name],
                backlog_s=backlog[worker.name],
            )
        )
    quotas = tuple(
        QuotaSnapshot(pool=q.pool.name, team=q.team.name, gpu_limit=q.gpu_limit)
        for q in PoolQuota.objects.select_related("pool", "team")
    )
    return ClusterSnapshot(tuple(snapshots), quotas, tuple(running), history), workers


def _stored_spec(job: Job) -> JobSpec:
    """The job's spec as stored at submission; one that no longer parses (validation grew
    stricter since) counts with default resources rather than stopping every pass."""
    try:
        return parse_spec(job.spec)
    except SpecError:
        return JobSpec(entrypoint=(job.kind,))


def _round_robin_cursor() -> RoundRobinCursor:
    """Where round robin stopped in each pool: the last worker of its latest placement
    there, so rotation goes on across passes (and scheduler processes) instead of
    restarting at the first worker every pass."""
    positions: dict[str, str] = {}
    for pool_id, pool_name in ResourcePool.objects.values_list("pk", "name"):
        latest = (
            Job.objects.filter(pool_id=pool_id, strategy="round_robin", scheduled_at__isnull=False)
            .exclude(assignment=[])
            .order_by("-scheduled_at", "-pk")
            .values_list("assignment", flat=True)
            .first()
        )
        if latest:
            positions[pool_name] = latest[-1]["worker"]
    return RoundRobinCursor(positions)


# How often one pass places the rest of the queue again after taking back placements on
# workers whose slots ran out (each time at least one more worker is full).
_SLOT_RETRIES = 8

# Passes run in several processes (every worker started with --scheduler); each reads
# the cluster's free capacity, so two at once would hand the same GPUs to two jobs.
# Advisory lock keys: the running pass, and the one pass waiting to run next.
_SCHEDULER_LOCK = 0x4D47_5343
_NEXT_PASS_LOCK = _SCHEDULER_LOCK + 1


def _lock_scheduling(*, release_claim: bool = False) -> None:
    """Serialise scheduling passes until the transaction ends (PostgreSQL; SQLite's
    single writer serialises them already), then give up the claim on the next pass."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if release_claim:
                # One round trip: the target list is evaluated in order, so the claim is
                # let go only once the lock is held.
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s), pg_advisory_unlock(%s)", [_SCHEDULER_LOCK, _NEXT_PASS_LOCK]
                )
            else:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEDULER_LOCK])


def _claim_next_pass() -> bool:
    """Become the one pass waiting to run next; False when nothing is queued or another
    pass already is waiting.

    That pass has not read the queue yet (it lets go of its claim only once it holds
    the scheduling lock, just before reading), so it will place every job this one
    would: a burst of kicks costs two passes, not one each, and no worker thread sits
    waiting on the lock."""
    if connection.vendor != "postgresql":
        return Job.objects.filter(state=JobState.QUEUED).exists()
    with connection.cursor() as cursor:
        # The lock is only tried when something is queued (WHERE before the target list).
        cursor.execute(
            f'SELECT pg_try_advisory_lock(%s) WHERE EXISTS (SELECT 1 FROM "{Job._meta.db_table}" WHERE state = %s)',
            [_NEXT_PASS_LOCK, JobState.QUEUED.value],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def _release_next_pass() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_NEXT_PASS_LOCK])


def _request(job: Job, spec: JobSpec) -> JobRequest:
    return JobRequest(
        id=str(job.pk),
        team=job.team.name,
        pool=job.pool.name,
        kind=job.kind,
        entrypoint=spec.entrypoint[-1],
        model_name=job.model.name if job.model_id else None,
        gpus=spec.resources.gpus,
        gpu_type=spec.resources.gpu_type,
        gpu_memory_mb=spec.resources.gpu_memory_mb,
        cpus=spec.resources.cpus,
        memory_mb=spec.resources.memory_mb,
        nodes=spec.parallelism.nodes,
        parallelism=spec.parallelism.mode,
        processes_per_node=spec.parallelism.processes_per_node,
        priority=job.priority,
        submitted_at=job.created_at,
        deadline=job.deadline,
        estimated_duration_s=spec.estimated_duration_s,
        labels=spec.labels,
    )


def _dispatch(job_id: int, attempt: int, nodes: list[dict[str, Any]], queues: dict[str, str]) -> None:
    from lifecycle.jobs.tasks import run_job

    for node in nodes:
        try:
            run_job.apply_async(args=[job_id, attempt, node["rank"]], queue=queues[node["worker"]])
        except Exception as exc:  # the reaper dispatches again when the broker is back
            logger.warning("dispatch of job %s to %s failed: %s", job_id, node["worker"], exc)


def schedule_pass(*, strategy: str | None = None, now: datetime | None = None, limit: int = 500) -> SchedulePass:
    """Place queued jobs with the configured strategy and dispatch them after commit.

    Passes are serialised (``_lock_scheduling``), so each one sees the GPUs the previous
    one handed out, and coalesced (``_claim_next_pass``): a kick that finds another pass
    already waiting to run returns at once. Queued rows are taken with ``SKIP LOCKED`` so
    a job being cancelled is left for the next pass. The whole round is applied in one
    transaction.
    """
    strategy = strategy or settings.MODELGATE_SCHEDULER_STRATEGY
    outcome = SchedulePass()
    if not _claim_next_pass():
        return outcome  # nothing queued, or the pass waiting to run next will place it
    claimed = True
    try:
        with transaction.atomic():
            _lock_scheduling(release_claim=True)
            claimed = False
            return _schedule_locked(strategy, now or timezone.now(), limit, outcome)
    finally:
        if claimed:
            # A broken connection has dropped its session lock already.
            with contextlib.suppress(DatabaseError):
                _release_next_pass()


def _schedule_locked(strategy: str, now: datetime, limit: int, outcome: SchedulePass) -> SchedulePass:
    """The body of a pass, inside its transaction and holding the scheduling lock."""
    queued = list(
        Job.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("team", "pool", "model")
        .filter(state=JobState.QUEUED)
        .order_by("-priority", "id")[:limit]
    )
    if not queued:
        return outcome
    specs: dict[int, JobSpec] = {}
    for job in list(queued):
        try:
            specs[job.pk] = parse_spec(job.spec)
        except SpecError as exc:
            queued.remove(job)
            _fail_unrunnable(job, now, f"the stored spec is no longer valid: {exc}")
    if not queued:
        return outcome
    config = settings.MODELGATE_SCHEDULER_CONFIG.get(strategy)
    if strategy == "round_robin" and not (config or {}).get("cursor"):
        config = {**(config or {}), "cursor": _round_robin_cursor()}
    by_id = {job.pk: job for job in queued}
    lease = timedelta(seconds=settings.MODELGATE_JOB_DISPATCH_TIMEOUT_SECONDS)
    pending = queued
    # The core knows GPUs, CPUs and memory but not a worker's slots (its concurrent
    # jobs): a placement beyond them is taken back and the rest of the queue placed
    # again on a snapshot where that worker is full. Each retry fills a worker.
    durations_needed = STRATEGIES[strategy].needs_duration if strategy in STRATEGIES else True
    for retry in range(_SLOT_RETRIES + 1):
        snapshot, workers = _snapshot(now, durations_needed=durations_needed)
        result = schedule(
            snapshot,
            [_request(job, specs[job.pk]) for job in pending],
            strategy,
            now,
            config=config,
        )
        free_slots = {w.name: workers[w.name].slots - w.running_jobs for w in snapshot.workers}
        over: list[Job] = []
        for placement in result.placements:
            job = by_id[int(placement.job_id)]
            names = {n.worker for n in placement.nodes}
            if any(free_slots[name] <= 0 for name in names):
                over.append(job)
                continue
            for name in names:
                free_slots[name] -= 1
            nodes = [{"worker": n.worker, "gpus": list(n.gpu_indices), "rank": n.rank} for n in placement.nodes]
            hours = (specs[job.pk].estimated_duration_s or 0) / 3600
            job.state, job.assignment, job.strategy = JobState.SCHEDULED, nodes, strategy
            job.attempts += 1
            job.scheduled_at = job.dispatched_at = now
            job.lease_expires_at = now + lease
            job.state_detail = f"placed by {strategy}: {placement.reason}"
            job.cost_estimate = (
                sum(max(len(n["gpus"]), 1) * _gpu_cost(workers[n["worker"]]) * hours for n in nodes) or None
            )
            job.save()
            queues = {n["worker"]: workers[n["worker"]].queue for n in nodes}
            transaction.on_commit(lambda j=job.pk, a=job.attempts, ns=nodes, qs=queues: _dispatch(j, a, ns, qs))
            outcome.placed.append(job.pk)
        waiting = {int(u.job_id): u.reason for u in result.unplaceable}
        if not over:
            break
        if retry == _SLOT_RETRIES:
            waiting.update({job.pk: "every worker that fits is out of free slots" for job in over})
            break
        if strategy == "round_robin" and result.cursor is not None:
            config = {**(config or {}), "cursor": result.cursor}
        pending = over + [by_id[job_id] for job_id in waiting]
    for job_id, reason in waiting.items():
        job = by_id[job_id]
        outcome.waiting[job.pk] = reason
        if job.state_detail != reason:
            Job.objects.filter(pk=job.pk).update(state_detail=reason)
    return outcome


def _fail_unrunnable(job: Job, now: datetime, reason: str) -> None:
    """Fail a queued job that can never run, with the reason and an audit record."""
    job.state, job.finished_at, job.state_detail = JobState.FAILED, now, reason
    job.save(update_fields=["state", "finished_at", "state_detail"])
    audit_append(
        actor=None,
        action="job.failed",
        object_type="job",
        object_id=job.pk,
        model_name=job.model.name if job.model_id else "",
        after={"attempt": job.attempts, "error": reason},
    )


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
        max(len(n["gpus"]), 1) * _gpu_cost(workers[n["worker"]]) * outcome.duration_s / 3600
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
        transaction.on_commit(_kick_scheduler)
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
                    lambda j=job.pk, a=job.attempts, ns=job.assignment, qs=queues: _dispatch(j, a, ns, qs)
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
        transaction.on_commit(_kick_scheduler)
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
