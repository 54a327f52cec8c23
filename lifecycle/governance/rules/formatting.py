"""Numbers, digests and times as the gate sentences and their ``data`` show them."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from lifecycle.governance.rules.context import MetricObservation


def short_digest(digest: str) -> str:
    """Abbreviate a dataset digest for sentences; ``data`` always carries the full one."""
    return digest if len(digest) <= 10 else digest[:6] + "…"


def on_dataset(digest: str | None) -> str:
    return f" on dataset {short_digest(digest)}" if digest is not None else " (no dataset recorded)"


def format_number(x: float, sig: int) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    magnitude = abs(x)
    if magnitude < 1 or magnitude >= 1e15:
        return f"{x:.{sig}g}"
    # Fixed point for ordinary magnitudes so 12345.6 never turns into 1.235e+04.
    decimals = max(sig - len(str(int(magnitude))), 0)
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_distinct(*values: float) -> list[str]:
    """Format numbers briefly, but never so briefly that two different values read the same.

    Otherwise a failing 0.79999 would be explained as "0.8 is below the threshold 0.8".
    """
    for sig in range(4, 18):
        texts = [format_number(v, sig) for v in values]
        clash = any(
            values[i] != values[j] and texts[i] == texts[j]
            for i in range(len(values))
            for j in range(i + 1, len(values))
        )
        if not clash:
            return texts
    return [repr(v) for v in values]


def format_fixed(value: float, reference: float, decimals: int = 1) -> str:
    """Fixed-point ``value`` (an age, a duration) with at least ``decimals`` places.

    Widened while it would print the same as a different ``reference``, so an age just
    over a 7-day limit reads 7.01 rather than a contradictory "7.0, older than 7".
    """
    for places in range(decimals, 10):
        text = f"{value:.{places}f}"
        if value == reference or text != f"{reference:.{places}f}":
            return text
    return repr(value)


def json_number(x: float | None) -> float | None:
    # JSON has no NaN/Infinity (and PostgreSQL jsonb rejects them), so they become null;
    # the detail sentence still spells the value out.
    if x is None or not math.isfinite(x):
        return None
    return x


def isoformat_or_none(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def observation_data(obs: MetricObservation, prefix: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}source": obs.source,
        f"{prefix}dataset_digest": obs.dataset_digest,
        f"{prefix}evaluated_at": isoformat_or_none(obs.evaluated_at),
    }
    if obs.ci_low is not None or obs.ci_high is not None:
        data[f"{prefix}ci_low"] = json_number(obs.ci_low)
        data[f"{prefix}ci_high"] = json_number(obs.ci_high)
    return data


def plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def with_notes(sentence: str, notes: list[str]) -> str:
    return f"{sentence} ({'; '.join(notes)})" if notes else sentence
