"""Drift of one window of live traffic against the reference profile, per feature.

Numeric features: the population stability index (PSI) over the reference's decile bins
and the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``) against the
reference sample. Categorical features: PSI over the categories, Pearson's chi-square
test of the two samples' counts (``scipy.stats.chi2_contingency``) and the Jensen-Shannon
distance (``scipy.spatial.distance.jensenshannon``, base 2, so it lies in [0, 1]). For
every feature: the share of missing values and of values out of the reference's range
(below its minimum, above its maximum, or a category it never had). The prediction column
is one more feature. Schema violations: a feature the window lacks, a column the
reference never had, values of the wrong type.

Plain numpy, pandas and scipy, no Django. Binning is one ``searchsorted`` and one
``bincount`` per column, so a million rows by thirty features takes seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from lifecycle.monitoring.profiles import (
    OTHER,
    PREDICTION,
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
    category_labels,
)

# A bin empty on one side would make PSI infinite; proportions are floored here first,
# the usual convention (and Evidently's).
PSI_EPSILON = 1e-4
UNSEEN = "__unseen__"
# scipy's own threshold between its exact and asymptotic KS p-values (``MAX_AUTO_N``).
KS_SCIPY_MAX_ROWS = 10_000

# Columns of the prediction log that describe the call, not the model's input.
LOG_COLUMNS = frozenset(
    {
        "request_id",
        "row",
        "deployment_id",
        "version",
        "mode",
        "source",
        "ts",
        "latency_ms",
        "status",
        PREDICTION,
        "label",
        "error",
    }
)

STATISTICS: tuple[str, ...] = (
    "psi",
    "ks",
    "ks_pvalue",
    "chi2",
    "chi2_pvalue",
    "js",
    "missing_share",
    "out_of_range_share",
)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature in one window: its statistics (``None`` where one does not apply) and
    its live counts in the reference's bins or categories, for plotting."""

    feature: str
    kind: str
    rows: int
    missing_share: float
    out_of_range_share: float
    psi: float | None = None
    ks: float | None = None
    ks_pvalue: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    js: float | None = None
    live_counts: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()

    def statistic(self, name: str) -> float | None:
        value = getattr(self, name)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "rows": self.rows,
            **{name: _json_float(self.statistic(name)) for name in STATISTICS},
            "live_counts": list(self.live_counts),
            "labels": list(self.labels),
        }


@dataclass(frozen=True)
class SchemaViolation:
    """A column the window lacks (``missing``), one the reference never had (``unknown``),
    or a numeric feature with values that are not numbers (``wrong_type``, with their share)."""

    feature: str
    problem: str
    share: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "problem": self.problem, "share": self.share}


@dataclass(frozen=True)
class WindowDrift:
    """Every feature of one window against the reference."""

    rows: int
    features: Mapping[str, FeatureDrift] = field(default_factory=dict)
    prediction: FeatureDrift | None = None
    schema: tuple[SchemaViolation, ...] = ()

    def statistics(self) -> dict[str, dict[str, float | None]]:
        """``{feature: {statistic: value}}``, the prediction under ``"prediction"``."""
        out = {name: {s: result.statistic(s) for s in STATISTICS} for name, result in self.features.items()}
        if self.prediction is not None:
            out[PREDICTION] = {s: self.prediction.statistic(s) for s in STATISTICS}
        return out


