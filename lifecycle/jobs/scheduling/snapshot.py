"""Immutable inputs of a scheduling round: the cluster as reported, and the queued jobs.

Everything here is a frozen dataclass of plain values so a round can be replayed
from a recorded snapshot and tested without a database. The Django side builds
these from its models; nothing in this package imports Django.

Conventions:

* GPU types are compared case-insensitively (``"a100"`` matches ``"A100"``); the
  caller should normalise vendor strings such as ``"NVIDIA A100-SXM4-80GB"`` to a
  short type name, and put the memory in ``memory_mb``.
* ``gpus``, ``cpus`` and ``memory_mb`` on a job are *per node*: a gang job with
  ``nodes=4, gpus=8`` needs four workers with eight free GPUs each.
* All datetimes of one round (``now``, ``submitted_at``, ``deadline``) must be of
  the same kind, preferably timezone-aware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "ClusterSnapshot",
    "DurationHistory",
    "GpuSnapshot",
    "JobRequest",
    "PoolQuota",
    "RunningJob",
    "WorkerSnapshot",
    "WorkerState",
]

#: ``(job kind or entrypoint, gpu_type)`` -> mean seconds, or the past durations.
DurationHistory = Mapping[tuple[str, str], float | Sequence[float]]


class WorkerState(StrEnum):
    """Lifecycle state a worker reports; only ``online`` workers receive new jobs."""

    ONLINE = "online"
    DRAINING = "draining"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    """One GPU of a worker, as reported by its inventory (e.g. NVML)."""

    index: int
    gpu_type: str
    memory_mb: int


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """A Celery worker host: its inventory and what is already allocated on it.

    ``cost_per_gpu_hour`` is the price of *one* GPU of this worker for one hour;
    a host priced as a whole should be divided by its GPU count by the caller.
    ``backlog_s`` is the reported queued work (seconds) ahead of a new job.
    """

    name: str
    pool: str = "default"
    gpus: tuple[GpuSnapshot, ...] = ()
    cpus: float = 0
    memory_mb: int = 0
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    cost_per_gpu_hour: float = 0.0
    state: WorkerState | str = WorkerState.ONLINE
    allocated_gpu_indices: frozenset[int] = frozenset()
    allocated_cpus: float = 0
    allocated_memory_mb: int = 0
    running_jobs: int = 0
    backlog_s: float = 0.0

    def __post_init__(self) -> None:
        indices = [gpu.index for gpu in self.gpus]
        if len(set(indices)) != len(indices):
            raise ValueError(f"worker {self.name!r} reports duplicate GPU indices {sorted(indices)}")
        try:
            object.__setattr__(self, "state", WorkerState(self.state))
        except ValueError:
            raise ValueError(f"worker {self.name!r} has unknown state {self.state!r}") from None
        # Accept any iterable from callers but keep the frozen type stable.
        if not isinstance(self.allocated_gpu_indices, frozenset):
            object.__setattr__(self, "allocated_gpu_indices", frozenset(self.allocated_gpu_indices))

    @property
    def free_gpu_indices(self) -> tuple[int, ...]:
        """Indices of GPUs in the inventory that are not allocated, ascending."""
        allocated = self.allocated_gpu_indices
        return tuple(sorted(gpu.index for gpu in self.gpus if gpu.index not in allocated))


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A queued job asking for resources.

    ``gpus``/``cpus``/``memory_mb`` are per node; ``nodes > 1`` makes it a gang.
    ``gpu_memory_mb`` is the minimum memory of *each* GPU. ``labels`` must all be
    present with equal values on the worker. ``model_name`` and ``team`` are the
    keys the ``static`` strategy looks up.
    """

    id: str
    team: str
    pool: str = "default"
    kind: str = "train"
    entrypoint: str | None = None
    model_name: str | None = None
    gpus: int = 0
    gpu_type: str | None = None
    gpu_memory_mb: int | None = None
    cpus: float = 0
    memory_mb: int = 0
    nodes: int = 1
    parallelism: str = "none"
    processes_per_node: int = 1
    priority: int = 0
    submitted_at: datetime | None = None
    deadline: datetime | None = None
    estimated_duration_s: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def total_gpus(self) -> int:
        """GPUs the whole job holds: per-node GPUs times nodes (what quotas count)."""
        return self.gpus * self.nodes


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job already holding GPUs; only used to count team usage against quotas."""

    job_id: str
    team: str
    pool: str
    gpus: int


@dataclass(frozen=True, slots=True)
class PoolQuota:
    """At most ``gpu_limit`` GPUs held at once by ``team`` in ``pool``.

    Teams without a quota entry for a pool are not limited there.
    """

    pool: str
    team: str
    gpu_limit: int


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Everything a round needs to know about the cluster at one instant."""

    workers: tuple[WorkerSnapshot, ...]
    quotas: tuple[PoolQuota, ...] = ()
    running: tuple[RunningJob, ...] = ()
    duration_history: DurationHistory = field(default_factory=dict, hash=False)
