"""Fixtures of the web UI's tests: a model with a gated promotion policy whose versions
are ORM rows (no MLflow), metrics recorded through ``metrics_record``, and requests made
through the same services the pages call. Jobs are submitted with ``job_submit`` (no
scheduling pass reaches a broker), workers registered with ``worker_register``, and
evaluations are rows whose report is a local directory of PNG plots.

The story every test starts from (``story``): v1 went to production through an approved
request; v2 (staging, f1 0.93 against v1's 0.90) waits for approval to go to production;
v3 (evaluation, f1 0.50) was blocked by the threshold on its way to staging.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from lifecycle.evaluation.models import Evaluation
from lifecycle.governance.models import Transition
from lifecycle.governance.services.transitions import transition_approve, transition_request
from lifecycle.jobs import dispatch as job_dispatch
from lifecycle.jobs.choices import JobState
from lifecycle.jobs.inventory import Gpu, Inventory
from lifecycle.jobs.models import Job, Worker
from lifecycle.jobs.services import job_submit, worker_register
from registry.choices import MetricSource, Stage
from registry.models import Dataset, ModelVersion, RegisteredModel
from registry.services import metrics_record, model_create, team_ensure
from tests.conftest import Actor
from tests.registry.factories import dataset_row_create, version_create

DIGEST = "d" * 64
GATED_POLICY = {
    "rules": [
        {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8, "stages": ["staging", "production"]},
        {"type": "beats_champion", "metric": "f1", "min_delta": 0.0, "stages": ["production"]},
        {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]},
    ]
}


def password_of(actor: Actor) -> str:
    """The password ``tests.conftest`` gives each member of the cast."""
    return f"pw-{actor.user.get_username()}-123!"


def client_for(actor: Actor, **options: object) -> Client:
    client = Client(**options)
    client.force_login(actor.user)
    return client


def evaluated_version(
    *, model: RegisteredModel, stage: str, f1: float, creator: object, parent: ModelVersion | None = None
) -> ModelVersion:
    """A version row with an evaluation of f1 and accuracy on the model's dataset."""
    version = version_create(model=model, stage=stage, created_by=creator, run_id=f"run{stage[:4]}{int(f1 * 100)}")
    if parent is not None or model.dataset_id:
        version.parent = parent
        version.dataset = model.dataset
        version.save(update_fields=["parent", "dataset"])
    metrics_record(
        version=version,
        metrics={"f1": f1, "accuracy": f1 + 0.02},
        source=MetricSource.EVALUATION,
        dataset_digest=DIGEST,
    )
    return version


@dataclass
class Story:
    model: RegisteredModel
    dataset: Dataset
    v1: ModelVersion
    v2: ModelVersion
    v3: ModelVersion
    pending: Transition
    blocked: Transition


def story_create(*, owner: Actor, approver: Actor) -> Story:
    team = team_ensure(name="fraud")
    dataset = dataset_row_create(team=team, name="fraud-eval")
    dataset.digest = DIGEST
    dataset.save(update_fields=["digest"])
    model = model_create(
        actor=owner.user,
        name="fraud-detector",
        team=team,
        description="flags fraudulent card payments",
        primary_metric="f1",
        policy=GATED_POLICY,
        dataset=dataset.name,
        tags={"domain": "payments"},
    )
    v1 = evaluated_version(model=model, stage=Stage.STAGING, f1=0.90, creator=owner.user)
    first = transition_request(version=v1, to=Stage.PRODUCTION, reason="first release", actor=owner.user)
    transition_approve(transition=first, actor=approver.user, comment="looks good")
    v2 = evaluated_version(model=model, stage=Stage.STAGING, f1=0.93, creator=owner.user, parent=v1)
    pending = transition_request(version=v2, to=Stage.PRODUCTION, reason="better recall on Q3 data", actor=owner.user)
    v3 = evaluated_version(model=model, stage=Stage.EVALUATION, f1=0.50, creator=owner.user, parent=v2)
    blocked = transition_request(version=v3, to=Stage.STAGING, reason="try the small model", actor=owner.user)
    for version in (v1, v2, v3):
        version.refresh_from_db()
    assert pending.status == "pending", pending.status_detail
    assert blocked.status == "blocked", blocked.status_detail
    return Story(model, dataset, v1, v2, v3, pending, blocked)


@pytest.fixture
def story(owner: Actor, approver: Actor) -> Story:
    return story_create(owner=owner, approver=approver)


# --- jobs, workers, evaluations ------------------------------------------------------

SMALL_SPEC = {"entrypoint": ["python", "train.py", "--epochs", "3"], "resources": {"cpus": 1, "memory_mb": 512}}
GPU_SPEC = {
    "entrypoint": ["python", "train.py"],
    "params": {"lr": 0.001},
    "resources": {"gpus": 1, "gpu_type": "A100", "cpus": 4, "memory_mb": 8000},
}


