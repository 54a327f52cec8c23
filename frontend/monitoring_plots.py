"""The monitoring page's plots, drawn on the server with matplotlib as inline SVG: drift
of each feature over the windows, live metrics and error rate over the windows, and a
feature's reference distribution beside its live one.

Plain Python over lists of numbers (no ORM), so each plot is tested without a database.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

MAX_LINES = 8
SIZE = (8.0, 3.0)


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    # The XML prolog and DOCTYPE do not belong inside an HTML page.
    return text[text.index("<svg") :]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def drift_plot(
    starts: Sequence[datetime],
    series: Mapping[str, Sequence[float | None]],
    *,
    statistic: str,
    threshold: float | None,
) -> str:
    """One line per feature (the ``MAX_LINES`` that reached the highest values), the
    threshold as a dashed line."""
    figure, axes = plt.subplots(figsize=SIZE)
    ranked = sorted(series, key=lambda name: max((v for v in series[name] if _finite(v)), default=-1), reverse=True)
    for name in ranked[:MAX_LINES]:
        points = [(s, v) for s, v in zip(starts, series[name], strict=True) if _finite(v)]
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    if threshold is not None:
        axes.axhline(threshold, color="#c0392b", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    axes.set_ylabel(statistic)
    axes.set_xlabel("window start (UTC)")
    axes.set_title(f"{statistic} per window (the {min(len(ranked), MAX_LINES)} features that drifted most)")
    if ranked:
        axes.legend(fontsize=7, loc="upper left", ncol=3)
    figure.autofmt_xdate()
    return _svg(figure)


def metrics_plot(starts: Sequence[datetime], series: Mapping[str, Sequence[float | None]]) -> str:
    """Live metrics and the error rate over the windows, all on a 0-1 scale."""
    figure, axes = plt.subplots(figsize=SIZE)
    for name, values in series.items():
        points = [(s, v) for s, v in zip(starts, values, strict=True) if _finite(v)]
        if points:
            axes.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    axes.set_title("live metrics (labelled rows) and error rate per window")
    axes.set_xlabel("window start (UTC)")
    if series:
        axes.legend(fontsize=7, loc="lower left", ncol=4)
    figure.autofmt_xdate()
    return _svg(figure)


def bin_labels(edges: Sequence[float]) -> list[str]:
    """``< e0``, ``e0 – e1``, …, ``≥ e_last``: the reference's bins in words."""
    if not edges:
        return ["all"]
    labels = [f"< {edges[0]:.3g}"]
    labels += [f"{a:.3g} – {b:.3g}" for a, b in itertools.pairwise(edges)]
    labels.append(f"≥ {edges[-1]:.3g}")
    return labels


def distribution_plot(labels: Sequence[str], reference: Sequence[float], live: Sequence[float], *, feature: str) -> str:
    """Side-by-side bars of the share of rows in each bin or category."""
    figure, axes = plt.subplots(figsize=SIZE)
    total_ref, total_live = sum(reference) or 1, sum(live) or 1
    positions = range(len(labels))
    width = 0.4
    axes.bar([p - width / 2 for p in positions], [c / total_ref for c in reference], width, label="reference")
    axes.bar([p + width / 2 for p in positions], [c / total_live for c in live], width, label="live (latest window)")
    axes.set_xticks(list(positions), list(labels), rotation=30, ha="right", fontsize=7)
    axes.set_ylabel("share of rows")
    axes.set_title(f"{feature}: reference vs live")
    axes.legend(fontsize=7)
    return _svg(figure)