def _json_float(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def psi(expected: np.ndarray, actual: np.ndarray, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two count vectors over the same bins:
    ``sum((a - e) * ln(a / e))`` over bin proportions floored at ``epsilon``."""
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    if expected.sum() == 0 or actual.sum() == 0:
        return float("nan")
    e = np.clip(expected / expected.sum(), epsilon, None)
    a = np.clip(actual / actual.sum(), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_two_sample(reference_sorted: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """The two-sample Kolmogorov-Smirnov statistic and p-value, as ``scipy.stats.ks_2samp``
    gives them (``method="auto"``).

    Up to ``KS_SCIPY_MAX_ROWS`` live rows this is ``ks_2samp`` itself. Beyond, scipy would
    search every pooled value in both samples; the supremum of ``|F_live - F_ref|`` is
    reached at a reference point (at it or just before it), since ``F_ref`` is flat between
    two of them, so one sort of the live values and two searches of the small reference
    sample give the same statistic, and scipy's own asymptotic distribution
    (``kstwo``, which ``ks_2samp`` uses at that size too) gives the p-value.
    """
    if live.size <= KS_SCIPY_MAX_ROWS:
        result = stats.ks_2samp(reference_sorted, live)
        return float(result.statistic), float(result.pvalue)
    ordered = np.sort(live)
    n, m = ordered.size, reference_sorted.size
    live_at = np.searchsorted(ordered, reference_sorted, side="right") / n
    live_before = np.searchsorted(ordered, reference_sorted, side="left") / n
    ref_at = np.searchsorted(reference_sorted, reference_sorted, side="right") / m
    ref_before = np.searchsorted(reference_sorted, reference_sorted, side="left") / m
    d = float(max(np.max(np.abs(live_at - ref_at)), np.max(np.abs(live_before - ref_before))))
    big, small = max(n, m), min(n, m)
    pvalue = float(np.clip(stats.kstwo.sf(d, np.round(big * small / (big + small))), 0.0, 1.0))
    return d, pvalue


def _numeric_drift(profile: NumericProfile, values: np.ndarray) -> FeatureDrift:
    present_mask = ~np.isnan(values)
    present = values[present_mask]
    rows = int(values.size)
    missing_share = 1.0 - present.size / rows if rows else 0.0
    if present.size == 0 or profile.count == 0:
        return FeatureDrift(profile.name, profile.kind, rows, missing_share, 0.0)
    edges = np.asarray(profile.edges)
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    out_of_range = np.count_nonzero((present < profile.minimum) | (present > profile.maximum))
    ks, ks_pvalue = ks_two_sample(np.asarray(profile.sample), present)
    return FeatureDrift(
        feature=profile.name,
        kind=profile.kind,
        rows=rows,
        missing_share=missing_share,
        out_of_range_share=out_of_range / present.size,
        psi=psi(np.asarray(profile.counts), counts),
        ks=ks,
        ks_pvalue=ks_pvalue,
        live_counts=tuple(int(c) for c in counts),
    )


def _categorical_drift(profile: CategoricalProfile, series: pd.Series) -> FeatureDrift:
    labels = category_labels(series)
    present = labels.dropna()
    rows = int(labels.size)
    missing_share = 1.0 - present.size / rows if rows else 0.0
    known = list(profile.frequencies)
    live = present.value_counts()
    live_known = np.array([int(live.get(k, 0)) for k in known if k != OTHER])
    unseen = int(present.size - live_known.sum())
    # Categories the reference folded into OTHER are neither known nor unseen; with OTHER
    # absent, anything else is new.
    reference = np.array([profile.frequencies[k] for k in known if k != OTHER], dtype=float)
    names = [k for k in known if k != OTHER]
    if OTHER in profile.frequencies:
        reference = np.append(reference, profile.frequencies[OTHER])
        live_known = np.append(live_known, unseen)
        names.append(OTHER)
        unseen_share = 0.0
    else:
        reference = np.append(reference, 0.0)
        live_known = np.append(live_known, unseen)
        names.append(UNSEEN)
        unseen_share = unseen / present.size if present.size else 0.0
    if present.size == 0 or reference.sum() == 0:
        return FeatureDrift(profile.name, profile.kind, rows, missing_share, unseen_share)
    table = np.vstack([reference, live_known])
    # A category absent from both samples adds nothing and would divide by zero.
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] > 1:
        chi2, pvalue, _, _ = stats.chi2_contingency(table, correction=False)
    else:
        chi2, pvalue = 0.0, 1.0
    return FeatureDrift(
        feature=profile.name,
        kind=profile.kind,
        rows=rows,
        missing_share=missing_share,
        out_of_range_share=unseen_share,
        psi=psi(reference, live_known),
        chi2=float(chi2),
        chi2_pvalue=float(pvalue),
        js=float(jensenshannon(reference / reference.sum(), live_known / live_known.sum(), base=2)),
        live_counts=tuple(int(c) for c in live_known),
        labels=tuple(names),
    )


def feature_drift(profile: FeatureProfile, series: pd.Series) -> FeatureDrift:
    """One feature's drift in a window: ``series`` against its reference ``profile``."""
    if isinstance(profile, CategoricalProfile):
        return _categorical_drift(profile, series)
    return _numeric_drift(profile, series.to_numpy(dtype=float, na_value=np.nan))


def _as_numbers(series: pd.Series) -> tuple[pd.Series, float]:
    """The column as floats, and the share of present values that were not numbers."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series, 0.0
    coerced = pd.to_numeric(series, errors="coerce")
    present = int(series.notna().sum())
    bad = int((coerced.isna() & series.notna()).sum())
    return coerced, (bad / present if present else 0.0)


def window_drift(
    profile: ReferenceProfile,
    frame: pd.DataFrame,
    *,
    prediction_column: str = PREDICTION,
    ignore: Iterable[str] = LOG_COLUMNS,
) -> WindowDrift:
    """Every feature of ``frame`` (one window of the prediction log) against ``profile``."""
    ignored = set(ignore)
    schema: list[SchemaViolation] = []
    results: dict[str, FeatureDrift] = {}
    for name, feature in profile.features.items():
        if name not in frame.columns:
            schema.append(SchemaViolation(name, "missing"))
            continue
        series = frame[name]
        if isinstance(feature, NumericProfile):
            series, wrong = _as_numbers(series)
            if wrong:
                schema.append(SchemaViolation(name, "wrong_type", wrong))
        results[name] = feature_drift(feature, series)
    for column in frame.columns:
        if column not in profile.features and column not in ignored and column != prediction_column:
            schema.append(SchemaViolation(str(column), "unknown"))
    prediction = None
    if profile.prediction is not None and prediction_column in frame.columns:
        series = frame[prediction_column]
        if isinstance(profile.prediction, NumericProfile):
            series, _ = _as_numbers(series)
        prediction = feature_drift(profile.prediction, series)
    return WindowDrift(rows=len(frame), features=results, prediction=prediction, schema=tuple(schema))
