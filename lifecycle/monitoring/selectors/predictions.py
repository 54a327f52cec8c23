"""Windows of the prediction log, for drift jobs, live metrics and people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from lifecycle.monitoring.live_metrics import live_metrics, windows_of
from lifecycle.monitoring.store import prediction_store
from registry.errors import DependencyUnavailable, InvalidInput
from registry.models import RegisteredModel

MAX_WINDOWS = 500


def prediction_window(
    *,
    model: RegisteredModel,
    version: int | None,
    start: datetime,
    end: datetime,
    deployment_id: int | None = None,
    labels: bool = False,
) -> pd.DataFrame:
    """The logged predictions of ``model`` with ``start <= ts < end`` (UTC), one row per
    input row, oldest first.

    ``version`` None: every version (``0`` is the version of calls no replica answered);
    ``deployment_id`` narrows to one deployment (records sent through the API have none).

    Columns: ``request_id`` (str), ``row`` (the row's place in its call), ``deployment_id``
    (int or NA), ``version`` (int), ``mode`` (``primary``/``canary``/…, None for API
    records), ``source`` (``gateway`` or ``api``), ``ts`` (UTC timestamp), ``latency_ms``
    (float), ``status`` (int HTTP status), then one column per input feature, flattened
    from the MLflow scoring payload (``dataframe_split``, ``dataframe_records``,
    ``instances``, ``inputs``; unnamed tensor positions are ``"0"``, ``"1"``, …; a feature
    whose name is taken by a column above is ``input.<name>``), then ``prediction`` (the
    answer for the row: a number, a string, a list or an object) and, with ``labels``,
    ``label`` (the newest ground truth sent for the row, None where none came yet).
    Columns of the model's ``"pii"`` policy hold ``pii:<hash>`` instead of their values.
    A call without readable input has one row with NaN features.
    """
    if end <= start:
        raise InvalidInput("a window must end after it starts", details={"end": "not after start"})
    try:
        return prediction_store().window(
            model=model.name, start=start, end=end, version=version, deployment_id=deployment_id, labels=labels
        )
    except OSError as exc:
        raise DependencyUnavailable(
            "artifacts", f"the prediction log cannot be read now ({type(exc).__name__}); retry later"
        ) from exc


def _read(read: Any) -> Any:
    try:
        return read()
    except OSError as exc:
        raise DependencyUnavailable(
            "artifacts", f"the prediction log cannot be read now ({type(exc).__name__}); retry later"
        ) from exc


def prediction_request_ids(
    *, model: RegisteredModel, version: int | None, start: datetime, end: datetime, deployment_id: int | None = None
) -> set[str]:
    """The request ids logged for ``model`` with ``start <= ts < end`` (one column read)."""
    table = _read(
        lambda: prediction_store().prediction_rows(
            model=model.name,
            start=start,
            end=end,
            version=version,
            deployment_id=deployment_id,
            columns=["request_id"],
        )
    )
    return set(table.column("request_id").to_pylist())


def label_arrivals(*, model: RegisteredModel, since: datetime) -> pd.DataFrame:
    """The labels of ``model`` received after ``since``: ``request_id``, ``row``,
    ``received_at`` (UTC)."""
    return _read(lambda: prediction_store().label_arrivals(model=model.name, since=since)).to_pandas()


def live_metrics_windows(
    *, model: RegisteredModel, version: int | None, start: datetime, end: datetime, step: timedelta
) -> list[dict[str, Any]]:
    """Per version and per window of ``step`` from ``start``: rows logged, rows labelled and
    the task's metrics over the labelled rows (scikit-learn), oldest window first.

    Only windows that logged something are listed."""
    if step <= timedelta(0):
        raise InvalidInput("the window must be positive", details={"window": "not positive"})
    if (end - start) / step > MAX_WINDOWS:
        raise InvalidInput(
            f"at most {MAX_WINDOWS} windows at once; widen the window or shorten the range",
            details={"window": "too many windows"},
        )
    frame = prediction_window(model=model, version=version, start=start, end=end, labels=True)
    frame = frame[frame["version"] > 0]
    results = []
    origin = pd.Timestamp(start.astimezone(UTC))
    for number, rows in sorted(frame.groupby("version")) if not frame.empty else []:
        for index, part in sorted(windows_of(rows, start=origin, step=pd.Timedelta(step)).items()):
            window_start = start + index * step
            scored = live_metrics(model.task, part["prediction"].tolist(), part["label"].tolist())
            results.append(
                {
                    "version": int(number),
                    "start": window_start,
                    "end": min(window_start + step, end),
                    "rows": len(part),
                    **scored,
                }
            )
    results.sort(key=lambda r: (r["start"], r["version"]))
    return results
