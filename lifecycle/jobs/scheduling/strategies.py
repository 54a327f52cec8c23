"""Placement strategies: which feasible worker a job goes to.

Feasibility (online, free GPUs of the right class, CPUs, memory, labels, quotas,
gangs) is the scheduler's job; a strategy only ranks the feasible workers. To
keep a round fast a strategy ranks through two hooks the capacity index can use
without calling back per worker:

* ``entry_key(worker, rank, gpu_class)`` orders workers inside a bucket (same
  GPU class, same number of free GPUs). It may only depend on the worker's
  working state, because it is recomputed just when that worker changes.
* ``score(entry, k, group, worker, request)`` compares the best worker of one
  bucket with the best of another; it must agree with ``entry_key`` inside a
  bucket. Lower wins.

Strategies are immutable configuration; anything that changes during a round
lives in :class:`~lifecycle.jobs.scheduling.context.RoundContext`. Pick one by name
through :data:`STRATEGIES` / :func:`make_strategy`.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import timedelta
from itertools import chain
from typing import Any, ClassVar

from lifecycle.jobs.scheduling.capacity import (
    ALL_WORKERS,
    GpuClass,
    WorkerGroup,
    WorkingWorker,
)
from lifecycle.jobs.scheduling.context import (
    Request,
    RoundContext,
    format_duration,
    format_time,
)
from lifecycle.jobs.scheduling.outcome import RoundRobinCursor
from lifecycle.jobs.scheduling.snapshot import JobRequest

__all__ = [
    "STRATEGIES",
    "CapabilityStrategy",
    "Choice",
    "CostStrategy",
    "LeastLoadedStrategy",
    "MinCompletionTimeStrategy",
    "RoundRobinStrategy",
    "StaticStrategy",
    "Strategy",
    "make_strategy",
]

#: One chosen node: its group, the worker, and its free GPUs of the class before placing.
Choice = tuple[WorkerGroup, WorkingWorker, int]


class Strategy:
    """Base class: ranks every worker equally well, by name. Subclasses refine."""

    name: ClassVar[str] = ""
    #: Whether the scheduler must look up expected durations (and keep backlogs current).
    needs_duration: ClassVar[bool] = False
    #: Whether ``accept`` can turn a worker down after it fits.
    filters: ClassVar[bool] = False
    #: Whether buckets are scanned from a per-round offset (``scan``) instead of the start.
    rotates: ClassVar[bool] = False

    def views(self) -> Mapping[Hashable, Sequence[str] | None]:
        """View id -> eligible worker names in preference order (``None``: all workers)."""
        return {ALL_WORKERS: None}

    def view_for(self, job: JobRequest) -> Hashable | None:
        """The view ``job`` may use, or ``None`` if no worker is eligible for it at all."""
        return ALL_WORKERS

    def initial_cursor(self) -> Mapping[str, str]:
        """Round-robin positions to start the round from."""
        return {}

    def entry_key(self, worker: WorkingWorker, rank: int, gpu_class: GpuClass | None) -> tuple:
        """Order inside a bucket; see module doc."""
        return (worker.name,)

    def score(
        self,
        entry: tuple,
        k: int,
        group: WorkerGroup,
        worker: WorkingWorker,
        req: Request,
        rc: RoundContext,
    ) -> tuple:
        """Comparable figure of merit of a candidate; lower wins."""
        return entry[:-1]

    def scan(self, bucket: list[tuple], group: WorkerGroup, rc: RoundContext) -> Sequence[tuple]:
        """Bucket entries in the order to try them (only used when ``rotates``)."""
        return bucket

    def hopeless(self, group: WorkerGroup, req: Request, rc: RoundContext) -> bool:
        """Whether no worker of ``group`` can pass ``accept`` (saves scanning it)."""
        return False

    def accept(self, worker: WorkingWorker, group: WorkerGroup, req: Request, rc: RoundContext) -> bool:
        """Final say on a worker that has the resources (only used when ``filters``)."""
        return True

    def gang_order(self, group: WorkerGroup, gpus: int, rc: RoundContext) -> Iterable[tuple]:
        """Entries of buckets ``>= gpus`` in preference order, for picking gang members."""
        return heapq.merge(*(bucket for bucket in group.buckets[gpus:] if bucket))

    def gang_score(self, scores: list[tuple]) -> tuple:
        """Figure of merit of a whole gang; by default its worst member bounds it."""
        return max(scores)

    def placed(self, req: Request, choices: list[Choice], rc: RoundContext) -> None:
        """Hook after a placement is committed (round robin advances its cursor)."""

    def describe(self, req: Request, choices: list[Choice], rc: RoundContext) -> tuple[float, str]:
        """``(score, reason)`` recorded on the placement."""
        return 0.0, self.name

    def result_cursor(self, rc: RoundContext) -> RoundRobinCursor | None:
        """Cursor to hand back to the caller, for strategies that keep one."""
        return None


class StaticStrategy(Strategy):
    """Only the workers mapped to the job's model name (else its team) are eligible.

    Config: ``{"assignments": {"resnet50": ["gpu-01", "gpu-02"], "vision": [...]}}``.
    The model name is looked up first, so a model can be pinned tighter than its
    team. Among eligible workers the first listed one that fits wins.
    """

    name = "static"

    def __init__(self, assignments: Mapping[str, Sequence[str]]) -> None:
        self.assignments = {key: tuple(names) for key, names in assignments.items()}

    def views(self) -> Mapping[Hashable, Sequence[str] | None]:
        return self.assignments

    def view_for(self, job: JobRequest) -> Hashable | None:
        if job.model_name is not None and job.model_name in self.assignments:
            return job.model_name
        if job.team in self.assignments:
            return job.team
        return None

    def entry_key(self, worker: WorkingWorker, rank: int, gpu_class: GpuClass | None) -> tuple:
        return (rank,)

    def describe(self, req: Request, choices: list[Choice], rc: RoundContext) -> tuple[float, str]:
        group, _, _ = choices[0]
        listed = len(self.assignments[req.view])
        ranks = [membership_rank(worker, group) for _, worker, _ in choices]
        where = ", ".join(str(rank + 1) for rank in ranks)
        text = f"static assignment for {req.view!r}: listed worker #{where} of {listed}"
        return float(ranks[0]), text


class RoundRobinStrategy(Strategy):
    """Rotates across feasible workers of a pool in name order.

    Config: ``{"cursor": RoundRobinCursor(...)}`` (optional). The round resumes
    after the cursor's worker and returns the advanced cursor in
    ``ScheduleResult.cursor`` for the caller to keep.
    """

    name = "round_robin"
    rotates = True

    def __init__(self, cursor: RoundRobinCursor | None = None) -> None:
        self.cursor = cursor if cursor is not None else RoundRobinCursor()

    def initial_cursor(self) -> Mapping[str, str]:
        return self.cursor.positions

    def scan(self, bucket: list[tuple], group: WorkerGroup, rc: RoundContext) -> Sequence[tuple]:
        last = rc.cursor.get(group.pool)
        if last is None:
            return bucket
        cut = _after(bucket, last)
        return bucket[cut:] + bucket[:cut] if cut else bucket

    def score(
        self,
        entry: tuple,
        k: int,
        group: WorkerGroup,
        worker: WorkingWorker,
        req: Request,
        rc: RoundContext,
    ) -> tuple:
        last = rc.cursor.get(group.pool)
        name = entry[0]
        # Names after the cursor come first; wrapped-around names after them.
        return (last is not None and name <= last, name)

    def gang_order(self, group: WorkerGroup, gpus: int, rc: RoundContext) -> Iterable[tuple]:
        buckets = [bucket for bucket in group.buckets[gpus:] if bucket]
        last = rc.cursor.get(group.pool)
        if last is None:
            return heapq.merge(*buckets)
        cuts = [_after(bucket, last) for bucket in buckets]
        return chain(
            heapq.merge(*(bucket[cut:] for bucket, cut in zip(buckets, cuts, strict=True))),
            heapq.merge(*(bucket[:cut] for bucket, cut in zip(buckets, cuts, strict=True))),
        )

    def placed(self, req: Request, choices: list[Choice], rc: RoundContext) -> None:
        group, worker, _ = choices[-1]
        rc.cursor[group.pool] = worker.name

    def describe(self, req: Request, choices: list[Choice], rc: RoundContext) -> tuple[float, str]:
        group = choices[0][0]
        last = rc.cursor.get(group.pool)
        after = f"after {last}" if last is not None else "from the start"
        return 0.0, f"round robin in pool {group.pool!r}: next feasible worker {after}"

    def result_cursor(self, rc: RoundContext) -> RoundRobinCursor | None:
        return RoundRobinCursor(dict(rc.cursor))


class LeastLoadedStrategy(Strategy):
    """Lowest fraction of GPUs allocated, then fewest running jobs, then name.

    Config: none.
    """

    name = "least_loaded"

    def entry_key(self, worker: WorkingWorker, rank: int, gpu_class: GpuClass | None) -> tuple:
        return (worker.load, worker.running_jobs, worker.name)

    def describe(self, req: Request, choices: list[Choice], rc: RoundContext) -> tuple[float, str]:
        _, worker, _ = choices[0]
        load = worker.load
        running = worker.running_jobs
        jobs = "job" if running == 1 else "jobs"
        return (
            load,
            f"least loaded: {load:.0%} of GPUs allocated, {running} running {jobs}",
        )


class CapabilityStrategy(Strategy):
    """Best fit among capable workers: fewest free GPUs of the class left, then least spare memory.

    GPU type, per-GPU memory and labels are hard filters (the scheduler applies
    them for every strategy). Zero-GPU jobs fit the worker with the fewest free
    CPUs, then memory, that still has enough. Config: none.
    """

    name = "capability"

    def entry_key(self, worker: WorkingWorker, rank: int, gpu_class: GpuClass | None) -> tuple:
        if gpu_class is None:
            return (worker.cpus_free, worker.memory_free, worker.name)
        return (worker.name,)

    def score(
        self,
        entry: tuple,
        k: int,
        group: WorkerGroup,
        worker: WorkingWorker,
        req: Request,
        rc: RoundContext,
    ) -> tuple:
        if group.gpu_class is None:
            return (0, 0, *entry[:-1])
        return (
            k - req.gpus,
            (group.memory_mb - req.gpu_memory_mb) * req.gpus,
            worker.name,
        )

    def gang_order(self, group: WorkerGroup, gpus: int, rc: RoundContext) -> Iterable[tuple]:
        # Best fit means the tightest bucket first, which the bucket index already is.
        return chain.from_iterable(group.buckets[gpus:])

    def describe(self, req: Request, choices: list[Choice], rc: RoundContext) -> tuple[float, str]:
        group, worker, k = choices[0]
        if group.gpu_class is None:
            return 0.0, (
                f"best fit: leaves {worker.cpus_free - req.cpus:g} CPUs and "
                f"{worker.memory_free - req.memory_mb} MiB free"
            )
        left = k - req.gpus
        text = f"best fit: leaves {left} free {group.type_label} GPU{'s' if left != 1 else ''}"
        if req.gpu_memory_mb:
            text += f", {group.memory_mb - req.gpu_memory_mb} MiB spare memory per GPU"
        return float(left), text


class MinCompletionTimeStrategy(Strategy):
    """Earliest expected completion: worker backlog + expected duration on its GPU type.

    The duration comes from ``ClusterSnapshot.duration_history`` keyed by
    ``(entrypoint or kind, gpu_type)``, else the job's estimate, else the policy
    default. Each placement adds ``duration x gpus / worker GPUs`` to that
    worker's backlog for the rest of the round: the job occupies that share of
    the host's throughput. Config: none.
    """

    name = "min_completion_time"
    needs_duration = True

    def entry_key(self, worker: WorkingWorker, rank: int, gpu_class: GpuClass | None) -> tuple:
        return (worker.backlog_s, worker.name)

    def score(
        self,
        entry: tuple,
        k: int,
        group: WorkerGroup,
        worker: WorkingWorker,
        req: Request,
        rc: RoundContext,
    ) -> tuple:
        duration, _ = rc.duration(req.job, group.type_key)
        return (worker.backlog_s + duration, worker.name)

    def describe(self, req: Request, choices: list[Choice], rc: RoundContext) -> tuple[float, str]:
        group, worker, _ = max(choices, key=lambda c: c[1].backlog_s)
        duration, source = rc.duration(req.job, group.type_key)
        finish = worker.backlog_s + duration
        return finish, (
            f"earliest completion in ~{format_duration(finish)}: {format_duration(duration)} on "
            f"{group.type_label} ({source}) + {format_duration(worker.backlog_s)} backlog"
        )


class CostStrategy(Strategy):
    """Cheapest worker (GPU-hour price x GPUs x expected hours) that finishes before the deadline.

    Expected finish is ``now + backlog + expected duration`` (as in
    ``min_completion_time``). Jobs without a deadline simply go to the cheapest
    fit. When every fitting worker misses the deadline the job waits with the
    cheapest one's finish time in the reason. Config: none.
    """

    name = "cost"
    needs_duration = True
    filters = True

    def entry_key(self, worker: WorkingWorker, rank: int, gpu_class: GpuClass | None) -> tuple:
        return (worker.cost_per_gpu_hour, worker.backlog_s, worker.name)

    def score(
        self,
        entry: tuple,
        k: int,
        group: WorkerGroup,
        worker: WorkingWorker,
        req: Request,
        rc: RoundContext,
    ) -> tuple:
        duration, _ = rc.duration(req.job, group.type_key)
        return (
            worker.cost_per_gpu_hour * req.gpus * duration / 3600.0,
            worker.backlog_s + duration,
            worker.name,
        )

    def hopeless(self, group: WorkerGroup, req: Request, rc: RoundContext) -> bool:
        if req.deadline_s is None:
            return False
        duration, _ = rc.duration(req.job, group.type_key)
        return duration > req.deadline_s

    def accept(self, worker: WorkingWorker, group: WorkerGroup, req: Request, rc: RoundContext) -> bool:
        if req.deadline_s is None:
            return True
        duration, _ = rc.duration(req.job, group.type_key)
        finish = worker.backlog_s + duration
        if finish <= req.deadline_s:
            return True
        cost = worker.cost_per_gpu_hour * req.gpus * duration / 3600.0
        if req.miss is None or (cost, finish) < req.miss[:2]:
            req.miss = (cost, finish, worker.name)
        return False

    def gang_score(self, scores: list[tuple]) -> tuple:
        return (sum(s[0] for s in scores), max(s[1] for s in scores), scores[0][2])

    def describe(self, req: Request, choices: list[Choice], rc: RoundContext) -> tuple[float, str]:
        group = choices[0][0]
        duration, source = rc.duration(req.job, group.type_key)
        hours = duration / 3600.0
        cost = sum(worker.cost_per_gpu_hour for _, worker, _ in choices) * req.gpus * hours
        finish = max(worker.backlog_s for _, worker, _ in choices) + duration
        what = f"{req.gpus}×{group.type_label}" if req.gpus else "CPU only"
        text = f"cheapest: {cost:.2f} for {what} × {hours:.2f} h ({source})"
        if req.job.deadline is not None:
            text += (
                f", finishes ~{format_time(rc.now + timedelta(seconds=finish))} "
                f"before deadline {format_time(req.job.deadline)}"
            )
        return cost, text


def membership_rank(worker: WorkingWorker, group: WorkerGroup) -> int:
    """The worker's rank in the view of ``group`` (its position in a static list)."""
    for membership in worker.memberships:
        if membership[0].view == group.view:
            return membership[3]
    return 0


def _after(bucket: list[tuple], last: str) -> int:
    # Entries are (name, worker idx); this sorts after every entry named ``last``.
    return bisect_right(bucket, (last, float("inf")))


#: Strategy name -> class; the class is called with the strategy config as keyword arguments.
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        StaticStrategy,
        RoundRobinStrategy,
        LeastLoadedStrategy,
        MinCompletionTimeStrategy,
        CapabilityStrategy,
        CostStrategy,
    )
}


def make_strategy(name: str, config: Mapping[str, Any] | None = None) -> Strategy:
    """Build the strategy registered as ``name`` from its config mapping."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(sorted(STRATEGIES))}") from None
    try:
        return cls(**dict(config or {}))
    except TypeError as exc:
        raise ValueError(f"bad config for strategy {name!r}: {exc}") from None
