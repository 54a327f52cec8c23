"""The prediction log's labelled rows as training rows: what an incremental update "on the
last N days of labelled predictions" fits on. Pure (no Django).

A window of the log (``lifecycle.monitoring.prediction_store``) has one column per logged
input feature and ``label``, the newest ground truth sent for the row (None where none
came). The rows kept are those with a label and a number in every column the model was
trained on, in the dataset's column order; inputs logged as an unnamed tensor are matched
by position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

MASKED_PREFIX = "pii:"
_UNKNOWN = object()


def _features(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if not missing:
        return frame[columns]
    positional = [str(i) for i in range(len(columns))]
    if all(p in frame.columns for p in positional):
        return frame[positional].set_axis(columns, axis=1)
    shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    raise ValueError(f"the logged inputs lack the model's columns {shown}")


def _label_lookup(labels: Sequence[Any]) -> dict[Any, Any]:
    # A label arrives as JSON: 1, 1.0 or "1" all name the class 1.
    lookup: dict[Any, Any] = {}
    for known in labels:
        lookup[str(known)] = known
        lookup[known] = known
    return lookup


def _classes(values: list[Any], labels: Sequence[Any]) -> np.ndarray:
    lookup = _label_lookup(labels)

    def find(value: Any) -> Any:
        if isinstance(value, int | float | str | bool) and value in lookup:
            return lookup[value]
        return lookup.get(str(value), _UNKNOWN)

    found = [find(v) for v in values]
    unknown = sorted({repr(v) for v, f in zip(values, found, strict=True) if f is _UNKNOWN})
    if unknown:
        raise ValueError(
            f"labels {', '.join(unknown[:5])} are not among the model's classes {', '.join(map(repr, labels))}"
        )
    return np.asarray(found)


def _numbers(values: list[Any]) -> np.ndarray:
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a regression update needs numeric labels: {exc}") from exc


def labelled_rows(
    frame: pd.DataFrame, *, columns: Sequence[str], labels: Sequence[Any], task: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(x, y, summary)`` from a window read with labels; ``ValueError`` says why the
    rows cannot be used (a column missing or masked as personal data, unknown classes)."""
    if "label" not in frame.columns:
        raise ValueError("the window was read without its labels")
    names = [str(c) for c in columns]
    labelled = frame[frame["label"].notna()]
    features = _features(labelled, names)
    masked = [c for c in names if features[c].astype(str).str.startswith(MASKED_PREFIX).any()]
    if masked:
        raise ValueError(
            f"columns {', '.join(masked[:10])} are masked as personal data in the prediction log; "
            "an update cannot train on them"
        )
    numeric = features.apply(pd.to_numeric, errors="coerce")
    complete = numeric.notna().all(axis=1).to_numpy()
    x = numeric[complete].to_numpy(dtype=np.float64)
    raw = labelled["label"][complete].tolist()
    y = _classes(raw, labels) if task == "classification" else _numbers(raw)
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + repr(y.tolist()).encode()).hexdigest()
    summary = {
        "logged_rows": len(frame),
        "labelled_rows": len(labelled),
        "rows": len(y),
        "incomplete_rows": int((~complete).sum()),
        "digest": digest,
    }
    return x, y, summary
