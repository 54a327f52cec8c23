"""The scheduling pass: place queued jobs on workers with the configured strategy.

It turns the database into a snapshot for the pure strategies of
``lifecycle.jobs.scheduling``, applies their decisions in one transaction and dispatches
the placed attempts after commit. Passes are serialised by an advisory lock and
coalesced, so a burst of kicks costs two passes, not one each.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from lifecycle.governance.services.audit import audit_append
from lifecycle.jobs import dispatch
from lifecycle.jobs.choices import JOB_ACTIVE_STATES, JobState, WorkerState
from lifecycle.jobs.models import Job, PoolQuota, ResourcePool, Worker
from lifecycle.jobs.scheduling import (
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
from lifecycle.jobs.scheduling import PoolQuota as QuotaSnapshot
from lifecycle.jobs.scheduling.capacity import CPU_TYPE
from lifecycle.jobs.scheduling.context import RoundContext
from lifecycle.jobs.spec import JobSpec, SpecError, parse_spec

logger = logging.getLogger(__name__)


@dataclass
class SchedulePass:
    placed: list[int] = field(default_factory=list)
    waiting: dict[int, str] = field(default_factory=dict)


def gpu_cost_per_hour(worker: Worker) -> float:
    """What one of the worker's GPUs costs an hour (the whole worker's cost without GPUs)."""
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
                cost_per_gpu_hour=gpu_cost_per_hour(worker),
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
                sum(max(len(n["gpus"]), 1) * gpu_cost_per_hour(workers[n["worker"]]) * hours for n in nodes) or None
            )
            job.save()
            queues = {n["worker"]: workers[n["worker"]].queue for n in nodes}
            transaction.on_commit(
                lambda j=job.pk, a=job.attempts, ns=nodes, qs=queues: dispatch.job_dispatch(j, a, ns, qs)
            )
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
