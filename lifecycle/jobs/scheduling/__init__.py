"""Pure scheduling core: which queued job runs on which GPU worker, and why not.

No Django here: the caller turns models into the frozen dataclasses of
:mod:`~lifecycle.jobs.scheduling.snapshot`, calls :func:`schedule`, and persists the
returned :class:`Placement` and :class:`Unplaceable` records.
"""

from lifecycle.jobs.scheduling.outcome import (
    NodeAssignment,
    Placement,
    ReasonCode,
    RoundRobinCursor,
    ScheduleResult,
    Unplaceable,
)
from lifecycle.jobs.scheduling.priority import (
    SchedulingPolicy,
    effective_priority,
    queue_order,
)
from lifecycle.jobs.scheduling.scheduler import schedule
from lifecycle.jobs.scheduling.snapshot import (
    ClusterSnapshot,
    GpuSnapshot,
    JobRequest,
    PoolQuota,
    RunningJob,
    WorkerSnapshot,
    WorkerState,
)
from lifecycle.jobs.scheduling.strategies import STRATEGIES, Strategy, make_strategy

__all__ = [
    "STRATEGIES",
    "ClusterSnapshot",
    "GpuSnapshot",
    "JobRequest",
    "NodeAssignment",
    "Placement",
    "PoolQuota",
    "ReasonCode",
    "RoundRobinCursor",
    "RunningJob",
    "ScheduleResult",
    "SchedulingPolicy",
    "Strategy",
    "Unplaceable",
    "WorkerSnapshot",
    "WorkerState",
    "effective_priority",
    "make_strategy",
    "queue_order",
    "schedule",
]
