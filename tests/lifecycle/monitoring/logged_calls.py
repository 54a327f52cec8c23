"""Gateway calls as the prediction log receives them, for the log's storage tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from lifecycle.monitoring.prediction_log import LoggedCall


def logged_calls(
    *, model: str, start: datetime, count: int, prefix: str, step: timedelta = timedelta(seconds=1)
) -> list[LoggedCall]:
    """``count`` one-row calls to version 1 of ``model`` from ``start``, ``step`` apart,
    with request ids ``<prefix>-<i>``."""
    return [
        LoggedCall(
            request_id=f"{prefix}-{i}",
            model=model,
            version=1,
            ts=start + step * i,
            latency_ms=2.0,
            status=200,
            input=json.dumps({"dataframe_records": [{"amount": i}]}).encode(),
            output=b'{"predictions": [1]}',
            deployment_id=3,
        )
        for i in range(count)
    ]
