"""Jobs, workers and pools through the API, and the scheduler's services on the database,
with no worker running: the dispatch to a worker's queue (and the kick of a scheduling
pass) are recorded instead of sent to a broker."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from lifecycle.governance.models import AuditRecord
from lifecycle.jobs import dispatch, placement, services
from lifecycle.jobs.choices import JobState, WorkerState
from lifecycle.jobs.inventory import Inventory, parse_declared_gpus
from lifecycle.jobs.models import Job, JobLogChunk, ResourcePool, Worker
from lifecycle.jobs.placement import schedule_pass
from lifecycle.jobs.runner import Outcome
from lifecycle.jobs.services import (
    job_cancel,
    job_finish,
    job_log_append,
    job_start,
    job_submit,
    job_tick,
    jobs_reap,
    pool_ensure,
    pool_quota_set,
    worker_register,
)
from lifecycle.jobs.spec import parse_spec
from registry.errors import Forbidden
from registry.models import RegisteredModel, Team
from registry.services import model_create, team_ensure
from tests.conftest import Actor, _actor, require_service
from tests.environment import POSTGRES_AVAILABLE

pytestmark = pytest.mark.django_db

SMALL = {"entrypoint": ["python", "train.py"], "resources": {"cpus": 1, "memory_mb": 512}}


@dataclass
class Broker:
    """Stands in for the broker: what would have been sent, in order."""

    dispatches: list[dict[str, Any]] = field(default_factory=list)
    kicks: int = 0

    def dispatch(self, job_id: int, attempt: int, nodes: list[dict[str, Any]], queues: dict[str, str]) -> None:
        self.dispatches.append({"job": job_id, "attempt": attempt, "nodes": nodes, "queues": queues})

    def kick(self) -> None:
        self.kicks += 1

    def of(self, job: Job) -> list[dict[str, Any]]:
        return [d for d in self.dispatches if d["job"] == job.pk]


@pytest.fixture(autouse=True)
def broker(monkeypatch) -> Broker:
    recorder = Broker()
    monkeypatch.setattr(dispatch, "job_dispatch", recorder.dispatch)
    monkeypatch.setattr(dispatch, "scheduler_kick", recorder.kick)
    return recorder


@pytest.fixture
def fraud(owner: Actor) -> Team:
    return team_ensure(name="fraud")


@pytest.fixture
def ads_model(outsider: Actor) -> RegisteredModel:
    return model_create(actor=outsider.user, name="ad-ranker", team=team_ensure(name="ads"), primary_metric="auc")


@pytest.fixture
def superuser(db) -> Any:
    return get_user_model().objects.create_superuser("root", password="root-password-123!")


def submit(actor: Actor, team: Team, spec: dict[str, Any] | None = None, **extra: Any) -> Job:
    return job_submit(actor=actor.user, team=team, kind=extra.pop("kind", "train"), spec=spec or SMALL, **extra)


def gpu_job(actor: Actor, team: Team, gpus: int, gpu_type: str | None = None, **extra: Any) -> Job:
    spec = {
        "entrypoint": ["python", "train.py"],
        "resources": {"gpus": gpus, "gpu_type": gpu_type, "cpus": 1, "memory_mb": 512},
        **extra.pop("spec", {}),
    }
    return submit(actor, team, spec, **extra)


def worker(name: str, gpus: str = "none", *, pool: str = "default", slots: int = 4, cost: float = 0.0) -> Worker:
    found = Inventory(gpus=parse_declared_gpus(gpus), cpus=16, memory_mb=65536, cost_per_hour=cost)
    return worker_register(name=name, pool=pool, inventory=found, slots=slots)


def post_job(actor: Actor, body: dict[str, Any], **headers: str) -> Any:
    return actor.client.post("/api/v1/jobs/", body, format="json", **headers)


def place(django_capture_on_commit_callbacks, **kwargs: Any) -> placement.SchedulePass:
    """One scheduling pass, with its after-commit dispatches run (and recorded)."""
    with django_capture_on_commit_callbacks(execute=True):
        return schedule_pass(**kwargs)


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def running(job: Job, django_capture_on_commit_callbacks) -> Job:
    """Place the job and let its worker claim it, as ``run_job`` does."""
    place(django_capture_on_commit_callbacks)
    job = fresh(job)
    assert job.state == JobState.SCHEDULED, job.state_detail
    assert job_start(job_id=job.pk, attempt=job.attempts, rank=0) is not None
    return fresh(job)


# --- submitting --------------------------------------------------------------------------


def test_a_developer_submits_a_job_for_a_model_and_it_is_queued(owner, fraud_model, broker):
    response = post_job(owner, {"kind": "train", "model": "fraud-detector", "spec": SMALL, "priority": 5})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "queued"
    assert (body["team"], body["model"], body["pool"], body["priority"]) == ("fraud", "fraud-detector", "default", 5)
    assert body["created_by"] == "owner"
    assert body["spec"]["resources"]["gpus"] == 0 and body["spec"]["max_attempts"] == 3  # defaults filled in
    assert body["attempts"] == 0 and body["assignment"] == []
    assert AuditRecord.objects.filter(action="job.submit", object_id=str(body["id"])).count() == 1


def test_a_job_may_name_its_team_instead_of_a_model(owner, fraud):
    response = post_job(owner, {"kind": "batch_infer", "team": "fraud", "spec": SMALL})

    assert response.status_code == 201, response.json()
    assert (response.json()["team"], response.json()["model"]) == ("fraud", None)


def test_the_scheduling_pass_is_kicked_once_the_submission_commits(
    owner, fraud, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        submit(owner, fraud)

    assert broker.kicks == 1


def test_a_viewer_cannot_submit_a_job(viewer, fraud_model):
    response = post_job(viewer, {"kind": "train", "model": "fraud-detector", "spec": SMALL})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert not Job.objects.exists()


def test_an_outsider_does_not_see_another_teams_model(outsider, fraud_model):
    response = post_job(outsider, {"kind": "train", "model": "fraud-detector", "spec": SMALL})

    assert response.status_code == 404
    assert not Job.objects.exists()


def test_an_outsider_cannot_submit_for_another_team(outsider, fraud):
    response = post_job(outsider, {"kind": "train", "team": "fraud", "spec": SMALL})

    assert response.status_code == 403
    assert not Job.objects.exists()


def test_submitting_without_credentials_is_a_401(anonymous, fraud_model):
    response = anonymous.post(
        "/api/v1/jobs/", {"kind": "train", "model": "fraud-detector", "spec": SMALL}, format="json"
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"entrypoint": "python train.py"}, "spec.entrypoint"),
        ({"entrypoint": ["train"], "resources": {"gpus": -1}}, "spec.resources.gpus"),
        ({"entrypoint": ["train"], "resources": {"gpus": True}}, "spec.resources.gpus"),
        ({"entrypoint": ["train"], "parallelism": {"mode": "ddp"}}, "spec.parallelism.mode"),
        ({"entrypoint": ["train"], "env": {"SEED": 42}}, "spec.env"),
        ({"entrypoint": ["train"], "gpus": 2}, "spec.gpus"),
        ({"entrypoint": ["train"], "timeout_s": 10**30}, "spec.timeout_s"),
        ({"entrypoint": ["train"], "max_attempts": 10**12}, "spec.max_attempts"),
        ([], "spec"),
    ],
)
def test_a_bad_spec_is_a_400_naming_the_field(owner, fraud_model, spec, field):
    response = post_job(owner, {"kind": "train", "model": "fraud-detector", "spec": spec})

    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "sing", "team": "fraud", "spec": SMALL}, "kind"),
        ({"kind": "train", "team": "fraud", "spec": SMALL, "queue": "fast"}, "queue"),
        ({"kind": "train", "spec": SMALL}, "team"),
        ({"kind": "train", "team": "nobody", "spec": SMALL}, "team"),
        ({"kind": "train", "team": "fraud", "spec": SMALL, "version": 3}, "model"),
        ({"kind": "train", "team": "fraud", "spec": SMALL, "priority": 10_000}, "priority"),
        ({"kind": "train", "team": "fraud"}, "spec"),
    ],
)
def test_bad_fields_around_the_spec_are_a_400_naming_them(owner, fraud, body, field):
    response = post_job(owner, body)

    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"]


def test_an_unknown_pool_is_a_400(owner, fraud):
    response = post_job(owner, {"kind": "train", "team": "fraud", "spec": SMALL, "pool": "gpu-z"})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"pool": "unknown pool"}
    assert not ResourcePool.objects.filter(name="gpu-z").exists()


def test_a_job_goes_to_an_existing_pool(owner, fraud):
    pool_ensure(name="gpu-a")

    response = post_job(owner, {"kind": "train", "team": "fraud", "spec": SMALL, "pool": "gpu-a"})

    assert response.status_code == 201
    assert response.json()["pool"] == "gpu-a"


def test_a_retry_with_the_same_idempotency_key_returns_the_first_job(owner, fraud):
    body = {"kind": "train", "team": "fraud", "spec": SMALL}

    first = post_job(owner, body, HTTP_IDEMPOTENCY_KEY="ci-run-41")
    again = post_job(owner, body, HTTP_IDEMPOTENCY_KEY="ci-run-41")
    other = post_job(owner, {**body, "priority": 1}, HTTP_IDEMPOTENCY_KEY="ci-run-41")

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert Job.objects.count() == 1


def test_a_failed_submission_does_not_burn_its_idempotency_key(owner, fraud):
    bad = post_job(owner, {"kind": "train", "team": "fraud", "spec": {"entrypoint": []}}, HTTP_IDEMPOTENCY_KEY="k1")
    good = post_job(owner, {"kind": "train", "team": "fraud", "spec": SMALL}, HTTP_IDEMPOTENCY_KEY="k2")

    assert bad.status_code == 400
    assert good.status_code == 201


# --- listing and reading -----------------------------------------------------------------


@pytest.fixture
def some_jobs(owner, outsider, fraud, fraud_model, ads_model) -> dict[str, Job]:
    jobs = {
        "train": submit(owner, fraud, model=fraud_model),
        "evaluate": submit(owner, fraud, kind="evaluate", model=fraud_model),
        "teamless": submit(owner, fraud, kind="convert"),
        "ads": submit(outsider, team_ensure(name="ads"), model=ads_model),
    }
    job_cancel(actor=owner.user, job=jobs["evaluate"])
    return jobs


def ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.json()
    return {row["id"] for row in response.json()["results"]}


def test_a_member_lists_their_teams_jobs_only(owner, outsider, some_jobs):
    fraud_ids = {some_jobs[k].pk for k in ("train", "evaluate", "teamless")}

    assert ids(owner.client.get("/api/v1/jobs/")) == fraud_ids
    assert ids(outsider.client.get("/api/v1/jobs/")) == {some_jobs["ads"].pk}


def test_the_list_filters_by_state_model_and_kind(owner, some_jobs):
    assert ids(owner.client.get("/api/v1/jobs/?state=cancelled")) == {some_jobs["evaluate"].pk}
    assert ids(owner.client.get("/api/v1/jobs/?state=queued")) == {some_jobs["train"].pk, some_jobs["teamless"].pk}
    assert ids(owner.client.get("/api/v1/jobs/?model=fraud-detector")) == {
        some_jobs["train"].pk,
        some_jobs["evaluate"].pk,
    }
    assert ids(owner.client.get("/api/v1/jobs/?model=ad-ranker")) == set()
    assert ids(owner.client.get("/api/v1/jobs/?kind=convert")) == {some_jobs["teamless"].pk}
    assert ids(owner.client.get("/api/v1/jobs/?kind=train&state=queued")) == {some_jobs["train"].pk}


def test_the_list_is_paginated_newest_first(owner, some_jobs):
    first = owner.client.get("/api/v1/jobs/?page_size=2")

    assert [row["id"] for row in first.json()["results"]] == [some_jobs["teamless"].pk, some_jobs["evaluate"].pk]
    second = owner.client.get(first.json()["next"])
    assert [row["id"] for row in second.json()["results"]] == [some_jobs["train"].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [("state=sleeping", "state"), ("status=queued", "status"), ("page_size=0", "page_size")],
)
def test_a_bad_list_query_is_a_400_naming_the_parameter(owner, some_jobs, query, field):
    response = owner.client.get(f"/api/v1/jobs/?{query}")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_listing_without_credentials_is_a_401(anonymous):
    assert anonymous.get("/api/v1/jobs/").status_code == 401


def test_a_job_detail_is_seen_by_its_team_only(owner, viewer, outsider, some_jobs):
    job = some_jobs["train"]

    mine = owner.client.get(f"/api/v1/jobs/{job.pk}/")
    assert mine.status_code == 200
    assert mine.json()["id"] == job.pk and mine.json()["state"] == "queued"
    assert viewer.client.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
    assert outsider.client.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert owner.client.get("/api/v1/jobs/999999/").status_code == 404
    assert owner.client.get("/api/v1/jobs/abc/").status_code == 404


# --- cancelling --------------------------------------------------------------------------


def cancel(actor: Actor, job: Job) -> Any:
    return actor.client.post(f"/api/v1/jobs/{job.pk}/cancel/", format="json")


def test_cancelling_a_queued_job_cancels_it_at_once(owner, fraud):
    job = submit(owner, fraud)

    response = cancel(owner, job)

    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "cancelled"
    assert fresh(job).finished_at is not None
    assert AuditRecord.objects.filter(action="job.cancel", object_id=str(job.pk)).count() == 1


def test_cancelling_a_scheduled_job_cancels_it_and_its_late_start_does_nothing(
    owner, fraud, django_capture_on_commit_callbacks
):
    worker("cpu-1")
    job = submit(owner, fraud)
    place(django_capture_on_commit_callbacks)

    assert cancel(owner, fresh(job)).json()["state"] == "cancelled"
    assert job_start(job_id=job.pk, attempt=1, rank=0) is None
    assert fresh(job).state == JobState.CANCELLED


def test_cancelling_a_running_job_asks_its_runner_to_stop(owner, fraud, django_capture_on_commit_callbacks):
    worker("cpu-1")
    job = running(submit(owner, fraud), django_capture_on_commit_callbacks)
    assert job_tick(job_id=job.pk, attempt=1) is False

    response = cancel(owner, job)

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["cancel_requested"]) == ("running", True)
    assert job_tick(job_id=job.pk, attempt=1) is True
    assert job_finish(job_id=job.pk, attempt=1, outcome=Outcome("cancelled", -15, {}, "cancelled on request", 1.0))
    assert fresh(job).state == JobState.CANCELLED


def test_cancelling_a_finished_job_is_a_409(owner, fraud):
    job = submit(owner, fraud)
    cancel(owner, job)

    response = cancel(owner, job)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_state"


@pytest.mark.parametrize(
    ("who", "status"), [("viewer", 403), ("outsider", 404), ("approver", 200), ("fraud_admin", 200)]
)
def test_someone_elses_job_is_cancelled_by_approvers_and_admins_only(request, owner, fraud, who, status):
    job = submit(owner, fraud)
    actor = request.getfixturevalue(who)

    response = cancel(actor, job)

    assert response.status_code == status
    assert fresh(job).state == (JobState.CANCELLED if status == 200 else JobState.QUEUED)


def test_another_developer_cannot_cancel_the_owners_job(owner, fraud):
    colleague = _actor("colleague", {"fraud": "developer"})
    job = submit(owner, fraud)

    assert cancel(colleague, job).status_code == 403
    assert cancel(colleague, submit(colleague, fraud)).status_code == 200


def test_cancelling_without_credentials_is_a_401(anonymous, owner, fraud):
    job = submit(owner, fraud)

    assert anonymous.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 401


# --- logs --------------------------------------------------------------------------------


def logs(actor: Actor, job: Job, query: str = "") -> Any:
    return actor.client.get(f"/api/v1/jobs/{job.pk}/logs/{query}")


def test_logs_are_tailed_by_offset(owner, fraud):
    job = submit(owner, fraud)
    for text in ("epoch 1\n", "epoch 2\n", "épocha 3 ✓\n"):
        job_log_append(job_id=job.pk, attempt=1, text=text)
    whole = "epoch 1\nepoch 2\népocha 3 ✓\n"

    first = logs(owner, job)
    assert first.status_code == 200
    assert (first.json()["text"], first.json()["offset"], first.json()["next_offset"]) == (whole, 0, len(whole))
    assert first.json()["complete"] is False
    tail = logs(owner, job, "?offset=11")
    assert tail.json()["text"] == whole[11:]
    assert tail.json()["next_offset"] == len(whole)
    job_log_append(job_id=job.pk, attempt=1, text="done\n")
    more = logs(owner, job, f"?offset={len(whole)}")
    assert (more.json()["text"], more.json()["next_offset"]) == ("done\n", len(whole) + 5)
    assert fresh(job).log_size == len(whole) + 5
    assert list(JobLogChunk.objects.filter(job=job).values_list("offset", flat=True)) == [0, 8, 16, len(whole)]


def test_reading_past_the_end_gives_nothing_and_the_same_offset(owner, fraud):
    job = submit(owner, fraud)
    job_log_append(job_id=job.pk, attempt=1, text="hello\n")

    response = logs(owner, job, "?offset=6")

    assert (response.json()["text"], response.json()["next_offset"]) == ("", 6)


def test_the_log_of_a_finished_job_is_complete_once_read_to_the_end(owner, fraud):
    job = submit(owner, fraud)
    job_log_append(job_id=job.pk, attempt=1, text="bye\n")
    job_cancel(actor=owner.user, job=job)

    assert logs(owner, job, "?offset=0").json()["complete"] is True
    assert logs(owner, job, "?offset=0").json()["state"] == "cancelled"


@pytest.mark.parametrize("offset", ["-1", "abc", "1.5", "²", ""])
def test_a_bad_log_offset_is_a_400(owner, fraud, offset):
    job = submit(owner, fraud)

    response = logs(owner, job, f"?offset={offset}")

    assert response.status_code == 400
    assert "offset" in response.json()["error"]["details"]


def test_a_huge_log_offset_is_not_a_server_error(owner, fraud):
    job = submit(owner, fraud)

    response = logs(owner, job, "?offset=" + "9" * 30)

    assert response.status_code in {200, 400}


def test_logs_are_private_to_the_team(outsider, anonymous, owner, fraud):
    job = submit(owner, fraud)

    assert logs(outsider, job).status_code == 404
    assert anonymous.get(f"/api/v1/jobs/{job.pk}/logs/").status_code == 401
    assert logs(owner, job, "?tail=1").status_code == 400


# --- workers and pools -------------------------------------------------------------------


def test_workers_are_listed_with_inventory_load_and_heartbeat(owner, fraud, django_capture_on_commit_callbacks):
    worker("gpu-a", "A100:40960,A100:40960", cost=8.0)
    worker("cpu-b", slots=2)
    job = running(gpu_job(owner, fraud, 1, "A100"), django_capture_on_commit_callbacks)

    response = owner.client.get("/api/v1/workers/")

    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    assert set(rows) == {"gpu-a", "cpu-b"}
    gpu = rows["gpu-a"]
    assert [g["type"] for g in gpu["gpus"]] == ["A100", "A100"]
    assert (gpu["pool"], gpu["state"], gpu["slots"], gpu["cost_per_hour"]) == ("default", "online", 4, 8.0)
    assert (gpu["gpus_in_use"], gpu["running_jobs"], gpu["load"]) == ([0], [job.pk], 0.5)
    assert gpu["last_heartbeat"] and gpu["inventory_source"] == "declared"
    assert (rows["cpu-b"]["gpus"], rows["cpu-b"]["load"]) == ([], 0.0)


def test_pools_are_listed_with_quotas_and_usage(owner, superuser, fraud, django_capture_on_commit_callbacks):
    worker("gpu-a", "A100:40960,A100:40960", pool="gpu")
    worker("cpu-b")
    pool_quota_set(actor=superuser, pool=ResourcePool.objects.get(name="gpu"), team=fraud, gpu_limit=2)
    running(gpu_job(owner, fraud, 1, pool="gpu"), django_capture_on_commit_callbacks)

    response = owner.client.get("/api/v1/pools/")

    assert response.status_code == 200
    pools = {row["name"]: row for row in response.json()["results"]}
    assert pools["gpu"]["workers"] == ["gpu-a"] and pools["gpu"]["gpus"] == 2
    assert pools["gpu"]["teams"] == [{"team": "fraud", "gpu_limit": 2, "gpus_in_use": 1}]
    assert (pools["default"]["workers"], pools["default"]["teams"]) == (["cpu-b"], [])


@pytest.mark.parametrize("path", ["/api/v1/workers/", "/api/v1/pools/"])
def test_workers_and_pools_need_credentials(anonymous, path):
    assert anonymous.get(path).status_code == 401


# --- the scheduler on the database -------------------------------------------------------


def test_placements_follow_the_capability_strategy_and_are_recorded(
    owner, fraud, broker, settings, django_capture_on_commit_callbacks
):
    settings.MODELGATE_SCHEDULER_STRATEGY = "capability"
    worker("gpu-a100", "A100:40960,A100:40960", cost=8.0)
    worker("gpu-t4", "T4:15360", cost=0.6)
    two_a100 = gpu_job(owner, fraud, 2, "A100")
    one_t4 = gpu_job(owner, fraud, 1, "T4")

    result = place(django_capture_on_commit_callbacks)

    assert set(result.placed) == {two_a100.pk, one_t4.pk} and result.waiting == {}
    big, small = fresh(two_a100), fresh(one_t4)
    assert big.state == small.state == JobState.SCHEDULED
    assert big.assignment == [{"worker": "gpu-a100", "gpus": [0, 1], "rank": 0}]
    assert small.assignment == [{"worker": "gpu-t4", "gpus": [0], "rank": 0}]
    assert (big.attempts, big.strategy) == (1, "capability")
    assert big.state_detail.startswith("placed by capability: best fit")
    assert big.scheduled_at and big.lease_expires_at > big.scheduled_at
    assert broker.of(big) == [
        {"job": big.pk, "attempt": 1, "nodes": big.assignment, "queues": {"gpu-a100": "worker.gpu-a100"}}
    ]


def test_least_loaded_spreads_jobs_across_passes(owner, fraud, settings, django_capture_on_commit_callbacks):
    settings.MODELGATE_SCHEDULER_STRATEGY = "least_loaded"
    worker("a", "A100:40960,A100:40960")
    worker("b", "A100:40960,A100:40960")
    placed = []
    for _ in range(4):
        job = gpu_job(owner, fraud, 1)
        place(django_capture_on_commit_callbacks)
        placed.append(fresh(job).assignment[0]["worker"])

    assert sorted(placed) == ["a", "a", "b", "b"]
    assert placed[0] != placed[1]


def test_round_robin_rotates_across_passes(owner, fraud, settings, django_capture_on_commit_callbacks):
    settings.MODELGATE_SCHEDULER_STRATEGY = "round_robin"
    for name in ("a", "b", "c"):
        worker(name, "A100:40960,A100:40960,A100:40960,A100:40960")
    placed = []
    for _ in range(4):
        job = gpu_job(owner, fraud, 1)
        place(django_capture_on_commit_callbacks)
        placed.append(fresh(job).assignment[0]["worker"])

    assert placed == ["a", "b", "c", "a"]


def test_cost_puts_a_job_on_the_cheapest_worker_that_fits(owner, fraud, settings, django_capture_on_commit_callbacks):
    settings.MODELGATE_SCHEDULER_STRATEGY = "cost"
    worker("a-dear", "A100:40960", cost=4.0)
    worker("b-cheap", "A100:40960", cost=1.0)
    job = gpu_job(owner, fraud, 1, spec={"estimated_duration_s": 3600})

    place(django_capture_on_commit_callbacks)

    job = fresh(job)
    assert job.assignment[0]["worker"] == "b-cheap"
    assert job.cost_estimate == pytest.approx(1.0)


def test_min_completion_time_counts_the_work_already_running(
    owner, fraud, settings, django_capture_on_commit_callbacks
):
    settings.MODELGATE_SCHEDULER_STRATEGY = "min_completion_time"
    worker("a", slots=8)
    worker("b", slots=8)
    hour_long = {**SMALL, "estimated_duration_s": 3600, "resources": {"cpus": 4, "memory_mb": 512}}
    first = submit(owner, fraud, hour_long)
    place(django_capture_on_commit_callbacks)
    second = submit(owner, fraud, hour_long)

    place(django_capture_on_commit_callbacks)

    assert fresh(first).assignment[0]["worker"] == "a"
    assert fresh(second).assignment[0]["worker"] == "b"  # a quarter of a is busy for an hour


def test_min_completion_time_learns_from_past_runs_on_each_gpu_type(
    owner, fraud, settings, django_capture_on_commit_callbacks
):
    settings.MODELGATE_SCHEDULER_STRATEGY = "min_completion_time"
    worker("a-t4", "T4:15360")
    worker("b-h100", "H100:81920")
    now = timezone.now()
    for name, seconds in (("a-t4", 3000), ("b-h100", 300)):
        Job.objects.create(
            kind="train",
            team=fraud,
            pool=pool_ensure(name="default"),
            spec=parse_spec({"entrypoint": ["python", "train.py"], "resources": {"gpus": 1}}).to_dict(),
            state=JobState.SUCCEEDED,
            assignment=[{"worker": name, "gpus": [0], "rank": 0}],
            started_at=now - timedelta(seconds=seconds),
            finished_at=now,
        )
    job = gpu_job(owner, fraud, 1)  # any GPU type will do

    place(django_capture_on_commit_callbacks)

    job = fresh(job)
    assert job.assignment[0]["worker"] == "b-h100"
    assert "history of 1 train.py run" in job.state_detail


def test_a_job_nothing_can_hold_stays_queued_with_the_reason(owner, fraud, broker, django_capture_on_commit_callbacks):
    worker("gpu-1", "A100:40960")
    worker("gpu-2", "A100:40960")
    job = gpu_job(owner, fraud, 2, "A100")

    result = place(django_capture_on_commit_callbacks)

    job = fresh(job)
    assert result.placed == [] and job.pk in result.waiting
    assert job.state == JobState.QUEUED
    assert "no worker with 2×A100" in job.state_detail
    assert (job.assignment, job.attempts) == ([], 0)
    assert broker.dispatches == []


def test_a_job_without_workers_in_its_pool_says_so(owner, fraud, django_capture_on_commit_callbacks):
    worker("cpu-1")
    pool_ensure(name="gpu")
    job = submit(owner, fraud, pool="gpu")

    place(django_capture_on_commit_callbacks)

    assert fresh(job).state_detail == "no worker in pool 'gpu'"


def test_a_worker_with_every_slot_busy_takes_no_more_jobs(owner, fraud, django_capture_on_commit_callbacks):
    worker("cpu-1", slots=2)
    jobs = [submit(owner, fraud) for _ in range(3)]

    place(django_capture_on_commit_callbacks)

    states = [fresh(j).state for j in jobs]
    assert states.count(JobState.SCHEDULED) == 2 and states.count(JobState.QUEUED) == 1


def test_a_team_quota_makes_a_job_wait_with_the_reason(owner, superuser, fraud, django_capture_on_commit_callbacks):
    worker("gpu-1", "A100:40960,A100:40960,A100:40960,A100:40960")
    pool_quota_set(actor=superuser, pool=ResourcePool.objects.get(name="default"), team=fraud, gpu_limit=2)
    first = gpu_job(owner, fraud, 2)
    place(django_capture_on_commit_callbacks)
    second = gpu_job(owner, fraud, 1)

    place(django_capture_on_commit_callbacks)

    assert fresh(first).state == JobState.SCHEDULED
    second = fresh(second)
    assert second.state == JobState.QUEUED
    assert second.state_detail == (
        "team quota 2 GPUs reached (2 in use, job needs 1) for team 'fraud' in pool 'default'"
    )
    assert AuditRecord.objects.filter(action="pool.quota_set").count() == 1


def test_only_platform_admins_set_quotas(fraud_admin, fraud):
    pool = pool_ensure(name="default")

    with pytest.raises(Forbidden) as caught:
        pool_quota_set(actor=fraud_admin.user, pool=pool, team=fraud, gpu_limit=8)

    assert caught.value.status == 403
    assert not pool.quotas.exists()


def test_a_gang_is_placed_on_distinct_workers_at_once(owner, fraud, broker, django_capture_on_commit_callbacks):
    worker("gpu-1", "A100:40960,A100:40960")
    worker("gpu-2", "A100:40960,A100:40960")
    job = gpu_job(owner, fraud, 2, "A100", spec={"parallelism": {"mode": "data", "processes_per_node": 2, "nodes": 2}})

    place(django_capture_on_commit_callbacks)

    job = fresh(job)
    assert job.state == JobState.SCHEDULED
    assert sorted(n["worker"] for n in job.assignment) == ["gpu-1", "gpu-2"]
    assert [n["rank"] for n in job.assignment] == [0, 1]
    assert all(n["gpus"] == [0, 1] for n in job.assignment)
    (sent,) = broker.of(job)
    assert sent["queues"] == {"gpu-1": "worker.gpu-1", "gpu-2": "worker.gpu-2"}


def test_a_gang_that_does_not_fit_whole_takes_nothing(owner, fraud, broker, django_capture_on_commit_callbacks):
    worker("gpu-1", "A100:40960,A100:40960")
    worker("gpu-2", "A100:40960")
    gang = gpu_job(owner, fraud, 2, "A100", spec={"parallelism": {"mode": "data", "nodes": 2}})

    place(django_capture_on_commit_callbacks)

    gang = fresh(gang)
    assert (gang.state, gang.assignment) == (JobState.QUEUED, [])
    assert "gang needs 2 workers with 2×A100" in gang.state_detail
    assert broker.dispatches == []
    single = gpu_job(owner, fraud, 2, "A100")
    place(django_capture_on_commit_callbacks)
    assert fresh(single).assignment == [{"worker": "gpu-1", "gpus": [0, 1], "rank": 0}]


def test_a_job_whose_stored_spec_no_longer_parses_fails_instead_of_stopping_every_pass(
    owner, fraud, django_capture_on_commit_callbacks
):
    worker("cpu-1")
    broken = submit(owner, fraud)
    Job.objects.filter(pk=broken.pk).update(spec={"entrypoint": "python train.py"})
    healthy = submit(owner, fraud)

    place(django_capture_on_commit_callbacks)

    assert fresh(broken).state == JobState.FAILED
    assert "spec.entrypoint" in fresh(broken).state_detail
    assert fresh(healthy).state == JobState.SCHEDULED


# --- faults: the reaper and the compare-and-swap -----------------------------------------


def expire(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_a_running_job_whose_lease_expired_is_requeued_then_failed_after_max_attempts(
    owner, fraud, django_capture_on_commit_callbacks
):
    worker("cpu-1")
    job = running(submit(owner, fraud, {**SMALL, "max_attempts": 2}), django_capture_on_commit_callbacks)
    expire(job)

    report = jobs_reap()

    assert report.requeued == [job.pk]
    job = fresh(job)
    assert (job.state, job.assignment, job.attempts, job.lease_expires_at) == (JobState.QUEUED, [], 1, None)
    assert "attempt 1 lost on cpu-1 (lease expired); requeued" in job.state_detail
    job = running(job, django_capture_on_commit_callbacks)
    assert job.attempts == 2
    expire(job)

    report = jobs_reap()

    assert report.failed == [job.pk]
    job = fresh(job)
    assert job.state == JobState.FAILED and job.finished_at is not None
    assert "gave up after 2 attempts" in job.state_detail
    assert AuditRecord.objects.filter(action="job.reaped", object_id=str(job.pk)).count() == 2


def test_a_running_job_with_a_live_lease_is_left_alone(owner, fraud, django_capture_on_commit_callbacks):
    worker("cpu-1")
    job = running(submit(owner, fraud), django_capture_on_commit_callbacks)

    report = jobs_reap()

    assert report.requeued == report.failed == []
    assert fresh(job).state == JobState.RUNNING


def test_a_lost_job_that_was_being_cancelled_ends_cancelled(owner, fraud, django_capture_on_commit_callbacks):
    worker("cpu-1")
    job = running(submit(owner, fraud), django_capture_on_commit_callbacks)
    job_cancel(actor=owner.user, job=job)
    expire(job)

    jobs_reap()

    assert fresh(job).state == JobState.CANCELLED


def test_silent_workers_go_offline_and_take_no_jobs(owner, fraud, settings, django_capture_on_commit_callbacks):
    worker("quiet")
    worker("chatty")
    silent_for = timedelta(seconds=settings.MODELGATE_WORKER_HEARTBEAT_TIMEOUT_SECONDS + 5)
    Worker.objects.filter(name="quiet").update(last_heartbeat=timezone.now() - silent_for)

    report = jobs_reap()

    assert report.workers_offline == ["quiet"]
    assert Worker.objects.get(name="quiet").state == WorkerState.OFFLINE
    assert Worker.objects.get(name="chatty").state == WorkerState.ONLINE
    job = submit(owner, fraud)
    place(django_capture_on_commit_callbacks)
    assert fresh(job).assignment[0]["worker"] == "chatty"
    assert services.worker_heartbeat(name="quiet") is True
    assert Worker.objects.get(name="quiet").state == WorkerState.ONLINE


def test_a_scheduled_job_nobody_started_is_dispatched_again(owner, fraud, broker, django_capture_on_commit_callbacks):
    worker("cpu-1")
    job = submit(owner, fraud)
    place(django_capture_on_commit_callbacks)
    expire(job)

    with django_capture_on_commit_callbacks(execute=True):
        report = jobs_reap()

    assert report.redispatched == [job.pk]
    job = fresh(job)
    assert (job.state, job.attempts) == (JobState.SCHEDULED, 1)
    assert job.lease_expires_at > timezone.now()
    first, again = broker.of(job)
    assert again == first == {"job": job.pk, "attempt": 1, "nodes": job.assignment, "queues": {"cpu-1": "worker.cpu-1"}}
    assert job_start(job_id=job.pk, attempt=1, rank=0) is not None
    assert job_start(job_id=job.pk, attempt=1, rank=0) is None  # the duplicate delivery does nothing


def test_a_scheduled_job_on_a_dead_worker_is_requeued_not_redispatched(
    owner, fraud, settings, django_capture_on_commit_callbacks
):
    worker("cpu-1")
    job = submit(owner, fraud)
    place(django_capture_on_commit_callbacks)
    Worker.objects.filter(name="cpu-1").update(last_heartbeat=timezone.now() - timedelta(hours=1))
    expire(job)

    report = jobs_reap()

    assert report.requeued == [job.pk] and report.redispatched == []
    assert fresh(job).state == JobState.QUEUED


def test_a_stale_attempts_finish_changes_nothing(owner, fraud, django_capture_on_commit_callbacks):
    worker("cpu-1")
    job = running(submit(owner, fraud), django_capture_on_commit_callbacks)
    expire(job)
    jobs_reap()
    job = running(job, django_capture_on_commit_callbacks)
    before = fresh(job)

    late = job_finish(job_id=job.pk, attempt=1, outcome=Outcome("succeeded", 0, {"from": "attempt 1"}, "", 5.0))

    assert late is False
    after = fresh(job)
    assert (after.state, after.result, after.finished_at, after.attempts) == (JobState.RUNNING, None, None, 2)
    assert after.state_detail == before.state_detail
    assert job_tick(job_id=job.pk, attempt=1) is True  # the old runner is told to stop
    assert job_finish(job_id=job.pk, attempt=2, outcome=Outcome("succeeded", 0, {"from": "attempt 2"}, "", 5.0))
    assert not job_finish(job_id=job.pk, attempt=2, outcome=Outcome("failed", 1, {}, "duplicate", 5.0))
    done = fresh(job)
    assert (done.state, done.result, done.progress) == (JobState.SUCCEEDED, {"from": "attempt 2"}, 1.0)
    assert AuditRecord.objects.filter(action="job.succeeded", object_id=str(job.pk)).count() == 1


# --- concurrent passes (real PostgreSQL transactions) --------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_passes_never_hand_out_the_same_gpu(owner, fraud, monkeypatch):
    require_service("PostgreSQL", POSTGRES_AVAILABLE and connection.vendor == "postgresql")
    worker("gpu-1", "A100:40960")
    jobs = [gpu_job(owner, fraud, 1) for _ in range(2)]
    # Each pass waits for the other before reading the cluster, the worst interleaving;
    # when passes are serialised the second never arrives and the first goes on alone.
    meet = threading.Barrier(2, timeout=2)
    snapshot = placement._snapshot

    def meeting_snapshot(*args, **kwargs):
        try:
            meet.wait()
        except threading.BrokenBarrierError:
            pass
        return snapshot(*args, **kwargs)

    monkeypatch.setattr(placement, "_snapshot", meeting_snapshot)
    errors: list[BaseException] = []

    def one_pass() -> None:
        try:
            schedule_pass(limit=1)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    states = sorted(fresh(j).state for j in jobs)
    assert states == [JobState.QUEUED, JobState.SCHEDULED]


def test_a_kick_that_finds_a_pass_already_waiting_leaves_the_queue_to_it(
    owner, fraud, django_capture_on_commit_callbacks
):
    require_service("PostgreSQL", POSTGRES_AVAILABLE and connection.vendor == "postgresql")
    import psycopg

    worker("cpu-1")
    job = submit(owner, fraud)
    database = connection.settings_dict
    waiting = psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"], autocommit=True
    )
    try:
        waiting.execute("SELECT pg_advisory_lock(%s)", [placement._NEXT_PASS_LOCK])

        skipped = place(django_capture_on_commit_callbacks)

        assert (skipped.placed, fresh(job).state) == ([], JobState.QUEUED)
        waiting.execute("SELECT pg_advisory_unlock(%s)", [placement._NEXT_PASS_LOCK])  # the waiting pass runs
    finally:
        waiting.close()

    assert place(django_capture_on_commit_callbacks).placed == [job.pk]
