"""Reading datasets and describing them: content digest and a per-column profile.

``builtin:<name>`` names a dataset that scikit-learn ships inside its package (no
download); other URIs are CSV or Parquet files on S3 or a local path.
"""

from __future__ import annotations

import hashlib
import io
import math
from typing import Any

import pandas as pd

from registry import storage
from registry.errors import InvalidInput, NotFound

BUILTIN_DATASETS = {
    "breast_cancer": "load_breast_cancer",
    "iris": "load_iris",
    "wine": "load_wine",
    "digits": "load_digits",
    "diabetes": "load_diabetes",
}
BUILTIN_PREFIX = "builtin:"


def format_for(uri: str, declared: str | None) -> str:
    """The dataset format, declared or inferred from the URI."""
    if uri.startswith(BUILTIN_PREFIX):
        return "builtin"
    if declared:
        return declared
    lowered = uri.lower()
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    raise InvalidInput(
        f"cannot tell the format of {uri!r}; give format csv or parquet", details={"format": "required for this uri"}
    )


def builtin_frame(name: str) -> pd.DataFrame:
    loader_name = BUILTIN_DATASETS.get(name)
    if loader_name is None:
        raise InvalidInput(
            f"unknown builtin dataset {name!r}; expected one of {', '.join(sorted(BUILTIN_DATASETS))}",
            details={"uri": f"unknown builtin dataset {name!r}"},
        )
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader_name)(as_frame=True)
    return bunch.frame


def _raw_bytes(uri: str) -> bytes:
    # Checked before reading: any other scheme would be fetched through MLflow.
    if not storage.is_s3(uri) and storage.local_path(uri) is None:
        raise InvalidInput(
            f"uri {uri!r} must be s3://…, a path on the server or builtin:<name>",
            details={"uri": "unsupported scheme"},
        )
    try:
        manifest = storage.artifact_manifest(uri)
    except NotFound as exc:
        raise InvalidInput(f"no dataset file at {uri!r}", details={"uri": "no file there"}) from exc
    data = storage.read_file(uri) if list(manifest) == [""] else None
    if data is None:
        raise InvalidInput(f"{uri!r} is not a single CSV or Parquet file", details={"uri": "not a file"})
    return data


def dataset_load(uri: str, fmt: str) -> tuple[pd.DataFrame, bytes]:
    """The dataset as a frame and the canonical bytes its digest is computed over."""
    if uri.startswith(BUILTIN_PREFIX):
        frame = builtin_frame(uri[len(BUILTIN_PREFIX) :])
        return frame, frame.to_csv(index=False).encode()
    data = _raw_bytes(uri)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data), compression="gzip" if uri.endswith(".gz") else None)
    except Exception as exc:  # pandas raises many types for a malformed file
        raise InvalidInput(f"{uri!r} is not a readable {fmt} file: {exc}", details={"uri": f"not {fmt}"}) from exc
    return frame, data


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def frame_profile(frame: pd.DataFrame, *, max_categories: int = 20) -> dict[str, Any]:
    """Per-column type, count, missing, and numeric summary or category frequencies.

    Kept with the dataset as the reference that drift is later measured against.
    """
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        entry: dict[str, Any] = {
            "dtype": str(series.dtype),
            "count": int(series.notna().sum()),
            "missing": int(series.isna().sum()),
        }
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            described = series.astype(float)
            quantiles = described.quantile([0.0, 0.25, 0.5, 0.75, 1.0]).tolist()
            entry.update(
                kind="numeric",
                mean=_clean(float(described.mean())),
                std=_clean(float(described.std())),
                quantiles=[_clean(float(q)) for q in quantiles],
            )
        else:
            counts = series.astype(str).value_counts().head(max_categories)
            entry.update(kind="categorical", frequencies={str(k): int(v) for k, v in counts.items()})
        columns[str(name)] = entry
    return {"rows": len(frame), "columns": columns}


def dataset_split(
    frame: pd.DataFrame, target: str, *, seed: int, test_size: float, stratify: bool
) -> tuple[list[int], list[int]]:
    """Deterministic train/test row positions for a seed (stratified for classifiers)."""
    from sklearn.model_selection import train_test_split

    positions = list(range(len(frame)))
    labels = frame[target] if stratify else None
    try:
        train, test = train_test_split(positions, test_size=test_size, random_state=seed, stratify=labels)
    except ValueError:
        # A class too rare to stratify: fall back to a plain seeded split.
        train, test = train_test_split(positions, test_size=test_size, random_state=seed)
    return sorted(train), sorted(test)


def split_digest(positions: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, positions)).encode()).hexdigest()
