"""Pure scheduling core: which queued job runs on which GPU worker, and why not.

No Django here: the caller turns models into the frozen dataclasses of
:mod:`~lifecycle.scheduling.snapshot`, calls :func:`schedule`, and persists the
returned :class:`Placement` and :class:`Unplaceable` records.
"""

from lifecycle.scheduling.outcome import (
    NodeAssignment,
    Placement,
    ReasonCode,
    RoundRobinCursor,
    ScheduleResult,
    Unplaceable,
)
from lifecycle.scheduling.priority import (
    SchedulingPolicy,
    effective_priority,
    queue_order,
)
from lifecycle.scheduling.scheduler import schedule
from lifecycle.scheduling.snapshot import (
    ClusterSnapshot,
    GpuSnapshot,
    JobRequest,
    PoolQuota,
    RunningJob,
    WorkerSnapshot,
    WorkerState,
)
from lifecycle.scheduling.strategies import STRATEGIES, Strategy, make_strategy

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
