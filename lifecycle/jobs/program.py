"""What a job program needs from the runner's environment: its parameters, a place for
its result, progress reports, and the dataset it works on (read through the registry's
dataset code, so a dataset means the same bytes and digest everywhere).

Used by the built-in trainer and evaluator; a user's own ``command`` job may use it too.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd


def setup() -> None:
    """Configure Django's settings (for the artifact store and MLflow locations)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def params() -> dict[str, Any]:
    return json.loads(os.environ.get("MODELGATE_PARAMS") or "{}")


def result_write(result: dict[str, Any]) -> None:
    path = os.environ.get("MODELGATE_RESULT_PATH")
    if path:
        with open(path, "w") as handle:
            json.dump(result, handle, default=str)


def progress(fraction: float) -> None:
    print(f"MODELGATE_PROGRESS {max(0.0, min(fraction, 1.0)):.3f}", flush=True)


def dataset_frame(dataset: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The dataset's frame and the digest of the bytes read now (which may differ from
    the digest recorded at registration when the file changed since)."""
    from registry.datasets import content_digest, dataset_load

    frame, data = dataset_load(dataset["uri"], dataset.get("format") or "csv")
    return frame, content_digest(data)


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise SystemExit(f"the dataset has no target column {target!r}; columns: {', '.join(map(str, frame.columns))}")
    return frame.drop(columns=[target]), frame[target]
