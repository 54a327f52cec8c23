"""Metric computation for evaluation jobs. Pure: numpy and scikit-learn, no Django.

Classification: accuracy, precision / recall / F1 (macro and weighted), ROC-AUC, log
loss, confusion matrix, calibration (Brier score and expected calibration error).
Regression: MAE, RMSE, R². Plus a bootstrap confidence interval for any metric, a
paired bootstrap interval for the difference between two models on the same rows,
and per-slice metrics.

Which side of each metric is better (lower for log loss, Brier, ECE, MAE, RMSE) is
``lifecycle.metric_direction.default_direction``'s answer, the one the gates use too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, y_proba: np.ndarray | None, labels: Sequence[Any]
) -> dict[str, Any]:
    """Scalar metrics and the confusion matrix of a classifier on one dataset."""
    result: dict[str, Any] = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision_macro": skm.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "precision_weighted": skm.precision_score(y_true, y_pred, average="weighted", zero_division=0),
        "recall_weighted": skm.recall_score(y_true, y_pred, average="weighted", zero_division=0),
        "f1_weighted": skm.f1_score(y_true, y_pred, average="weighted", zero_division=0),
    }
    binary = len(labels) == 2
    if binary:
        # For binary problems "f1" is the positive class's F1, as people mean it.
        result["f1"] = skm.f1_score(y_true, y_pred, pos_label=labels[1], zero_division=0)
        result["precision"] = skm.precision_score(y_true, y_pred, pos_label=labels[1], zero_division=0)
        result["recall"] = skm.recall_score(y_true, y_pred, pos_label=labels[1], zero_division=0)
    else:
        result["f1"] = result["f1_macro"]
        result["precision"] = result["precision_macro"]
        result["recall"] = result["recall_macro"]
    if y_proba is not None:
        try:
            if binary:
                result["roc_auc"] = skm.roc_auc_score(y_true, y_proba[:, 1])
                result["brier"] = skm.brier_score_loss(y_true == labels[1], y_proba[:, 1])
                result["ece"] = expected_calibration_error(y_true == labels[1], y_proba[:, 1])
            else:
                result["roc_auc"] = skm.roc_auc_score(y_true, y_proba, multi_class="ovr", labels=list(labels))
            result["log_loss"] = skm.log_loss(y_true, y_proba, labels=list(labels))
        except ValueError:
            # A test split with one class present has no ROC-AUC; the rest still stands.
            pass
    scalars = {k: _finite(v) for k, v in result.items()}
    scalars["confusion_matrix"] = {
        "labels": [str(label) for label in labels],
        "matrix": skm.confusion_matrix(y_true, y_pred, labels=list(labels)).tolist(),
    }
    return scalars


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    return {
        "mae": _finite(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": _finite(math.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "r2": _finite(skm.r2_score(y_true, y_pred)),
    }


def expected_calibration_error(positive: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy − confidence| over equal-width probability bins, weighted by count."""
    positive = np.asarray(positive, dtype=float)
    probability = np.asarray(probability, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(positive[mask].mean() - probability[mask].mean())
    return float(total / max(len(probability), 1))


def calibration_curve(positive: np.ndarray, probability: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    positive = np.asarray(positive, dtype=float)
    probability = np.asarray(probability, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
    return [
        {
            "bin": b,
            "confidence": float(probability[which == b].mean()),
            "accuracy": float(positive[which == b].mean()),
            "count": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


MetricFn = Callable[[np.ndarray, np.ndarray], float]


def metric_function(name: str, labels: Sequence[Any] | None = None) -> MetricFn | None:
    """A ``(y_true, y_score) -> float`` for the bootstrap; ``y_score`` is predictions, or
    positive-class probabilities for ``roc_auc``."""
    positive = labels[1] if labels is not None and len(labels) == 2 else None
    functions: dict[str, MetricFn] = {
        "accuracy": skm.accuracy_score,
        "f1": (lambda t, p: skm.f1_score(t, p, pos_label=positive, zero_division=0))
        if positive is not None
        else (lambda t, p: skm.f1_score(t, p, average="macro", zero_division=0)),
        "f1_macro": lambda t, p: skm.f1_score(t, p, average="macro", zero_division=0),
        "f1_weighted": lambda t, p: skm.f1_score(t, p, average="weighted", zero_division=0),
        "mae": skm.mean_absolute_error,
        "rmse": lambda t, p: math.sqrt(skm.mean_squared_error(t, p)),
        "r2": skm.r2_score,
    }
    return functions.get(name)


def bootstrap_interval(
    y_true: np.ndarray, y_pred: np.ndarray, metric: MetricFn, *, rounds: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric over resampled rows."""
    rng = np.random.default_rng(seed)
    n = len(y_true)
    values = []
    for _ in range(rounds):
        rows = rng.integers(0, n, n)
        try:
            values.append(metric(y_true[rows], y_pred[rows]))
        except ValueError:
            continue
    if not values:
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def paired_delta_interval(
    y_true: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    metric: MetricFn,
    *,
    rounds: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """candidate − champion on the same rows, with a paired bootstrap interval."""
    rng = np.random.default_rng(seed)
    n = len(y_true)
    deltas = []
    for _ in range(rounds):
        rows = rng.integers(0, n, n)
        try:
            deltas.append(metric(y_true[rows], candidate[rows]) - metric(y_true[rows], champion[rows]))
        except ValueError:
            continue
    alpha = (1 - level) / 2
    point = metric(y_true, candidate) - metric(y_true, champion)
    low, high = (
        (float(np.quantile(deltas, alpha)), float(np.quantile(deltas, 1 - alpha))) if deltas else (math.nan, math.nan)
    )
    return {"delta": float(point), "ci_low": low, "ci_high": high, "level": level, "rounds": rounds}


def slice_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, slices: np.ndarray, metric: MetricFn, *, max_slices: int = 50
) -> list[dict[str, Any]]:
    """The metric on each value of a slicing column (the most frequent values first)."""
    values, counts = np.unique(slices.astype(str), return_counts=True)
    order = np.argsort(-counts)[:max_slices]
    rows = []
    for index in order:
        mask = slices.astype(str) == values[index]
        try:
            score = metric(y_true[mask], y_pred[mask])
        except ValueError:
            score = math.nan
        rows.append({"slice": str(values[index]), "count": int(counts[index]), "value": _finite(score)})
    return rows
