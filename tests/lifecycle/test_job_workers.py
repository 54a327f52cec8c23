"""Jobs on real Celery worker processes over real brokers (Redis, RabbitMQ), each worker
declaring its own GPU inventory, against the real PostgreSQL test database."""

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
from lifecycle.jobs.models import Job, JobState, Worker, WorkerState
from lifecycle.jobs.services import job_submit, jobs_reap, schedule_pass
from lifecycle.models import AuditRecord
from registry.services import team_ensure
from tests.conftest import require_service
from tests.environment import POSTGRES_AVAILABLE, port_open

pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("workers"),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {
    "redis": ("redis://127.0.0.1:6379/7", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}

# A job that reports its GPUs, progresses, and records a result.
REPORT_GPUS = (
    "import json, os, time\n"
    "print('CUDA_VISIBLE_DEVICES=' + os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\n"
    "seconds = json.loads(os.environ['MODELGATE_PARAMS']).get('seconds', 0)\n"
    "open('pid', 'w').write(str(os.getpid()))\n"
    "for step in range(10):\n"
    "    time.sleep(seconds / 10)\n"
    "    print(f'MODELGATE_PROGRESS {(step + 1) / 10}', flush=True)\n"
    "json.dump({'gpus': os.environ['CUDA_VISIBLE_DEVICES'], 'worker': os.environ['MODELGATE_WORKER_NAME']},"
    " open(os.environ['MODELGATE_RESULT_PATH'], 'w'))\n"
)


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

    def kill_hard(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
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
    database = connection.settings_dict

    def start(*specs: tuple[str, str, float]) -> list[WorkerProcess]:
        batch = []
        for name, gpus, cost in specs:
            log = tmp_path / f"{name}.log"
            env = {
                **os.environ,
                "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
                "CELERY_BROKER_URL": broker,
                "MODELGATE_VAR_DIR": str(tmp_path / "var"),
                "MODELGATE_JOB_DIR": str(tmp_path / "jobs"),
                "MODELGATE_JOB_LEASE_SECONDS": "3",
                "MODELGATE_WORKER_HEARTBEAT_SECONDS": "0.5",
                "MODELGATE_JOB_CANCEL_GRACE_SECONDS": "2",
            }
            process = subprocess.Popen(
                [
                    sys.executable, "manage.py", "job_worker", "--name", name, "--gpus", gpus,
                    "--cost-per-hour", str(cost), "--slots", "2", "--loglevel", "WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            batch.append(WorkerProcess(name, process, log))
        started.extend(batch)
        deadline = time.monotonic() + 90
        names = {w.name for w in batch}
        while time.monotonic() < deadline:
            if Worker.objects.filter(name__in=names, state=WorkerState.ONLINE).count() == len(names):
                time.sleep(1.0)  # consumers attach to their queues just after worker_ready
                return batch
            dead = [w for w in batch if w.process.poll() is not None]
            if dead:
                raise RuntimeError(f"worker {dead[0].name} died:\n{dead[0].log.read_text()[-3000:]}")
            time.sleep(0.3)
        raise RuntimeError("workers did not register: " + "; ".join(w.log.read_text()[-1500:] for w in batch))

    yield start
    for worker in started:
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGTERM)
    for worker in started:
        try:
            worker.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)


@pytest.fixture
def team(owner):
    return team_ensure(name="fraud")


def _submit(owner, team, *, gpus: int = 0, gpu_type: str | None = None, seconds: float = 0, **extra) -> Job:
    spec = {
        "entrypoint": [sys.executable, "-c", REPORT_GPUS],
        "params": {"seconds": seconds},
        "resources": {"gpus": gpus, "gpu_type": gpu_type, "cpus": 0.1, "memory_mb": 64},
        **extra,
    }
    return job_submit(actor=owner.user, team=team, kind="train", spec=spec)


def _wait(predicate: Callable[[], bool], *, timeout: float, what: str, tick: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}: " + json.dumps(
        list(Job.objects.values("id", "state", "state_detail", "attempts", "assignment")), default=str
    ))


def _drive() -> None:
    """What the scheduler's periodic tasks do, run from the test so timing is explicit."""
    schedule_pass()
    jobs_reap()


def _all_final(*jobs: Job) -> Callable[[], bool]:
    ids = [j.pk for j in jobs]
    return lambda: Job.objects.filter(pk__in=ids, state__in=["succeeded", "failed", "cancelled"]).count() == len(ids)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"], indirect=True)
