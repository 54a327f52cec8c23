"""Shared fixtures: real services started as subprocesses, and a small cast of users.

The cast: ``owner`` (developer in team fraud), ``approver`` and ``viewer`` in fraud,
``fraud_admin``, and ``outsider`` (admin of team ads, nothing in fraud).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import hypothesis
import psycopg
import pytest
import requests
from rest_framework.test import APIClient

from tests.environment import POSTGRES_AVAILABLE, REQUIRE_SERVICES, port_open

# Property tests check what the code computes, not how fast examples are generated: on a
# loaded 2-core CI box, Hypothesis' timing health check and deadline fail at random.
hypothesis.settings.register_profile(
    "modelgate", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("modelgate")

BIN = Path(sys.executable).parent
OUTPUT_DIR = Path(os.environ.get("MODELGATE_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output"))


def require_service(name: str, available: bool) -> None:
    """Skip without the service, or fail when the run requires every service."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (MODELGATE_REQUIRE_SERVICES=1) but is not available")
    pytest.skip(f"{name} is not available")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    check, *, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            if check():
                return
        except Exception:  # the service is still starting
            pass
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout}s\n{tail}")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    # Tests create a cast of users; the default PBKDF2 would cost ~0.3 s per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def worker_id_label(request: pytest.FixtureRequest) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@dataclass
class S3Endpoint:
    url: str
    process: subprocess.Popen

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")

    def bucket(self, name: str) -> str:
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        return name


@pytest.fixture(scope="session")
def s3_endpoint(service_logs: Path) -> Iterator[S3Endpoint]:
    """moto's S3 server on loopback: a real HTTP S3 endpoint."""
    executable = shutil.which("moto_server", path=str(BIN)) or shutil.which("moto_server")
    require_service("moto_server (S3 endpoint)", executable is not None)
    port = free_port()
    log = service_logs / "moto.log"
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="moto S3 server", process=process, log=log)
        yield S3Endpoint(url, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class MlflowServer:
    url: str
    artifact_bucket: str
    process: subprocess.Popen


def _postgres_admin() -> psycopg.Connection:
    return psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)


@pytest.fixture(scope="session")
def mlflow_server(s3_endpoint: S3Endpoint, service_logs: Path, worker_id_label: str) -> Iterator[MlflowServer]:
    """A real ``mlflow server``: backend store in PostgreSQL, artifacts on the S3 endpoint."""
    require_service("PostgreSQL", POSTGRES_AVAILABLE)
    database = f"mlflow_test_{worker_id_label}_{uuid.uuid4().hex[:8]}"
    with _postgres_admin() as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    bucket = s3_endpoint.bucket("mlflow-artifacts")
    port = free_port()
    log = service_logs / "mlflow.log"
    env = {**os.environ, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint.url}
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
            "--default-artifact-root",
            f"s3://{bucket}/",
            "--no-serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(service_logs),
    )
    url = f"http://127.0.0.1:{port}"
    # The client side (mlflow.sklearn.log_model in tests) writes artifacts to S3 itself.
    os.environ["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint.url
    try:
        wait_until(
            lambda: requests.get(f"{url}/health", timeout=2).ok,
            timeout=300,
            what="mlflow server",
            process=process,
            log=log,
        )
        yield MlflowServer(url, bucket, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        with _postgres_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def live_services(settings, s3_endpoint: S3Endpoint, mlflow_server: MlflowServer) -> Iterator[MlflowServer]:
    """Point ModelGate at the real MLflow server and S3 endpoint for one test."""
    from registry import storage

    bucket = s3_endpoint.bucket("modelgate")
    settings.MLFLOW_TRACKING_URI = mlflow_server.url
    settings.AWS_ENDPOINT_URL = s3_endpoint.url
    settings.MODELGATE_ARTIFACT_ROOT = f"s3://{bucket}/artifacts"
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    storage._s3_client.cache_clear()
    yield mlflow_server
    storage._s3_client.cache_clear()
    # The MLflow server lives for the session while each test's database is rolled
    # back: forget what the test registered so numbering starts at 1 again.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.url)
    for registered in client.search_registered_models():
        client.delete_registered_model(registered.name)


@dataclass
class PrivateRedis:
    """A ``redis-server`` owned by one test, on a free port: the test may stop and
    restart it without touching the shared Redis the other test workers are using."""

    port: int
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        require_service("redis-server (private instance)", executable is not None)
        self.process = subprocess.Popen(
            [executable, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: port_open("127.0.0.1", self.port),
            timeout=20,
            what=f"private redis-server on {self.port}",
            process=self.process,
            log=self.log,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(port=free_port(), log=tmp_path / "private-redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- the cast ---------------------------------------------------------------------


@dataclass
class Actor:
    user: object
    token: str
    client: APIClient


def _actor(username: str, memberships: dict[str, str]) -> Actor:
    from django.contrib.auth import get_user_model

    from registry.services import api_token_issue, membership_set, team_ensure

    user = get_user_model().objects.create_user(username=username, password="pw-" + username + "-123!")
    for team_name, role in memberships.items():
        membership_set(user=user, team=team_ensure(name=team_name), role=role)
    _, token = api_token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return Actor(user, token, client)


@pytest.fixture
def owner(db) -> Actor:
    return _actor("owner", {"fraud": "developer"})


@pytest.fixture
def approver(db) -> Actor:
    return _actor("approver", {"fraud": "approver"})


@pytest.fixture
def viewer(db) -> Actor:
    return _actor("viewer", {"fraud": "viewer"})


@pytest.fixture
def fraud_admin(db) -> Actor:
    return _actor("fraud-admin", {"fraud": "admin"})


@pytest.fixture
def outsider(db) -> Actor:
    return _actor("outsider", {"ads": "admin"})


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def fraud_model(owner: Actor):
    from registry.services import model_create, team_ensure

    return model_create(
        actor=owner.user,
        name="fraud-detector",
        team=team_ensure(name="fraud"),
        description="flags fraudulent card payments",
        primary_metric="f1",
        policy={"rules": [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8}]},
        tags={"domain": "payments"},
    )


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR
