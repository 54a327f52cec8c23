"""Live metrics of a version: its logged predictions against the labels that came back.
Pure (pandas, scikit-learn through ``lifecycle.evaluation.metrics``; no Django).

A prediction is read as the model's answer for one row: a label or a number, or an object
holding one (``label`` / ``prediction`` / ``predicted_label``) with, for ROC AUC, the
probability of each class (``probabilities``, or ``probability`` / ``score`` for the
positive class of a binary task)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.evaluation.metrics import classification_metrics, regression_metrics

_LABEL_KEYS = ("label", "prediction", "predicted_label", "class")
_PROBABILITY_KEYS = ("probability", "score", "proba")


def _answer(prediction: Any) -> Any:
    if isinstance(prediction, Mapping):
        for key in _LABEL_KEYS:
            if key in prediction:
                return prediction[key]
        return None
    if isinstance(prediction, list):
        return None
    return prediction


def _positive_score(prediction: Any) -> float | None:
    if isinstance(prediction, Mapping):
        probabilities = prediction.get("probabilities")
        if isinstance(probabilities, list) and len(probabilities) == 2:
            return float(probabilities[1])
        for key in _PROBABILITY_KEYS:
            if isinstance(prediction.get(key), int | float):
                return float(prediction[key])
    if isinstance(prediction, list) and len(prediction) == 2 and all(isinstance(v, int | float) for v in prediction):
        return float(prediction[1])
    return None


def _same_kind(values: Sequence[Any]) -> list[Any]:
    # Labels sent as text ("1") and answers as numbers (1) are the same class.
    return [str(v) if not isinstance(v, str) else v for v in values]


def _clean(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    return {
        k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v))
        for k, v in metrics.items()
        if not isinstance(v, Mapping)
    }


def live_metrics(task: str, predictions: Sequence[Any], labels: Sequence[Any]) -> dict[str, Any]:
    """``{"labelled_rows": N, "metrics": {...}}`` of the rows that have both an answer and
    a label; the task's metrics (classification or regression)."""
    pairs = [
        (prediction, label)
        for prediction, label in zip(predictions, labels, strict=True)
        if label is not None and _answer(prediction) is not None
    ]
    result: dict[str, Any] = {"labelled_rows": len(pairs), "metrics": {}}
    if not pairs:
        return result
    answers = [_answer(p) for p, _ in pairs]
    truth = [label for _, label in pairs]
    if task == "regression":
        try:
            y_pred = np.asarray(answers, dtype=float)
            y_true = np.asarray(truth, dtype=float)
        except (TypeError, ValueError):
            return result
        result["metrics"] = _clean(regression_metrics(y_true, y_pred))
        return result
    y_pred = np.asarray(_same_kind(answers), dtype=object)
    y_true = np.asarray(_same_kind(truth), dtype=object)
    classes = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    proba = None
    scores = [_positive_score(p) for p, _ in pairs]
    if len(classes) == 2 and all(s is not None for s in scores):
        positive = np.asarray(scores, dtype=float)
        proba = np.column_stack([1.0 - positive, positive])
    metrics = classification_metrics(y_true, y_pred, proba, classes)
    result["metrics"] = _clean(metrics)
    return result


def windows_of(frame: pd.DataFrame, *, start: pd.Timestamp, step: pd.Timedelta) -> dict[int, pd.DataFrame]:
    """The frame's rows by window index (``(ts - start) // step``)."""
    if frame.empty:
        return {}
    index = ((frame["ts"] - start) // step).astype(int)
    return {int(i): part for i, part in frame.groupby(index)}
