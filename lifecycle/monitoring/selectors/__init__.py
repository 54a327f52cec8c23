"""Reads of the monitoring stage, one module per part (``predictions``: windows of the
prediction log and live metrics)."""

from lifecycle.monitoring.selectors.predictions import (  # noqa: F401
    live_metrics_windows,
    prediction_window,
)
