"""What the version page shows of an evaluation: its scalar metrics with the primary
metric's interval, cross-validation, the paired deltas against the champion with their
intervals, slices and feature importance.

Plain Python over the JSON an evaluation job recorded (``Evaluation.metrics``,
``details`` and ``deltas``), so malformed or partial reports are tested without a
database; a part that is missing or malformed is left out, never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lifecycle.governance.rules import default_direction

IMPORTANCE_ROWS = 10


@dataclass(frozen=True)
class MetricRow:
    name: str
    value: float
    primary: bool
    ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class DeltaRow:
    """Candidate − champion on the same rows, with its bootstrap interval.

    ``verdict`` reads the interval: ``better`` or ``worse`` when it lies on one side of
    zero (in the metric's direction), ``inconclusive`` when it spans zero.
    """

    metric: str
    delta: float
    ci: tuple[float, float] | None
    level: float | None
    direction: str
    improved: bool | None
    verdict: str


@dataclass(frozen=True)
class CrossValidation:
    folds: int | None
    metric: str
    mean: float | None
    std: float | None
    scores: list[float] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class EvaluationReport:
    primary: str
    primary_value: float | None
    primary_ci: tuple[float, float] | None
    ci_level: float | None
    metrics: list[MetricRow]
    confusion: dict[str, Any] | None
    cv: CrossValidation | None
    deltas: list[DeltaRow]
    slices: list[dict[str, Any]]
    importance: list[dict[str, Any]]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _interval(low: Any, high: Any) -> tuple[float, float] | None:
    low, high = _number(low), _number(high)
    return None if low is None or high is None else (low, high)


def _verdict(ci: tuple[float, float] | None, direction: str) -> str:
    if ci is None:
        return "no interval"
    low, high = ci
    if low > 0 or high < 0:
        above = low > 0
        return "better" if above == (direction == "higher") else "worse"
    return "inconclusive"


def _confusion(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    labels, matrix = value.get("labels"), value.get("matrix")
    if not isinstance(labels, list) or not isinstance(matrix, list) or len(matrix) != len(labels):
        return None
    if not all(isinstance(row, list) and len(row) == len(labels) for row in matrix):
        return None
    return {"labels": [str(label) for label in labels], "rows": list(zip(labels, matrix, strict=True))}


def _cross_validation(value: Any, primary: str) -> CrossValidation | None:
    if not isinstance(value, dict):
        return None
    if value.get("error"):
        return CrossValidation(None, str(value.get("metric") or primary), None, None, error=str(value["error"]))
    scores = [s for s in (_number(v) for v in value.get("scores") or []) if s is not None]
    folds = value.get("folds")
    return CrossValidation(
        folds=folds if isinstance(folds, int) else None,
        metric=str(value.get("metric") or primary),
        mean=_number(value.get("mean")),
        std=_number(value.get("std")),
        scores=scores,
    )


def evaluation_report(
    *, metrics: dict[str, Any], details: dict[str, Any], deltas: dict[str, Any], primary: str
) -> EvaluationReport:
    """Everything the page shows of one evaluation, the primary metric first."""
    metrics = metrics if isinstance(metrics, dict) else {}
    details = details if isinstance(details, dict) else {}
    deltas = deltas if isinstance(deltas, dict) else {}
    intervals = details.get("ci") if isinstance(details.get("ci"), dict) else {}
    ci_level = None
    rows = []
    for name in sorted(metrics, key=lambda n: (n != primary, n)):
        value = _number(metrics[name])
        if value is None:
            continue
        bounds = intervals.get(name) if isinstance(intervals.get(name), dict) else {}
        ci = _interval(bounds.get("low"), bounds.get("high"))
        if ci is not None and name == primary:
            ci_level = _number(bounds.get("level"))
        rows.append(MetricRow(name=name, value=value, primary=name == primary, ci=ci))
    primary_row = next((row for row in rows if row.primary), None)
    delta_rows = []
    for name in sorted(deltas, key=lambda n: (n != primary, n)):
        entry = deltas[name]
        if not isinstance(entry, dict) or (delta := _number(entry.get("delta"))) is None:
            continue
        direction = default_direction(name)
        ci = _interval(entry.get("ci_low"), entry.get("ci_high"))
        delta_rows.append(
            DeltaRow(
                metric=name,
                delta=delta,
                ci=ci,
                level=_number(entry.get("level")),
                direction=direction,
                improved=None if delta == 0 else (delta > 0) == (direction == "higher"),
                verdict=_verdict(ci, direction),
            )
        )
    slices = [
        {"slice": str(row.get("slice")), "count": row.get("count"), "value": _number(row.get("value"))}
        for row in _list(details.get("slices"))
        if isinstance(row, dict)
    ]
    importance = [
        {"feature": str(row.get("feature")), "mean": _number(row.get("mean")), "std": _number(row.get("std"))}
        for row in _list(details.get("importance"))[:IMPORTANCE_ROWS]
        if isinstance(row, dict)
    ]
    return EvaluationReport(
        primary=primary,
        primary_value=primary_row.value if primary_row else None,
        primary_ci=primary_row.ci if primary_row else None,
        ci_level=ci_level,
        metrics=rows,
        confusion=_confusion(metrics.get("confusion_matrix")),
        cv=_cross_validation(details.get("cv"), primary),
        deltas=delta_rows,
        slices=slices,
        importance=importance,
    )