def test_jobs_land_where_the_capability_strategy_says_with_exactly_their_gpus(start_workers, owner, team):
    start_workers(("gpu-a100", "A100:40960,A100:40960", 8.0), ("gpu-t4", "T4:15360", 0.6), ("cpu-only", "none", 0.1))

    two_a100 = _submit(owner, team, gpus=2, gpu_type="A100")
    one_t4 = _submit(owner, team, gpus=1, gpu_type="T4")
    cpu = _submit(owner, team)
    _wait(_all_final(two_a100, one_t4, cpu), timeout=120, what="jobs to finish", tick=_drive)

    results = {job.pk: Job.objects.get(pk=job.pk) for job in (two_a100, one_t4, cpu)}
    assert {j.state for j in results.values()} == {JobState.SUCCEEDED}
    assert results[two_a100.pk].result == {"gpus": "0,1", "worker": "gpu-a100"}
    assert results[one_t4.pk].result == {"gpus": "0", "worker": "gpu-t4"}
    assert results[cpu.pk].result["gpus"] == ""
    assert results[two_a100.pk].attempts == 1
    assert results[two_a100.pk].progress == 1.0
    assert results[two_a100.pk].cost_actual is not None
    log = "".join(results[one_t4.pk].log_chunks.values_list("text", flat=True))
    assert "CUDA_VISIBLE_DEVICES=0" in log


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_job_whose_worker_is_killed_is_retried_on_another_worker_and_recorded_once(start_workers, owner, team):
    first, second = start_workers(("gpu-1", "A100:40960", 1.0), ("gpu-2", "A100:40960", 1.0))
    job = _submit(owner, team, gpus=1, gpu_type="A100", seconds=4)
    _wait(lambda: Job.objects.get(pk=job.pk).progress > 0, timeout=60, what="the job to progress", tick=_drive)
    victim_name = Job.objects.get(pk=job.pk).assignment[0]["worker"]
    victim = first if first.name == victim_name else second

    victim.kill_hard()
    _wait(_all_final(job), timeout=120, what="the retried job", tick=_drive)

    finished = Job.objects.get(pk=job.pk)
    assert finished.state == JobState.SUCCEEDED
    assert finished.attempts == 2
    assert finished.result["worker"] != victim_name
    assert Worker.objects.get(name=victim_name).state == WorkerState.OFFLINE
    assert AuditRecord.objects.filter(action="job.succeeded", object_id=str(job.pk)).count() == 1
    assert set(finished.log_chunks.values_list("attempt", flat=True)) == {1, 2}


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_cancelling_a_running_job_stops_its_process_within_the_grace_period(start_workers, owner, team, tmp_path):
    from lifecycle.jobs.services import job_cancel

    start_workers(("gpu-c", "A100:40960", 1.0))
    job = _submit(owner, team, gpus=1, seconds=60)
    _wait(lambda: Job.objects.get(pk=job.pk).progress > 0, timeout=60, what="the job to progress", tick=_drive)
    pid = int(next((tmp_path / "jobs" / str(job.pk)).glob("attempt-1-rank-0/pid")).read_text())

    job_cancel(actor=owner.user, job=Job.objects.get(pk=job.pk))
    _wait(_all_final(job), timeout=20, what="the cancelled job")

    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_jobs_queued_while_redis_restarts_all_complete(start_workers, owner, team):
    start_workers(("gpu-r", "A100:40960,A100:40960", 1.0))
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True)
    try:
        jobs = [_submit(owner, team, gpus=1, gpu_type="A100") for _ in range(4)]
        schedule_pass()  # placements are committed; their dispatch fails while Redis is down
    finally:
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"],
            check=True,
            capture_output=True,
        )
    _wait(lambda: port_open("127.0.0.1", 6379), timeout=20, what="Redis")
    _wait(_all_final(*jobs), timeout=120, what="every job", tick=_drive)

    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True)) == {JobState.SUCCEEDED}


ALL_REDUCE = """
import json, os
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value, op=dist.ReduceOp.SUM)
print(f"rank {rank} of {world}: all-reduced {value.item()}", flush=True)
if rank == 0:
    json.dump({"world_size": world, "sum": value.item()}, open(os.environ["MODELGATE_RESULT_PATH"], "w"))
dist.destroy_process_group()
"""


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_data_parallel_job_runs_through_torchrun_with_gloo_and_all_reduces(start_workers, owner, team, tmp_path):
    try:
        import torch  # noqa: F401
    except ImportError:
        require_service("torch (requirements-train.txt)", False)
    script = tmp_path / "all_reduce.py"
    script.write_text(ALL_REDUCE)
    start_workers(("cpu-ddp", "none", 0.1))

    job = job_submit(
        actor=owner.user,
        team=team,
        kind="train",
        spec={
            "entrypoint": [sys.executable, str(script)],
            "resources": {"cpus": 0.5, "memory_mb": 256},
            "parallelism": {"mode": "data", "processes_per_node": 2},
        },
    )
    _wait(_all_final(job), timeout=180, what="the torchrun job", tick=_drive)

    finished = Job.objects.get(pk=job.pk)
    assert finished.state == JobState.SUCCEEDED, finished.state_detail
    assert finished.result == {"world_size": 2, "sum": 3.0}
    log = "".join(finished.log_chunks.values_list("text", flat=True))
    assert "rank 1 of 2: all-reduced 3.0" in log
