"""Queue order: static priority plus aging, so waiting jobs eventually go first.

Effective priority of a job at time ``now``::

    waited_s  = max(0, now - submitted_at)            # seconds in the queue
    boost     = aging_points * waited_s / aging_interval_s
    boost     = min(boost, aging_cap)                 # only if aging_cap is set
    effective = priority + boost

With the defaults (1 point per 300 s) a priority-0 job that has waited one hour
ranks like a fresh priority-12 job. Jobs are considered in descending effective
priority, then by earlier ``submitted_at``, then by id, which makes the order
total and the round deterministic. A job without ``submitted_at`` gets no boost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lifecycle.jobs.scheduling.snapshot import JobRequest

__all__ = ["SchedulingPolicy", "effective_priority", "queue_order"]


@dataclass(frozen=True, slots=True)
class SchedulingPolicy:
    """Round-wide knobs that do not belong to a particular strategy.

    ``default_duration_s`` is assumed for jobs with neither history nor an
    estimate, where a strategy needs a duration (``min_completion_time``, ``cost``).
    """

    aging_points: float = 1.0
    aging_interval_s: float = 300.0
    aging_cap: float | None = None
    default_duration_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.aging_interval_s <= 0:
            raise ValueError("aging_interval_s must be positive")
        if self.default_duration_s < 0:
            raise ValueError("default_duration_s must not be negative")


def effective_priority(job: JobRequest, now: datetime, policy: SchedulingPolicy) -> float:
    """``priority + aging_points * waited_s / aging_interval_s`` (capped); see module doc."""
    if job.submitted_at is None:
        return float(job.priority)
    waited_s = (now - job.submitted_at).total_seconds()
    if waited_s <= 0:
        return float(job.priority)
    boost = policy.aging_points * waited_s / policy.aging_interval_s
    if policy.aging_cap is not None and boost > policy.aging_cap:
        boost = policy.aging_cap
    return job.priority + boost


def queue_order(jobs: Iterable[JobRequest], now: datetime, policy: SchedulingPolicy) -> list[tuple[float, JobRequest]]:
    """Jobs with their effective priority, in the order a round considers them."""
    keyed = []
    for job in jobs:
        eff = effective_priority(job, now, policy)
        submitted = job.submitted_at if job.submitted_at is not None else now
        keyed.append((-eff, submitted, job.id, job))
    keyed.sort(key=lambda item: item[:3])
    return [(-neg_eff, job) for neg_eff, _, _, job in keyed]
