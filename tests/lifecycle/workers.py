"""Real Celery job workers for tests: each a ``manage.py job_worker`` process with its own
declared inventory, on a real broker, against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from config.celery import app as celery_app
from lifecycle.jobs.choices import WorkerState
from lifecycle.jobs.models import Job, Worker
from lifecycle.jobs.placement import schedule_pass
from lifecycle.jobs.services import jobs_reap
from tests.conftest import require_service
from tests.environment import POSTGRES_AVAILABLE, port_open

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {
    "redis": ("redis://127.0.0.1:6379/7", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}


def _use_broker(url: str) -> None:
    """Point this process's Celery app (which dispatches jobs) at the broker under test."""
    celery_app.conf.broker_url = url
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill_hard(self) -> None:
        """``kill -9`` of the worker and everything it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def worker_spawn(
    *,
    name: str,
    broker_url: str,
    tmp_path: Path,
    lease_seconds: float,
    gpus: str = "none",
    slots: int = 2,
    cost_per_hour: float | None = None,
    extra_env: dict[str, str] | None = None,
) -> WorkerProcess:
    """A ``manage.py job_worker`` process against the test database, in a process group
    of its own (so a test may kill it with all it started), logging to ``<name>.log``."""
    database = connection.settings_dict
    log = tmp_path / f"{name}.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "CELERY_BROKER_URL": broker_url,
        "MODELGATE_VAR_DIR": str(tmp_path / "var"),
        "MODELGATE_JOB_DIR": str(tmp_path / "jobs"),
        "MODELGATE_JOB_LEASE_SECONDS": str(lease_seconds),
        "MODELGATE_WORKER_HEARTBEAT_SECONDS": "0.5",
        "MODELGATE_JOB_CANCEL_GRACE_SECONDS": "2",
        **(extra_env or {}),
    }
    command = [sys.executable, "manage.py", "job_worker", "--name", name, "--gpus", gpus, "--slots", str(slots)]
    if cost_per_hour is not None:
        command += ["--cost-per-hour", str(cost_per_hour)]
    process = subprocess.Popen(
        [*command, "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WorkerProcess(name, process, log)


def workers_wait_online(workers: list[WorkerProcess], timeout: float) -> None:
    """Until every worker has registered online; a worker that died says why."""
    names = {w.name for w in workers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Worker.objects.filter(name__in=names, state=WorkerState.ONLINE).count() == len(names):
            time.sleep(1.0)  # consumers attach to their queues just after worker_ready
            return
        dead = [w for w in workers if not w.alive]
        if dead:
            raise RuntimeError(f"worker {dead[0].name} died:\n{dead[0].log.read_text()[-3000:]}")
        time.sleep(0.3)
    raise RuntimeError("workers did not register: " + "; ".join(w.log.read_text()[-1500:] for w in workers))


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """The broker named by the test's parameter: the shared Redis or RabbitMQ, or
    ``private-redis``, a Redis of the test's own (``private_redis``) that it may restart."""
    if request.param == "private-redis":
        url = request.getfixturevalue("private_redis").url
    else:
        url, port = BROKERS[request.param]
        require_service(request.param, port_open("127.0.0.1", port))
    require_service("PostgreSQL", POSTGRES_AVAILABLE and connection.vendor == "postgresql")
    previous = celery_app.conf.broker_url
    _use_broker(url)
    yield url
    _use_broker(previous)


@pytest.fixture
def start_workers(broker: str, settings, tmp_path: Path) -> Iterator[Callable[..., list[WorkerProcess]]]:
    settings.MODELGATE_JOB_LEASE_SECONDS = 3
    settings.MODELGATE_WORKER_HEARTBEAT_TIMEOUT_SECONDS = 3
    settings.MODELGATE_JOB_DISPATCH_TIMEOUT_SECONDS = 4
    settings.MODELGATE_SCHEDULER_STRATEGY = "capability"
    started: list[WorkerProcess] = []

    def start(*specs: tuple[str, str, float], extra_env: dict[str, str] | None = None) -> list[WorkerProcess]:
        batch = [
            worker_spawn(
                name=name,
                broker_url=broker,
                tmp_path=tmp_path,
                lease_seconds=3,
                gpus=gpus,
                cost_per_hour=cost,
                extra_env=extra_env,
            )
            for name, gpus, cost in specs
        ]
        started.extend(batch)
        workers_wait_online(batch, timeout=90)
        return batch

    yield start
    for worker in started:
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGTERM)
    for worker in started:
        try:
            worker.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, what: str, tick: Callable[[], object] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(
        f"timed out waiting for {what}: "
        + json.dumps(list(Job.objects.values("id", "state", "state_detail", "attempts", "assignment")), default=str)
    )


def drive_scheduler() -> None:
    """What the scheduler's periodic tasks do, run from the test so timing is explicit."""
    schedule_pass()
    jobs_reap()


def all_final(*jobs: Job) -> Callable[[], bool]:
    ids = [j.pk for j in jobs]
    return lambda: Job.objects.filter(pk__in=ids, state__in=["succeeded", "failed", "cancelled"]).count() == len(ids)
