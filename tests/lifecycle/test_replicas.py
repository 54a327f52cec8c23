"""Replicas are real processes: MLflow's own scoring server for a logged scikit-learn
model, launched by a real Celery job worker as a ``deploy`` job that the scheduler
placed, verified against the artifact's recorded digest before anything is served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from lifecycle.deployments import services
from lifecycle.deployments.choices import DeploymentState, ReplicaState
from lifecycle.deployments.models import Deployment, Replica
from lifecycle.deployments.routing import parse_route_table
from lifecycle.deployments.selectors import route_table_document
from lifecycle.jobs.choices import JobKind, JobState
from lifecycle.jobs.models import Job
from registry.choices import Stage
from tests.conftest import require_service
from tests.lifecycle.workers import drive_scheduler, wait_for
from tests.registry.factories import version_create

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("workers"), pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sklearn_model_dir(tmp_path_factory) -> tuple[Path, Any, list[int]]:
    """A logistic regression on the breast-cancer data, saved in MLflow's format with a signature."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    model = LogisticRegression(max_iter=5000).fit(frame, data.target)
    path = tmp_path_factory.mktemp("replica-model") / "model"
    mlflow.sklearn.save_model(model, path, signature=infer_signature(frame, data.target))
    rows = frame.head(5)
    return path, rows, model.predict(rows).tolist()


def _predict(url: str, rows) -> list[int]:
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split")}).encode()
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["predictions"]


def _no_failed_job() -> bool:
    failed = Job.objects.filter(kind=JobKind.DEPLOY, state=JobState.FAILED).first()
    if failed is not None:
        log = "".join(failed.log_chunks.values_list("text", flat=True))
        raise AssertionError(f"replica job {failed.pk} failed: {failed.state_detail}\n{log[-3000:]}")
    return True


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_deployment_runs_real_scoring_servers_on_a_worker_and_stops_them(
    start_workers, approver, owner, fraud_model, sklearn_model_dir
):
    path, rows, expected = sklearn_model_dir
    version = version_create(model=fraud_model, stage=Stage.STAGING, artifact_dir=path)
    start_workers(("serve-1", "none", 0.1))

    deployment = services.deployment_create(actor=owner.user, model=fraud_model, version=version.version, replicas=2)
    wait_for(
        lambda: (
            _no_failed_job() and Replica.objects.filter(deployment=deployment, state=ReplicaState.READY).count() == 2
        ),
        timeout=180,
        what="two ready replicas",
        tick=drive_scheduler,
    )

    assert Deployment.objects.get(pk=deployment.pk).state == DeploymentState.READY
    table = parse_route_table(route_table_document())
    route = table.deployment_for(fraud_model.name).primary
    assert route.version == version.version and len(route.replicas) == 2
    for replica in route.replicas:
        assert _predict(replica.url, rows) == expected
    jobs = list(Job.objects.filter(kind=JobKind.DEPLOY))
    assert {j.state for j in jobs} == {JobState.RUNNING}
    assert all(j.assignment[0]["worker"] == "serve-1" for j in jobs)

    services.deployment_stop(actor=approver.user, deployment=deployment, reason="test over")
    wait_for(
        lambda: set(Job.objects.filter(kind=JobKind.DEPLOY).values_list("state", flat=True)) == {JobState.CANCELLED},
        timeout=60,
        what="the replicas' jobs to stop",
        tick=drive_scheduler,
    )
    for replica in route.replicas:
        with pytest.raises(OSError):
            _predict(replica.url, rows)


def _run_replica_program(replica: Replica, workdir: Path) -> subprocess.CompletedProcess:
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "MODELGATE_PARAMS": json.dumps({"replica": replica.pk}),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "lifecycle.deployments.replica"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_replica_whose_artifact_does_not_match_its_digest_fails_with_the_reason(
    owner, fraud_model, sklearn_model_dir, tmp_path
):
    import shutil

    # The replica program reaches the test database from its own process.
    require_service("PostgreSQL", connection.vendor == "postgresql")
    path, _, _ = sklearn_model_dir
    copy = tmp_path / "model"
    shutil.copytree(path, copy)
    version = version_create(model=fraud_model, stage=Stage.STAGING, artifact_dir=copy)
    deployment = services.deployment_create(actor=owner.user, model=fraud_model, version=version.version)
    weights = max((f for f in copy.rglob("*") if f.is_file() and f.name != "MLmodel"), key=lambda f: f.stat().st_size)
    weights.write_bytes(weights.read_bytes() + b"tampered")
    replica = Replica.objects.get(deployment=deployment)
    workdir = tmp_path / "work"
    workdir.mkdir()

    started = time.monotonic()
    finished = _run_replica_program(replica, workdir)

    assert finished.returncode != 0
    replica.refresh_from_db()
    assert replica.state == ReplicaState.FAILED
    assert "does not match the digest" in replica.state_detail
    assert replica.url == ""
    assert not (workdir / "model" / weights.name).exists()
    assert time.monotonic() - started < 60
