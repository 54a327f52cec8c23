"""REST API v1 of the monitoring stage, one module per part (``predictions``: prediction
records, ground truth, live metrics)."""
