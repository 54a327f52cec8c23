"""Fixtures of the chaos suite: brokers, MLflow and S3 servers the tests own (so they may
kill and restart them), job workers started and killed at will, and the seed that makes
a run's random moments repeatable.

Nothing here stops a shared service: every server a test stops is a private instance on
a free loopback port, started by that test.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.conftest import BIN, _postgres_admin, free_port, require_service, wait_until
from tests.environment import POSTGRES_AVAILABLE, port_open
from tests.lifecycle.workers import WorkerProcess, _use_broker, worker_spawn, workers_wait_online

ROOT = Path(__file__).resolve().parents[2]
# Short enough that a killed worker's job is retried within seconds, long enough that a
# worker starved of CPU on a loaded 2-core box still renews its lease in time.
LEASE_SECONDS = 6


def chaos_number(name: str, default: int) -> int:
    """A size of the suite, from ``MODELGATE_CHAOS_<NAME>`` (the long variant sets them)."""
    return int(os.environ.get(f"MODELGATE_CHAOS_{name}", default))


@pytest.fixture
def chaos_rng(request: pytest.FixtureRequest) -> random.Random:
    """The random source of one test; its seed is printed so a failing run can be replayed
    with ``MODELGATE_CHAOS_SEED``."""
    seed = int(os.environ.get("MODELGATE_CHAOS_SEED") or random.SystemRandom().randrange(1, 2**31))
    print(f"\n[chaos] {request.node.name}: seed {seed} (MODELGATE_CHAOS_SEED={seed} replays it)")
    return random.Random(seed)


# --- brokers the test owns ----------------------------------------------------------


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node of the test's own (its own node name, ports and data directory),
    which the test may stop and start again; durable queues survive the restart."""

    base: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"modelgate-chaos-{uuid.uuid4().hex[:8]}@localhost")
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def start(self) -> None:
        executable = shutil.which("rabbitmq-server")
        require_service("rabbitmq-server (private node)", executable is not None)
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:
            # The server script drops to the rabbitmq user, which must own its directory.
            shutil.chown(self.base, "rabbitmq", "rabbitmq")
            for path in self.base.rglob("*"):
                shutil.chown(path, "rabbitmq", "rabbitmq")
        env = {
            **os.environ,
            "HOME": str(self.base),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
        }
        options: dict = {}
        if os.geteuid() == 0:
            # The packaged wrapper would switch users through ``su``, out of this process
            # group; start the server script as its user directly, so that stopping the
            # group stops the node.
            executable = str(Path(os.path.realpath(executable)).parent / "rabbitmq-server")
            options = {"user": "rabbitmq", "group": "rabbitmq"}
        self.process = subprocess.Popen(
            [executable],
            env=env,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **options,
        )
        wait_until(
            lambda: port_open("127.0.0.1", self.port),
            timeout=90,
            what=f"private RabbitMQ node on {self.port}",
            process=self.process,
            log=self.log,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)  # the node shuts down cleanly on SIGTERM
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.process.poll()  # reaps the script, so that only live processes count
            if not _group_alive(group):
                break
            time.sleep(0.3)
        if _group_alive(group):
            _signal_group(group, signal.SIGKILL)
        self.process.wait(timeout=30)
        wait_until(lambda: not port_open("127.0.0.1", self.port), timeout=30, what="the node's port to close")
        self.process = None


@pytest.fixture
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    # Not under pytest's temporary directory: the server's user must reach its data,
    # and pytest's directories are private to the user running the tests.
    base = Path(tempfile.mkdtemp(prefix="modelgate-chaos-rabbitmq-"))
    base.chmod(0o755)
    node = PrivateRabbitMQ(base=base)
    node.start()
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def chaos_broker(request: pytest.FixtureRequest) -> Iterator[tuple[str, object]]:
    """``(url, server)`` of the broker named by the test's parameter: a private Redis
    (``redis``) or a private RabbitMQ node (``rabbitmq``)."""
    require_service("PostgreSQL", POSTGRES_AVAILABLE and connection.vendor == "postgresql")
    server = request.getfixturevalue("private_redis" if request.param == "redis" else "private_rabbitmq")
    from config.celery import app as celery_app

    previous = celery_app.conf.broker_url
    _use_broker(server.url)
    yield server.url, server
    _use_broker(previous)


# --- job workers ----------------------------------------------------------------------


