"""Test environment, loaded before Django's settings (``-p tests.environment``).

Chooses the database the suite runs on: PostgreSQL on 127.0.0.1:5432 when it answers
(always in CI), SQLite otherwise. With ``MODELGATE_REQUIRE_SERVICES=1`` a missing
service is an error, never a reason to skip.
"""

from __future__ import annotations

import os
import socket
import tempfile

REQUIRE_SERVICES = os.environ.get("MODELGATE_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes"}
POSTGRES_URL = os.environ.get("MODELGATE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/modelgate")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


POSTGRES_AVAILABLE = port_open("127.0.0.1", 5432)

os.environ["MODELGATE_ENV"] = "test"
# One scratch directory per test process: xdist workers must not share SQLite files.
os.environ["MODELGATE_VAR_DIR"] = tempfile.mkdtemp(
    prefix=f"modelgate-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-"
)
if POSTGRES_AVAILABLE:
    os.environ["DATABASE_URL"] = POSTGRES_URL
elif REQUIRE_SERVICES:
    raise RuntimeError("MODELGATE_REQUIRE_SERVICES=1 but PostgreSQL does not answer on 127.0.0.1:5432")
else:
    os.environ.pop("DATABASE_URL", None)
# Credentials for the S3 endpoint the tests start; never real ones.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "modelgate-test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "modelgate-test-secret")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# A loaded CI box can make the test MLflow server answer 503 for a moment: retry briefly.
# Tests register model directories and dataset files from their temporary directories.
os.environ["MODELGATE_LOCAL_SOURCE_ROOTS"] = tempfile.gettempdir()
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "2"
os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "20"
