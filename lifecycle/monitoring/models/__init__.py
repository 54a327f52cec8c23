"""Models of the monitoring stage, one module per part (``predictions``: the prediction
log's storage notes)."""

from lifecycle.monitoring.models import predictions  # noqa: F401
from lifecycle.monitoring.models.alerts import Alert, DriftResult, MonitorWindow, ReferenceProfile  # noqa: F401
