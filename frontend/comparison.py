"""Champion versus candidate: the version's current metrics beside production's, with deltas.

Plain Python over dicts, so the arithmetic is tested without a database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lifecycle.governance.rules import default_direction


@dataclass(frozen=True)
class MetricComparison:
    """One metric of the candidate and of the champion; ``improved`` follows the
    metric's direction (lower is better for losses and errors)."""

    name: str
    candidate: float | None
    champion: float | None
    delta: float | None
    direction: str
    improved: bool | None
    candidate_ci: tuple[float | None, float | None] | None = None
    champion_ci: tuple[float | None, float | None] | None = None


def metric_comparison(
    *,
    candidate: dict[str, float],
    champion: dict[str, float],
    intervals: dict[str, dict[str, float | None]] | None = None,
    first: str = "",
) -> list[MetricComparison]:
    """Every metric either side has, the model's primary metric ``first`` on top."""
    intervals = intervals or {}
    rows = []
    for name in sorted(candidate.keys() | champion.keys(), key=lambda n: (n != first, n)):
        mine, theirs = candidate.get(name), champion.get(name)
        direction = default_direction(name)
        delta = improved = None
        if mine is not None and theirs is not None and math.isfinite(mine) and math.isfinite(theirs):
            delta = mine - theirs
            improved = None if delta == 0 else (delta > 0) == (direction == "higher")
        bounds = intervals.get(name, {})
        rows.append(
            MetricComparison(
                name=name,
                candidate=mine,
                champion=theirs,
                delta=delta,
                direction=direction,
                improved=improved,
                candidate_ci=_interval(bounds, "candidate"),
                champion_ci=_interval(bounds, "champion"),
            )
        )
    return rows


def _interval(bounds: dict[str, float | None], side: str) -> tuple[float | None, float | None] | None:
    low, high = bounds.get(f"{side}_ci_low"), bounds.get(f"{side}_ci_high")
    return None if low is None and high is None else (low, high)