class WorkerFleet:
    """Job workers on the broker under test; started without waiting, killed at will.
    One slot each by default, so that a kill hits the one job it was aimed at."""

    def __init__(self, broker_url: str, tmp_path: Path, extra_env: dict[str, str]) -> None:
        self.broker_url = broker_url
        self.tmp_path = tmp_path
        self.extra_env = extra_env
        self.workers: list[WorkerProcess] = []
        self.serial = 0

    def start(self, *, slots: int = 1) -> WorkerProcess:
        self.serial += 1
        worker = worker_spawn(
            name=f"chaos-{self.serial}",
            broker_url=self.broker_url,
            tmp_path=self.tmp_path,
            lease_seconds=LEASE_SECONDS,
            slots=slots,
            extra_env=self.extra_env,
        )
        self.workers.append(worker)
        return worker

    def wait_online(self, *workers: WorkerProcess, timeout: float = 120) -> None:
        workers_wait_online(list(workers), timeout)

    def by_name(self, name: str) -> WorkerProcess | None:
        return next((w for w in self.workers if w.name == name), None)

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive]

    def stop_all(self) -> None:
        for worker in self.alive():
            os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill_hard()


@pytest.fixture
def fleet_settings(settings) -> None:
    """Short leases and timeouts, so that a killed worker's job is retried in seconds."""
    settings.MODELGATE_JOB_LEASE_SECONDS = LEASE_SECONDS
    settings.MODELGATE_WORKER_HEARTBEAT_TIMEOUT_SECONDS = LEASE_SECONDS
    settings.MODELGATE_JOB_DISPATCH_TIMEOUT_SECONDS = LEASE_SECONDS
    settings.MODELGATE_SCHEDULER_STRATEGY = "least_loaded"


# --- MLflow and S3 servers the test owns ------------------------------------------------


@dataclass
class PrivateS3:
    """moto's S3 server on a port of its own. moto keeps objects in memory, so a restart
    comes back empty: ``objects`` remembers what the test put, and ``start`` puts it back
    as a real store would still have it."""

    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.objects[(bucket, key)] = body
        self._put(bucket, key, body)

    def _put(self, bucket: str, key: str, body: bytes) -> None:
        client = self.client()
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        client.put_object(Bucket=bucket, Key=key, Body=body)

    def start(self) -> None:
        executable = shutil.which("moto_server", path=str(BIN)) or shutil.which("moto_server")
        require_service("moto_server (S3 endpoint)", executable is not None)
        self.process = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(self.port)], stdout=self.log.open("a"), stderr=subprocess.STDOUT
        )
        wait_until(
            lambda: port_open("127.0.0.1", self.port), timeout=30, what="moto", process=self.process, log=self.log
        )
        for (bucket, key), body in self.objects.items():
            self._put(bucket, key, body)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class PrivateMlflow:
    """``mlflow server`` on a port and a PostgreSQL database of its own; its registry
    survives a restart (the database stays)."""

    log: Path
    s3: PrivateS3
    database: str = field(default_factory=lambda: f"mlflow_chaos_{uuid.uuid4().hex[:10]}")
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "MLFLOW_S3_ENDPOINT_URL": self.s3.url}
        self.process = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.database}",
                "--default-artifact-root",
                "s3://mlflow-artifacts/",
                "--no-serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(self.log.parent),
            start_new_session=True,
        )
        wait_until(
            lambda: requests.get(f"{self.url}/health", timeout=2).ok,
            timeout=300,
            what="private mlflow server",
            process=self.process,
            log=self.log,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None
        wait_until(lambda: not port_open("127.0.0.1", self.port), timeout=20, what="mlflow to stop")


@pytest.fixture
def private_dependencies(settings, tmp_path: Path) -> Iterator[tuple[PrivateMlflow, PrivateS3]]:
    """ModelGate pointed at an MLflow server and an S3 endpoint that this test owns."""
    require_service("PostgreSQL", POSTGRES_AVAILABLE)
    from registry import storage

    s3 = PrivateS3(log=tmp_path / "moto.log")
    s3.start()
    mlflow_server = PrivateMlflow(log=tmp_path / "mlflow.log", s3=s3)
    with _postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{mlflow_server.database}"')
    previous_endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    os.environ["MLFLOW_S3_ENDPOINT_URL"] = s3.url
    try:
        mlflow_server.start()
        settings.MLFLOW_TRACKING_URI = mlflow_server.url
        settings.AWS_ENDPOINT_URL = s3.url
        settings.MODELGATE_ARTIFACT_ROOT = "s3://modelgate/artifacts"
        storage._s3_client.cache_clear()
        yield mlflow_server, s3
    finally:
        storage._s3_client.cache_clear()
        mlflow_server.stop()
        s3.stop()
        if previous_endpoint is None:
            os.environ.pop("MLFLOW_S3_ENDPOINT_URL", None)
        else:
            os.environ["MLFLOW_S3_ENDPOINT_URL"] = previous_endpoint
        with _postgres_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{mlflow_server.database}" WITH (FORCE)')
