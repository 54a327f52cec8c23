"""Nearest-rank percentiles and the result of one measurement."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` in 0-100): the value of rank
    ``ceil(q / 100 * n)`` among the ``n`` sorted values, the first for ``q`` = 0; no
    interpolation, so it is always a value measured. NaN when there are none.

    p95 of 60 values is the 57th smallest, of 200 the 190th.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    # q * n / 100 rather than q / 100 * n: 7 / 100 * 100 is 7.000000000000001, whose ceiling is 8.
    rank = min(len(ordered), max(1, math.ceil(q * len(ordered) / 100)))
    return ordered[rank - 1]


@dataclass
class Result:
    """One measurement of one system: a fixed number of calls over client threads."""

    system: str
    what: str
    clients: int
    planned: int
    latencies: list[float]  # seconds, of the successful calls
    errors: int
    wall: float
    timed_out: bool
    first_error: str | None
    cpu: float = math.nan  # CPU seconds of the services and their database backends
    cpu_parts: dict[str, float] = field(default_factory=dict)  # the same, per service
    client_cpu: float = 0.0  # CPU seconds of the clients during the measurement

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def cpu_per_request(self) -> float:
        """Milliseconds of CPU per successful request, all services included."""
        return self.cpu / self.ok * 1000 if self.ok else math.nan

    @property
    def rate(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.wall if self.wall > 0 else 0.0

    @property
    def void(self) -> bool:
        """Whether the figures are partial: an error, a cut short or nothing done."""
        return self.errors > 0 or self.timed_out or self.ok == 0

    def pct(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        return percentile(self.latencies, q) * 1000


def merge(parts: list[Result]) -> Result:
    """One result from the rounds of the same measurement."""
    first = parts[0]
    errors = [p.first_error for p in parts if p.first_error]
    return Result(
        first.system,
        first.what,
        first.clients,
        sum(p.planned for p in parts),
        [latency for p in parts for latency in p.latencies],
        sum(p.errors for p in parts),
        sum(p.wall for p in parts),
        timed_out=any(p.timed_out for p in parts),
        first_error=errors[0] if errors else None,
        cpu=sum(p.cpu for p in parts),
        cpu_parts={name: sum(p.cpu_parts.get(name, 0.0) for p in parts) for part in parts for name in part.cpu_parts},
        client_cpu=sum(p.client_cpu for p in parts),
    )
