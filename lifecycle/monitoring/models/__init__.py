"""Models of the monitoring stage, one module per part (``predictions``: the prediction
log's storage notes and its upkeep lease)."""

from lifecycle.monitoring.models.alerts import Alert, DriftResult, MonitorWindow, ReferenceProfile  # noqa: F401
from lifecycle.monitoring.models.predictions import PredictionLogLease  # noqa: F401
