"""What a scheduling round decides: placements, and reasons for jobs left waiting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "NodeAssignment",
    "Placement",
    "ReasonCode",
    "RoundRobinCursor",
    "ScheduleResult",
    "Unplaceable",
]


class ReasonCode(StrEnum):
    """Machine-readable category of why a job could not be placed this round."""

    INVALID_REQUEST = "invalid_request"
    NO_STATIC_ASSIGNMENT = "no_static_assignment"
    NO_ONLINE_WORKER = "no_online_worker"
    NO_GPU_TYPE = "no_gpu_type"
    NOT_ENOUGH_GPUS = "not_enough_gpus"
    NO_FREE_GPUS = "no_free_gpus"
    INSUFFICIENT_RESOURCES = "insufficient_resources"
    QUOTA = "quota"
    DEADLINE = "deadline"
    GANG = "gang"


@dataclass(frozen=True, slots=True)
class NodeAssignment:
    """One worker of a placement and the GPU indices the job gets on it."""

    worker: str
    gpu_indices: tuple[int, ...]
    rank: int


@dataclass(frozen=True, slots=True)
class Placement:
    """A job bound to one worker, or to ``len(nodes)`` distinct workers for a gang.

    ``nodes`` is in rank order; ``nodes[0]`` is the gang master (rank 0).
    ``score`` is the strategy's primary figure for the choice (lower is better:
    load fraction, free GPUs left, expected seconds, cost, ...) and ``reason``
    says in words why this worker won.
    """

    job_id: str
    nodes: tuple[NodeAssignment, ...]
    strategy: str
    score: float
    reason: str
    effective_priority: float

    @property
    def master(self) -> str:
        """Name of the rank-0 worker."""
        return self.nodes[0].worker

    @property
    def workers(self) -> tuple[str, ...]:
        """Worker names in rank order."""
        return tuple(node.worker for node in self.nodes)


@dataclass(frozen=True, slots=True)
class Unplaceable:
    """A job that stays queued this round, with a human reason naming what is missing."""

    job_id: str
    code: ReasonCode
    reason: str
    effective_priority: float


@dataclass(frozen=True, slots=True)
class RoundRobinCursor:
    """Where ``round_robin`` stopped: pool name -> last worker it placed on.

    Keep the cursor a round returns and pass it to the next round so rotation
    continues instead of restarting at the alphabetically first worker.
    Positions are worker names, so the cursor survives workers joining or leaving.
    """

    positions: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """The decisions of one round, in the order jobs were considered."""

    strategy: str
    placements: tuple[Placement, ...]
    unplaceable: tuple[Unplaceable, ...]
    cursor: RoundRobinCursor | None = None

    def placement_for(self, job_id: str) -> Placement | None:
        """The placement of ``job_id``, or ``None`` if it was not placed."""
        return next((p for p in self.placements if p.job_id == job_id), None)

    def reason_for(self, job_id: str) -> Unplaceable | None:
        """Why ``job_id`` was not placed, or ``None`` if it was."""
        return next((u for u in self.unplaceable if u.job_id == job_id), None)
