"""``kill -9`` of job workers at random moments while they run training, evaluation and
plain command jobs, over a private Redis and a private RabbitMQ node: every job ends
exactly once (succeeded, or failed with a reason after its retries), no result is
applied twice and no version is registered twice.

Sizes: ``MODELGATE_CHAOS_KILLS`` kills per broker (10, so 20 for the two brokers),
``MODELGATE_CHAOS_TRAININGS`` training jobs per broker (1); ``MODELGATE_CHAOS_SEED``
replays a run's choices (the seed is printed). See docs/chaos.md.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from lifecycle.evaluation.models import Evaluation
from lifecycle.governance.models import AuditRecord
from lifecycle.jobs.choices import JOB_FINAL_STATES, JobKind, JobState
from lifecycle.jobs.models import Job
from lifecycle.jobs.outcomes import job_outcome_apply
from lifecycle.jobs.services import job_submit, jobs_with_unapplied_outcome
from lifecycle.training.services import training_submit
from registry.models import ModelVersion, VersionTag
from registry.services import dataset_create, model_create, team_ensure
from tests.chaos.conftest import WorkerFleet, chaos_number
from tests.lifecycle.workers import drive_scheduler

pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("chaos"),
    pytest.mark.django_db(transaction=True),
]

QUICK = {"cv_folds": 2, "bootstrap_rounds": 20, "permutation_repeats": 1}
FLEET_SIZE = 3
# A plain command job: progresses in steps, then records which attempt finished it.
COMMAND = (
    "import json, os, time\n"
    "seconds = json.loads(os.environ['MODELGATE_PARAMS'])['seconds']\n"
    "for step in range(10):\n"
    "    time.sleep(seconds / 10)\n"
    "    print(f'MODELGATE_PROGRESS {(step + 1) / 10}', flush=True)\n"
    "json.dump({'job': int(os.environ['MODELGATE_JOB_ID']), 'attempt': int(os.environ['MODELGATE_ATTEMPT'])},"
    " open(os.environ['MODELGATE_RESULT_PATH'], 'w'))\n"
)
FINISHING_ACTIONS = {"job.succeeded", "job.failed", "job.cancelled"}


@dataclass
class Kill:
    job: int
    kind: str
    worker: str
    delay: float
    progress: float


def _model(owner, s3_endpoint):
    team = team_ensure(name="fraud")
    frame = load_breast_cancer(as_frame=True).frame
    body = io.StringIO()
    frame.to_csv(body, index=False)
    bucket = s3_endpoint.bucket("datasets")
    s3_endpoint.client().put_object(Bucket=bucket, Key="chaos.csv", Body=body.getvalue().encode())
    dataset = dataset_create(
        actor=owner.user, team=team, name="chaos-data", uri=f"s3://{bucket}/chaos.csv", target="target"
    )
    return model_create(
        actor=owner.user,
        name="chaos-model",
        team=team,
        task="classification",
        primary_metric="f1",
        policy={"rules": [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.5}]},
        dataset=dataset.name,
    )


def _command_job(owner, team, seconds: float) -> Job:
    spec = {
        "entrypoint": [sys.executable, "-c", COMMAND],
        "params": {"seconds": seconds},
        "resources": {"cpus": 0.1, "memory_mb": 64},
    }
    return job_submit(actor=owner.user, team=team, kind=JobKind.BATCH_INFER, spec=spec)


def _tick() -> None:
    """The scheduler's and the reaper's periodic work, including results whose worker
    died before applying them."""
    drive_scheduler()
    for job_id in jobs_with_unapplied_outcome(older_than_s=2):
        try:
            job_outcome_apply(job_id=job_id)
        except Exception as exc:  # a dependency blip: the next tick tries again
            print(f"[chaos] applying job {job_id} waits: {exc}")


def _finishes(job: Job) -> int:
    """How many times the job was recorded as ended (by its worker or by the reaper)."""
    records = AuditRecord.objects.filter(object_type="job", object_id=str(job.pk))
    by_worker = records.filter(action__in=FINISHING_ACTIONS).count()
    by_reaper = sum(
        1
        for after in records.filter(action="job.reaped").values_list("after", flat=True)
        if after.get("state") in JOB_FINAL_STATES
    )
    return by_worker + by_reaper


@pytest.mark.parametrize("chaos_broker", ["redis", "rabbitmq"], indirect=True)
def test_jobs_survive_workers_killed_at_random_moments(
    chaos_broker, fleet_settings, live_services, s3_endpoint, owner, settings, tmp_path, chaos_rng, request
):
    broker_url, _ = chaos_broker
    target_kills = chaos_number("KILLS", 10)
    trainings = chaos_number("TRAININGS", 1)
    settings.MODELGATE_EVALUATION_CV_FOLDS = QUICK["cv_folds"]
    settings.MODELGATE_EVALUATION_BOOTSTRAP_ROUNDS = QUICK["bootstrap_rounds"]
    settings.MODELGATE_EVALUATION_PERMUTATION_REPEATS = QUICK["permutation_repeats"]
    fleet = WorkerFleet(
        broker_url,
        tmp_path,
        {
            "MLFLOW_TRACKING_URI": live_services.url,
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint.url,
            "AWS_ENDPOINT_URL": s3_endpoint.url,
            "MODELGATE_ARTIFACT_ROOT": settings.MODELGATE_ARTIFACT_ROOT,
            "MODELGATE_EVALUATION_CV_FOLDS": str(QUICK["cv_folds"]),
            "MODELGATE_EVALUATION_BOOTSTRAP_ROUNDS": str(QUICK["bootstrap_rounds"]),
            "MODELGATE_EVALUATION_PERMUTATION_REPEATS": str(QUICK["permutation_repeats"]),
        },
    )
    request.addfinalizer(fleet.stop_all)
    fleet.wait_online(*[fleet.start() for _ in range(FLEET_SIZE)])
    model = _model(owner, s3_endpoint)
    team = model.team
    for index in range(trainings):
        training_submit(
            actor=owner.user, model=model, estimator="LogisticRegression", estimator_params={"C": 1.0 + index}
        )
    commands = [_command_job(owner, team, chaos_rng.uniform(2, 4)) for _ in range(3)]

    kills: list[Kill] = []
    started = time.monotonic()
    while len(kills) < target_kills:
        assert time.monotonic() - started < 60 + 15 * target_kills, f"only {len(kills)} kills landed mid-job"
        _tick()
        if Job.objects.filter(pk__in=[c.pk for c in commands]).exclude(state__in=JOB_FINAL_STATES).count() < 2:
            commands.append(_command_job(owner, team, chaos_rng.uniform(2, 4)))
        while len(fleet.alive()) < FLEET_SIZE:
            fleet.start()
        # A job on its last attempt is spared: the kills test recovery, and a job killed
        # that often fails (as it must) without showing anything new.
        running = [
            (job.pk, job.kind, node["worker"])
            for job in Job.objects.filter(team=team, state=JobState.RUNNING).order_by("pk")
            if job.attempts < job.max_attempts
            for node in job.assignment
            if (worker := fleet.by_name(node["worker"])) is not None and worker.alive
        ]
        if not running:
            time.sleep(0.3)
            continue
        # The kind killed least so far, then its job killed least, so that every kind of
        # job is hit and a training job lives to hand its evaluation to the next kills.
        kinds_hit = Counter(kill.kind for kill in kills)
        jobs_hit = Counter(kill.job for kill in kills)
        least = min((kinds_hit[kind], jobs_hit[pk]) for pk, kind, _ in running)
        job_id, kind, name = chaos_rng.choice([r for r in running if (kinds_hit[r[1]], jobs_hit[r[0]]) == least])
        delay = round(chaos_rng.uniform(0.0, 2.0), 2)
        time.sleep(delay)
        job = Job.objects.get(pk=job_id)
        if job.state != JobState.RUNNING or name not in [n["worker"] for n in job.assignment]:
            continue  # it finished meanwhile: not a kill mid-job
        fleet.by_name(name).kill_hard()
        kills.append(Kill(job_id, kind, name, delay, job.progress))
        print(f"[chaos] kill {len(kills)}: -9 {name} {delay}s later, running {kind} job {job_id} at {job.progress:.0%}")

    def settled() -> bool:
        _tick()
        while len(fleet.alive()) < FLEET_SIZE:
            fleet.start()
        open_jobs = Job.objects.filter(team=team).exclude(state__in=JOB_FINAL_STATES).exists()
        unapplied = Job.objects.filter(team=team, outcome_applied_at__isnull=True).exists()
        return not open_jobs and not unapplied

    deadline = time.monotonic() + 240
    while not settled():
        assert time.monotonic() < deadline, json.dumps(
            list(Job.objects.filter(team=team).values("id", "kind", "state", "state_detail", "attempts")), default=str
        )
        time.sleep(0.5)

    jobs = list(Job.objects.filter(team=team).order_by("pk"))
    lost: list[str] = []
    duplicated: list[str] = []
    for job in jobs:
        ends = _finishes(job)
        if ends == 0:
            lost.append(f"job {job.pk} ({job.kind}) never recorded as ended")
        if ends > 1:
            duplicated.append(f"job {job.pk} ({job.kind}) recorded as ended {ends} times")
        if job.state == JobState.FAILED:
            assert job.state_detail, f"job {job.pk} failed without a reason"
        if job.kind == JobKind.TRAIN and job.state == JobState.SUCCEEDED:
            versions = VersionTag.objects.filter(key="modelgate.job", value=str(job.pk)).count()
            if versions == 0 or job.result.get("version") is None:
                lost.append(f"training job {job.pk} succeeded but registered no version: {job.state_detail}")
            if versions > 1:
                duplicated.append(f"training job {job.pk} registered {versions} versions")
        if job.kind == JobKind.EVALUATE:
            rows = Evaluation.objects.filter(job=job).count()
            expected = len(job.spec["params"]["versions"]) if job.state == JobState.SUCCEEDED else 0
            if rows < expected:
                lost.append(f"evaluation job {job.pk}: {rows} of {expected} results recorded")
            if rows > expected:
                duplicated.append(f"evaluation job {job.pk}: {rows} results for {expected} versions")
        if job.kind == JobKind.BATCH_INFER and job.state == JobState.SUCCEEDED and job.result.get("job") != job.pk:
            lost.append(f"command job {job.pk} succeeded without its result")
    versions = list(ModelVersion.objects.filter(model=model))
    evaluations_asked = Counter(j.version_id for j in jobs if j.kind == JobKind.EVALUATE and j.version_id is not None)
    for version in versions:
        if evaluations_asked[version.pk] != 1:
            duplicated.append(f"v{version.version} was sent to evaluation {evaluations_asked[version.pk]} times")
    in_mlflow = MlflowClient(live_services.url).search_model_versions(f"name='{model.name}'")
    if len(in_mlflow) != len(versions):
        duplicated.append(f"MLflow has {len(in_mlflow)} versions, ModelGate {len(versions)}")

    survived = sum(1 for kill in kills if _finishes(Job.objects.get(pk=kill.job)) == 1)
    states = Counter(job.state for job in jobs)
    kinds = Counter(job.kind for job in jobs)
    print(
        f"[chaos] {request.node.callspec.id}: kills {len(kills)}, kills survived {survived}, "
        f"jobs lost {len(lost)}, jobs duplicated {len(duplicated)}; jobs {dict(kinds)}, ends {dict(states)}, "
        f"versions {len(versions)}, {time.monotonic() - started:.0f}s"
    )
    for job in jobs:
        if job.state != JobState.SUCCEEDED:
            print(f"[chaos]   job {job.pk} ({job.kind}) {job.state} after {job.attempts} attempts: {job.state_detail}")
    assert not lost, lost
    assert not duplicated, duplicated
    assert survived == len(kills) == target_kills
    assert kinds[JobKind.TRAIN] == trainings
