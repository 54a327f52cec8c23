"""REST API v1 for jobs, workers and pools."""
