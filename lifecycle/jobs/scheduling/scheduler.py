"""One scheduling round: order the queue, enforce quotas and gangs, ask the strategy, commit.

``schedule`` is a pure function of its arguments: it copies the free capacity
out of the snapshot, places jobs one by one in effective-priority order, and
updates the copy after every placement, so no GPU index is handed out twice and
later jobs see what earlier ones took. The snapshot is never modified.

Queue discipline is greedy with backfill: a job that does not fit waits and the
next one is tried, so a blocked large job does not idle the cluster. Aging
(see :mod:`lifecycle.jobs.scheduling.priority`) moves long-waiting jobs to the front,
where they get first pick of whatever is free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from lifecycle.jobs.scheduling.capacity import CapacityIndex, WorkerGroup, WorkingWorker
from lifecycle.jobs.scheduling.context import Request, RoundContext, format_time
from lifecycle.jobs.scheduling.diagnosis import describe_shape, diagnose_capacity
from lifecycle.jobs.scheduling.outcome import (
    NodeAssignment,
    Placement,
    ReasonCode,
    ScheduleResult,
    Unplaceable,
)
from lifecycle.jobs.scheduling.priority import SchedulingPolicy, queue_order
from lifecycle.jobs.scheduling.snapshot import ClusterSnapshot, JobRequest
from lifecycle.jobs.scheduling.strategies import Choice, Strategy, make_strategy

__all__ = ["schedule"]


def schedule(
    snapshot: ClusterSnapshot,
    jobs: Iterable[JobRequest],
    strategy: str | Strategy,
    now: datetime,
    *,
    config: Mapping[str, Any] | None = None,
    policy: SchedulingPolicy | None = None,
) -> ScheduleResult:
    """Place as many of ``jobs`` as fit on ``snapshot``'s online workers.

    ``strategy`` is a name from :data:`~lifecycle.jobs.scheduling.strategies.STRATEGIES`
    (its settings in ``config``) or a ready strategy object (then ``config`` must
    be omitted). ``policy`` sets aging and the default duration. Every job ends
    up exactly once in ``placements`` or ``unplaceable``.
    """
    if isinstance(strategy, str):
        strat = make_strategy(strategy, config)
    else:
        if config:
            raise ValueError("pass config only with a strategy name, not with a strategy object")
        strat = strategy
    policy = policy if policy is not None else SchedulingPolicy()
    rc = RoundContext(now, policy, snapshot.duration_history, strat.initial_cursor())
    index = CapacityIndex(snapshot, strat.views(), strat.entry_key)

    limits = {(quota.pool, quota.team): quota.gpu_limit for quota in snapshot.quotas}
    usage: dict[tuple[str, str], int] = {}
    for running in snapshot.running:
        key = (running.pool, running.team)
        usage[key] = usage.get(key, 0) + running.gpus

    # Capacity only shrinks within a round, so a request shape that found no
    # worker once finds none later either; remembering it keeps a saturated
    # cluster's long tail of waiting jobs cheap.
    failures: dict[tuple, tuple[ReasonCode, str]] = {}
    placements: list[Placement] = []
    waiting: list[Unplaceable] = []

    seen: set[str] = set()
    for eff, job in queue_order(jobs, now, policy):
        problem = _invalid(job) or ("invalid request: duplicate job id" if job.id in seen else None)
        seen.add(job.id)
        if problem:
            waiting.append(Unplaceable(job.id, ReasonCode.INVALID_REQUEST, problem, eff))
            continue

        need = job.gpus * job.nodes
        team_key = (job.pool, job.team)
        limit = limits.get(team_key)
        if limit is not None and need > 0:
            used = usage.get(team_key, 0)
            if used + need > limit:
                verb = "reached" if used >= limit else "would be exceeded"
                waiting.append(
                    Unplaceable(
                        job.id,
                        ReasonCode.QUOTA,
                        f"team quota {limit} GPUs {verb} ({used} in use, job needs {need}) "
                        f"for team {job.team!r} in pool {job.pool!r}",
                        eff,
                    )
                )
                continue

        view = strat.view_for(job)
        if view is None:
            waiting.append(
                Unplaceable(
                    job.id,
                    ReasonCode.NO_STATIC_ASSIGNMENT,
                    f"no static assignment for model {job.model_name!r} or team {job.team!r}",
                    eff,
                )
            )
            continue

        req = Request(job, eff, view, now)
        shape = req.shape
        known = failures.get(shape)
        if known is not None:
            waiting.append(Unplaceable(job.id, known[0], known[1], eff))
            continue

        groups = index.groups_for(view, job.pool, req.gpus, req.type_key, req.gpu_memory_mb)
        if req.nodes == 1:
            choices, deadline_blocked = _pick_one(strat, index, req, groups, rc)
        else:
            choices, deadline_blocked = _pick_gang(strat, index, req, groups, rc)

        if choices is None:
            if deadline_blocked and req.miss is not None:
                waiting.append(Unplaceable(job.id, ReasonCode.DEADLINE, _deadline_reason(req, rc), eff))
            else:
                code, reason = diagnose_capacity(index, req, groups)
                failures[shape] = (code, reason)
                waiting.append(Unplaceable(job.id, code, reason, eff))
            continue

        score, reason = strat.describe(req, choices, rc)
        nodes = []
        for rank, (group, worker, _) in enumerate(choices):
            backlog_add = _backlog_share(req, group, worker, rc) if strat.needs_duration else 0.0
            indices = index.commit(worker, group.gpu_class, req.gpus, req.cpus, req.memory_mb, backlog_add)
            nodes.append(NodeAssignment(worker.name, indices, rank))
        strat.placed(req, choices, rc)
        if need > 0:
            usage[team_key] = usage.get(team_key, 0) + need
        placements.append(Placement(job.id, tuple(nodes), strat.name, float(score), reason, eff))

    return ScheduleResult(strat.name, tuple(placements), tuple(waiting), strat.result_cursor(rc))


def _pick_one(
    strat: Strategy,
    index: CapacityIndex,
    req: Request,
    groups: list[WorkerGroup],
    rc: RoundContext,
) -> tuple[list[Choice] | None, bool]:
    """Best single worker, or ``None``.

    The flag says some worker had the resources but ``accept`` turned it down
    (a missed deadline), which is reported differently from lack of capacity.
    """
    workers = index.workers
    gpus, cpus, memory_mb, labels = req.gpus, req.cpus, req.memory_mb, req.labels
    rotates, filters, score = strat.rotates, strat.filters, strat.score
    best: Choice | None = None
    best_score: tuple | None = None
    turned_down = False
    for group in groups:
        top = group.max_free
        if top < gpus:
            continue
        hopeless = filters and strat.hopeless(group, req, rc)
        buckets = group.buckets
        for k in range(gpus, top + 1):
            bucket = buckets[k]
            if not bucket:
                continue
            # Entries are in strategy order, so the first that fits is this bucket's best.
            for entry in strat.scan(bucket, group, rc) if rotates else bucket:
                worker = workers[entry[-1]]
                if worker.cpus_free < cpus or worker.memory_free < memory_mb:
                    continue
                if labels and not worker.has_labels(labels):
                    continue
                if filters and not strat.accept(worker, group, req, rc):
                    turned_down = True
                    if hopeless:
                        break
                    continue
                candidate_score = score(entry, k, group, worker, req, rc)
                if best_score is None or candidate_score < best_score:
                    best_score = candidate_score
                    best = (group, worker, k)
                break
    return ([best] if best is not None else None), turned_down


def _pick_gang(
    strat: Strategy,
    index: CapacityIndex,
    req: Request,
    groups: list[WorkerGroup],
    rc: RoundContext,
) -> tuple[list[Choice] | None, bool]:
    """``req.nodes`` distinct workers of one GPU class, all or nothing.

    Nothing is committed here, so a gang that cannot be completed reserves
    nothing. ``req.available`` records the most fitting workers one class had.
    """
    workers = index.workers
    gpus, cpus, memory_mb, labels, nodes = (
        req.gpus,
        req.cpus,
        req.memory_mb,
        req.labels,
        req.nodes,
    )
    filters, score = strat.filters, strat.score
    best: list[Choice] | None = None
    best_score: tuple | None = None
    deadline_blocked = False
    for group in groups:
        if group.max_free < gpus:
            continue
        hopeless = filters and strat.hopeless(group, req, rc)
        cls = group.gpu_class
        picked: list[tuple[tuple, Choice]] = []
        fits = 0
        for entry in strat.gang_order(group, gpus, rc):
            worker = workers[entry[-1]]
            if worker.cpus_free < cpus or worker.memory_free < memory_mb:
                continue
            if labels and not worker.has_labels(labels):
                continue
            fits += 1
            if filters:
                if hopeless:
                    # Still ask, so the reason can name the cheapest finish time.
                    strat.accept(worker, group, req, rc)
                    if fits >= nodes:
                        break
                    continue
                if not strat.accept(worker, group, req, rc):
                    continue
            k = len(worker.free[cls]) if cls is not None else 0
            picked.append((entry, (group, worker, k)))
            if len(picked) == nodes:
                break
        req.available = max(req.available, min(fits, nodes))
        if len(picked) < nodes:
            deadline_blocked = deadline_blocked or fits >= nodes
            continue
        gang_score = strat.gang_score([score(entry, c[2], group, c[1], req, rc) for entry, c in picked])
        if best_score is None or gang_score < best_score:
            best_score = gang_score
            best = [choice for _, choice in picked]
    return best, deadline_blocked and best is None


def _backlog_share(req: Request, group: WorkerGroup, worker: WorkingWorker, rc: RoundContext) -> float:
    # The job occupies its share of the host (GPUs, else CPUs), so that share of
    # its duration is added to the host's expected backlog for later jobs.
    duration, _ = rc.duration(req.job, group.type_key)
    if req.gpus > 0 and worker.total_gpus:
        return duration * req.gpus / worker.total_gpus
    total_cpus = worker.snapshot.cpus
    if req.cpus > 0 and total_cpus:
        return duration * min(1.0, req.cpus / total_cpus)
    return duration


def _deadline_reason(req: Request, rc: RoundContext) -> str:
    assert req.miss is not None and req.job.deadline is not None
    _, finish_s, worker = req.miss
    finish = format_time(rc.now + timedelta(seconds=finish_s))
    deadline = format_time(req.job.deadline)
    if req.nodes > 1:
        who = f"no {req.nodes} workers with {describe_shape(req)} meet"
    else:
        who = "no worker meets"
    return f"{who} the deadline {deadline} (cheapest finishes at {finish} on {worker})"


def _invalid(job: JobRequest) -> str | None:
    if job.gpus < 0:
        return f"invalid request: gpus must not be negative (got {job.gpus})"
    if job.nodes < 1:
        return f"invalid request: nodes must be at least 1 (got {job.nodes})"
    if job.cpus < 0 or job.memory_mb < 0:
        return "invalid request: cpus and memory_mb must not be negative"
    if job.gpu_memory_mb is not None and job.gpu_memory_mb < 0:
        return "invalid request: gpu_memory_mb must not be negative"
    return None
