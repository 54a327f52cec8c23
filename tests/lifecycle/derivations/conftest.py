"""Fixtures of the update stage's tests: real job workers (see ``tests/lifecycle/workers.py``)."""

import pytest

from tests.lifecycle.workers import broker, start_workers  # noqa: F401


@pytest.fixture
def workers(start_workers, live_services, s3_endpoint, settings):  # noqa: F811
    """Two derivation workers pointed at the test's MLflow server and S3 endpoint (the
    prediction log lives beside the artifacts there)."""
    return start_workers(
        ("deriver-1", "none", 0.1),
        ("deriver-2", "none", 0.1),
        extra_env={
            "MLFLOW_TRACKING_URI": live_services.url,
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint.url,
            "AWS_ENDPOINT_URL": s3_endpoint.url,
            "MODELGATE_ARTIFACT_ROOT": settings.MODELGATE_ARTIFACT_ROOT,
        },
    )
