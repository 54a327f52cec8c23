"""Jobs on real Celery worker processes over real brokers (Redis, RabbitMQ), each worker
declaring its own GPU inventory, against the real PostgreSQL test database."""

from __future__ import annotations

import os
import sys

import pytest

from lifecycle.governance.models import AuditRecord
from lifecycle.jobs.choices import JobState, WorkerState
from lifecycle.jobs.models import Job, Worker
from lifecycle.jobs.placement import schedule_pass
from lifecycle.jobs.services import job_submit
from registry.services import team_ensure
from tests.conftest import require_service
from tests.environment import port_open
from tests.lifecycle.workers import all_final, drive_scheduler, wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("workers"),
    pytest.mark.django_db(transaction=True),
]

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


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"], indirect=True)
def test_jobs_land_where_the_capability_strategy_says_with_exactly_their_gpus(start_workers, owner, team):
    start_workers(("gpu-a100", "A100:40960,A100:40960", 8.0), ("gpu-t4", "T4:15360", 0.6), ("cpu-only", "none", 0.1))

    two_a100 = _submit(owner, team, gpus=2, gpu_type="A100")
    one_t4 = _submit(owner, team, gpus=1, gpu_type="T4")
    cpu = _submit(owner, team)
    wait_for(all_final(two_a100, one_t4, cpu), timeout=120, what="jobs to finish", tick=drive_scheduler)

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
    wait_for(
        lambda: Job.objects.get(pk=job.pk).progress > 0, timeout=60, what="the job to progress", tick=drive_scheduler
    )
    victim_name = Job.objects.get(pk=job.pk).assignment[0]["worker"]
    victim = first if first.name == victim_name else second

    victim.kill_hard()
    wait_for(all_final(job), timeout=120, what="the retried job", tick=drive_scheduler)

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
    wait_for(
        lambda: Job.objects.get(pk=job.pk).progress > 0, timeout=60, what="the job to progress", tick=drive_scheduler
    )
    pid = int(next((tmp_path / "jobs" / str(job.pk)).glob("attempt-1-rank-0/pid")).read_text())

    job_cancel(actor=owner.user, job=Job.objects.get(pk=job.pk))
    wait_for(all_final(job), timeout=20, what="the cancelled job")

    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("broker", ["private-redis"], indirect=True)
def test_jobs_queued_while_redis_restarts_all_complete(start_workers, private_redis, owner, team):
    start_workers(("gpu-r", "A100:40960,A100:40960", 1.0))
    private_redis.stop()
    try:
        jobs = [_submit(owner, team, gpus=1, gpu_type="A100") for _ in range(4)]
        schedule_pass()  # placements are committed; their dispatch fails while Redis is down
        assert not port_open("127.0.0.1", private_redis.port)
    finally:
        private_redis.start()
    wait_for(all_final(*jobs), timeout=120, what="every job", tick=drive_scheduler)

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
    wait_for(all_final(job), timeout=180, what="the torchrun job", tick=drive_scheduler)

    finished = Job.objects.get(pk=job.pk)
    assert finished.state == JobState.SUCCEEDED, finished.state_detail
    assert finished.result == {"world_size": 2, "sum": 3.0}
    log = "".join(finished.log_chunks.values_list("text", flat=True))
    assert "rank 1 of 2: all-reduced 3.0" in log