@pytest.fixture
def quiet_scheduler(monkeypatch) -> None:
    """Submitting a job or registering a worker kicks a scheduling pass after commit;
    here nothing is sent to a broker, and jobs move only as the test moves them."""
    monkeypatch.setattr(job_dispatch, "scheduler_kick", lambda: None)


def job_create(*, actor: Actor, model: RegisteredModel, version: ModelVersion | None = None, **extra: Any) -> Job:
    """A job submitted through ``job_submit`` as the actor, for the model's team."""
    return job_submit(
        actor=actor.user,
        team=model.team,
        kind=extra.pop("kind", "train"),
        spec=extra.pop("spec", SMALL_SPEC),
        model=model,
        version=version,
        **extra,
    )


def job_running(job: Job, *, worker: str = "gpu-1", gpus: tuple[int, ...] = (0,), started_s_ago: float = 95) -> Job:
    """The job as ``schedule_pass`` and ``job_start`` leave it: placed on the worker's
    GPUs and running (set through the ORM, as a worker would, without one)."""
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING,
        attempts=1,
        created_at=now - timedelta(seconds=started_s_ago + 30),
        assignment=[{"worker": worker, "gpus": list(gpus), "rank": 0}],
        strategy="least_loaded",
        scheduled_at=now - timedelta(seconds=started_s_ago + 2),
        started_at=now - timedelta(seconds=started_s_ago),
        state_detail="running",
        progress=0.25,
        cost_estimate=1.5,
    )
    return Job.objects.get(pk=job.pk)


def job_finished(job: Job, *, state: str = JobState.SUCCEEDED, result: Any = None) -> Job:
    Job.objects.filter(pk=job.pk).update(
        state=state,
        finished_at=timezone.now(),
        progress=1.0 if state == JobState.SUCCEEDED else job.progress,
        exit_code=0 if state == JobState.SUCCEEDED else 1,
        result=result,
        cost_actual=1.25,
        state_detail=f"{state} on attempt {job.attempts}",
    )
    return Job.objects.get(pk=job.pk)


def worker_create(name: str = "gpu-1", *, pool: str = "default", gpus: int = 1, labels: dict | None = None) -> Worker:
    """A worker as ``job_worker`` registers it: A100s of 40 GiB, 8 CPUs, 64000 MiB."""
    inventory = Inventory(
        gpus=tuple(Gpu(index, "A100", "A100", 40960) for index in range(gpus)),
        cpus=8,
        memory_mb=64000,
        labels=labels or {},
    )
    return worker_register(name=name, pool=pool, inventory=inventory, slots=2)


def png_write(path: Path, *, title: str = "ROC") -> Path:
    """A small real PNG plot, as the evaluator draws them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(3, 3), dpi=60)
    ax.plot([0, 0.1, 0.3, 1], [0, 0.6, 0.9, 1])
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set_title(title)
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluation_create(
    *, version: ModelVersion, report_dir: Path, champion: ModelVersion | None = None, job: Job | None = None
) -> Evaluation:
    """An evaluation of the version beside the champion, as ``job_outcome_apply``
    records one: metrics, interval, cross-validation, slices, deltas, and two plots
    written under ``report_dir``."""
    number = version.version
    plots = [f"v{number}_roc.png", f"v{number}_confusion_matrix.png"]
    png_write(report_dir / plots[0], title=f"v{number} ROC")
    png_write(report_dir / plots[1], title=f"v{number} confusion")
    return Evaluation.objects.create(
        version=version,
        job=job,
        role="candidate",
        dataset_digest=DIGEST,
        primary_metric="f1",
        metrics={
            "f1": 0.9312,
            "accuracy": 0.951,
            "roc_auc": 0.97,
            "confusion_matrix": {"labels": ["0", "1"], "matrix": [[180, 6], [8, 106]]},
        },
        details={
            "ci": {"f1": {"low": 0.9102, "high": 0.9488, "level": 0.95}},
            "cv": {"folds": 5, "metric": "f1", "mean": 0.9276, "std": 0.0114, "scores": [0.92, 0.93, 0.94, 0.91, 0.94]},
            "slices": [{"slice": "EU", "count": 180, "value": 0.94}, {"slice": "US", "count": 120, "value": 0.91}],
            "importance": [{"feature": "amount", "mean": 0.12, "std": 0.01}],
        },
        compared_with=champion,
        deltas={"f1": {"delta": 0.0312, "ci_low": 0.0105, "ci_high": 0.0498, "level": 0.95, "rounds": 200}}
        if champion
        else {},
        report_uri=str(report_dir),
        plots=plots,
    )
