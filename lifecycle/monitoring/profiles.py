"""The reference a version's live traffic is compared with: one profile per feature.

Built once from the version's training or evaluation dataset and stored with the
dataset's digest. A numeric feature keeps its quantiles, bin edges at the reference's
deciles with the count in each bin (what PSI compares), its range (what "out of range"
means) and a bounded random sample of its values (what the Kolmogorov-Smirnov test
compares: a histogram alone cannot give KS its exact statistic). A categorical feature
keeps the frequency of each category. The model's prediction is profiled the same way.

Plain numpy and pandas, no Django: a profile is a dataclass with a JSON form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

NUMERIC = "numeric"
CATEGORICAL = "categorical"
FeatureKind: TypeAlias = Literal["numeric", "categorical"]

DEFAULT_BINS = 10
DEFAULT_SAMPLE_SIZE = 5_000
MAX_CATEGORIES = 50
# An integer column with this few distinct values is a label or a code, not a quantity:
# bins at its deciles would collapse, so it is profiled by category.
MAX_INTEGER_CATEGORIES = 20
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
OTHER = "__other__"
PREDICTION = "prediction"


@dataclass(frozen=True)
class NumericProfile:
    """A numeric feature of the reference: range, quantiles, decile bins and a sample."""

    name: str
    count: int
    missing: int
    minimum: float
    maximum: float
    quantiles: tuple[float, ...]
    # Inner bin edges, increasing; the outer bins are open (-inf, e0) and [e_last, inf),
    # so every live value lands in a bin. len(counts) == len(edges) + 1.
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    sample: tuple[float, ...]
    kind: FeatureKind = NUMERIC

    @property
    def missing_share(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "min": _finite(self.minimum),
            "max": _finite(self.maximum),
            "quantiles": dict(zip((str(q) for q in QUANTILES), self.quantiles, strict=True)),
            "edges": list(self.edges),
            "counts": list(self.counts),
            "sample": list(self.sample),
        }


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical feature of the reference: how often each category occurs."""

    name: str
    count: int
    missing: int
    frequencies: Mapping[str, int]
    kind: FeatureKind = CATEGORICAL

    @property
    def missing_share(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "missing": self.missing, "frequencies": dict(self.frequencies)}


FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Every feature of a reference dataset, and its prediction when one was profiled."""

    rows: int
    features: Mapping[str, FeatureProfile] = field(default_factory=dict)
    prediction: FeatureProfile | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "features": {name: profile.to_dict() for name, profile in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction is not None else None,
        }


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _is_categorical(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return True
    if pd.api.types.is_integer_dtype(series):
        return series.nunique(dropna=True) <= MAX_INTEGER_CATEGORIES
    return False


def _numeric_profile(name: str, values: np.ndarray, *, bins: int, sample_size: int, seed: int) -> NumericProfile:
    present = values[~np.isnan(values)]
    missing = int(values.size - present.size)
    if present.size == 0:
        return NumericProfile(name, 0, missing, float("nan"), float("nan"), (), (), (0,), ())
    inner = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    # Ties (a spike at one value) give repeated quantiles; a bin of zero width holds nothing.
    edges = np.unique(inner)
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    rng = np.random.default_rng(seed)
    sample = present if present.size <= sample_size else rng.choice(present, size=sample_size, replace=False)
    return NumericProfile(
        name=name,
        count=int(present.size),
        missing=missing,
        minimum=float(present.min()),
        maximum=float(present.max()),
        quantiles=tuple(float(q) for q in np.quantile(present, QUANTILES)),
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        sample=tuple(float(v) for v in np.sort(sample)),
    )


def category_labels(series: pd.Series) -> pd.Series:
    """A column's values as category names (``1.0`` and ``1`` both read ``"1"``); missing stays missing."""
    if pd.api.types.is_float_dtype(series):
        whole = series.dropna()
        if len(whole) and bool(np.all(np.mod(whole.to_numpy(), 1) == 0)):
            return series.map(lambda v: v if pd.isna(v) else str(int(v)))
    return series.map(lambda v: v if pd.isna(v) else str(v))


def _categorical_profile(name: str, series: pd.Series, *, max_categories: int) -> CategoricalProfile:
    labels = category_labels(series)
    present = labels.dropna()
    counts = present.value_counts()
    frequencies = {str(k): int(v) for k, v in counts.head(max_categories).items()}
    rest = int(counts.iloc[max_categories:].sum()) if len(counts) > max_categories else 0
    if rest:
        frequencies[OTHER] = rest
    return CategoricalProfile(
        name=name, count=int(present.size), missing=int(labels.size - present.size), frequencies=frequencies
    )


def feature_profile(
    name: str,
    series: pd.Series,
    *,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
    max_categories: int = MAX_CATEGORIES,
) -> FeatureProfile:
    """The profile of one column, numeric or categorical by its values."""
    if _is_categorical(series):
        return _categorical_profile(name, series, max_categories=max_categories)
    values = series.to_numpy(dtype=float, na_value=np.nan)
    return _numeric_profile(name, values, bins=bins, sample_size=sample_size, seed=seed)


def profile_build(
    frame: pd.DataFrame,
    *,
    features: Iterable[str] | None = None,
    prediction: pd.Series | None = None,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> ReferenceProfile:
    """The reference profile of ``frame``'s ``features`` (every column when not named),
    and of the model's ``prediction`` on those rows when given."""
    names = [str(c) for c in (frame.columns if features is None else features)]
    profiles = {
        name: feature_profile(name, frame[name], bins=bins, sample_size=sample_size, seed=seed) for name in names
    }
    predicted = (
        feature_profile(PREDICTION, prediction, bins=bins, sample_size=sample_size, seed=seed)
        if prediction is not None
        else None
    )
    return ReferenceProfile(rows=len(frame), features=profiles, prediction=predicted)


def _feature_from_dict(name: str, raw: Mapping[str, Any]) -> FeatureProfile:
    if raw["kind"] == CATEGORICAL:
        return CategoricalProfile(
            name=name,
            count=int(raw["count"]),
            missing=int(raw["missing"]),
            frequencies={str(k): int(v) for k, v in raw["frequencies"].items()},
        )
    return NumericProfile(
        name=name,
        count=int(raw["count"]),
        missing=int(raw["missing"]),
        minimum=float("nan") if raw["min"] is None else float(raw["min"]),
        maximum=float("nan") if raw["max"] is None else float(raw["max"]),
        quantiles=tuple(float(q) for q in raw["quantiles"].values()),
        edges=tuple(float(e) for e in raw["edges"]),
        counts=tuple(int(c) for c in raw["counts"]),
        sample=tuple(float(v) for v in raw["sample"]),
    )


def profile_from_dict(raw: Mapping[str, Any]) -> ReferenceProfile:
    """The profile ``ReferenceProfile.to_dict`` wrote."""
    prediction = raw.get("prediction")
    return ReferenceProfile(
        rows=int(raw["rows"]),
        features={name: _feature_from_dict(name, entry) for name, entry in raw["features"].items()},
        prediction=_feature_from_dict(PREDICTION, prediction) if prediction else None,
    )
