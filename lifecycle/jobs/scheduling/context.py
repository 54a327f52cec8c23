"""Per-round and per-job state shared by the scheduler loop and the strategies."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime

from lifecycle.jobs.scheduling.capacity import CPU_TYPE
from lifecycle.jobs.scheduling.priority import SchedulingPolicy
from lifecycle.jobs.scheduling.snapshot import DurationHistory, JobRequest

__all__ = ["Request", "RoundContext", "format_duration", "format_time"]


class RoundContext:
    """Facts fixed for a round plus the little state strategies carry through it.

    ``cursor`` is the working copy of the round-robin positions (pool -> last
    worker name); the scheduler returns it when the round ends.
    """

    __slots__ = ("_durations", "cursor", "history", "now", "policy")

    def __init__(
        self,
        now: datetime,
        policy: SchedulingPolicy,
        history: DurationHistory,
        cursor: Mapping[str, str],
    ) -> None:
        self.now = now
        self.policy = policy
        self.history = _mean_history(history)
        self.cursor: dict[str, str] = dict(cursor)
        self._durations: dict[tuple, tuple[float, str]] = {}

    def duration(self, job: JobRequest, type_key: str) -> tuple[float, str]:
        """Expected run time of ``job`` on GPUs of ``type_key`` and where the figure comes from.

        Similar past runs beat the declared estimate: the entrypoint is the most
        specific notion of "similar", then the job kind. ``type_key`` is the
        casefolded GPU type, or ``"cpu"`` for zero-GPU jobs.
        """
        key = (job.entrypoint, job.kind, job.estimated_duration_s, type_key)
        found = self._durations.get(key)
        if found is None:
            found = self._lookup(job, type_key)
            self._durations[key] = found
        return found

    def _lookup(self, job: JobRequest, type_key: str) -> tuple[float, str]:
        history = self.history
        for what in (job.entrypoint, job.kind):
            if what is not None:
                hit = history.get((what, type_key))
                if hit is not None:
                    mean, runs = hit
                    noun = "run" if runs == 1 else "runs"
                    return (
                        mean,
                        f"history of {runs} {what} {noun}" if runs else f"history of {what}",
                    )
        if job.estimated_duration_s is not None:
            return float(job.estimated_duration_s), "job estimate"
        return self.policy.default_duration_s, "default estimate"


class Request:
    """One job's requirements, normalised once, plus what the search learnt about it.

    ``miss`` is the cheapest ``(cost, finish seconds from now, worker)`` that had
    the resources but missed the deadline; ``available`` is the most workers one
    GPU class could offer a gang.
    """

    __slots__ = (
        "available",
        "cpus",
        "deadline_s",
        "effective_priority",
        "gpu_memory_mb",
        "gpus",
        "job",
        "labels",
        "memory_mb",
        "miss",
        "nodes",
        "type_key",
        "view",
    )

    def __init__(self, job: JobRequest, effective_priority: float, view: Hashable, now: datetime) -> None:
        self.job = job
        self.effective_priority = effective_priority
        self.view = view
        self.gpus = job.gpus
        self.cpus = job.cpus
        self.memory_mb = job.memory_mb
        self.labels: tuple[tuple[str, str], ...] = tuple(sorted(job.labels.items())) if job.labels else ()
        self.type_key = job.gpu_type.casefold() if job.gpu_type and job.gpus > 0 else None
        self.gpu_memory_mb = (job.gpu_memory_mb or 0) if job.gpus > 0 else 0
        self.nodes = job.nodes
        self.deadline_s = (job.deadline - now).total_seconds() if job.deadline is not None else None
        self.miss: tuple[float, float, str] | None = None
        self.available = 0

    @property
    def shape(self) -> tuple:
        """Everything that decides whether capacity fits, for memoising failures."""
        return (
            self.view,
            self.job.pool,
            self.gpus,
            self.type_key,
            self.gpu_memory_mb,
            self.cpus,
            self.memory_mb,
            self.labels,
            self.nodes,
        )


def _mean_history(history: DurationHistory) -> dict[tuple[str, str], tuple[float, int]]:
    means: dict[tuple[str, str], tuple[float, int]] = {}
    for (what, gpu_type), value in history.items():
        if isinstance(value, Sequence):
            if not value:
                continue
            mean, runs = sum(value) / len(value), len(value)
        else:
            # A bare mean carries no run count; 0 tells the reason text not to invent one.
            mean, runs = float(value), 0
        means[(what, (gpu_type or CPU_TYPE).casefold())] = (mean, runs)
    return means


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1h 30m"``; short and readable in a reason string."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes = whole // 60
    hours, minutes = divmod(minutes, 60)
    if hours < 1:
        return f"{minutes}m"
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m"


def format_time(moment: datetime) -> str:
    """Minute-precision timestamp for reasons, with the offset when the time is aware."""
    return moment.isoformat(sep=" ", timespec="minutes")
