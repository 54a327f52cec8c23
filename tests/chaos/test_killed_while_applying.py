"""A worker killed at the worst moment: after it claimed a finished training job's
result and registered the version, before it sent the version to evaluation. The claim
dies with it, so the reaper applies the result again: one version (the one the dead try
created in MLflow, adopted), sent to evaluation once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import mlflow
import pytest
from django.db import connection
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from lifecycle.jobs.choices import JobKind, JobState
from lifecycle.jobs.models import Job
from lifecycle.jobs.outcomes import job_outcome_apply
from lifecycle.jobs.runner import Outcome
from lifecycle.jobs.services import job_finish, jobs_with_unapplied_outcome
from lifecycle.training.services import training_submit
from registry.models import ModelVersion
from tests.chaos.conftest import ROOT
from tests.chaos.test_worker_kills import _model

pytestmark = [
    pytest.mark.services,
    pytest.mark.postgres,
    pytest.mark.xdist_group("chaos"),
    pytest.mark.django_db(transaction=True),
]

# Applies job N's result in a process of its own that SIGKILLs itself just before the
# version is sent to evaluation (the last step of applying a training result).
DIE_WHILE_APPLYING = textwrap.dedent(
    """
    import os, signal, sys
    import django
    django.setup()
    from lifecycle.training import services
    services.evaluation_submit = lambda **_: os.kill(os.getpid(), signal.SIGKILL)
    from lifecycle.jobs.outcomes import job_outcome_apply
    job_outcome_apply(job_id=int(sys.argv[1]))
    """
)


def test_a_worker_killed_while_applying_a_result_leaves_it_to_the_reaper_which_applies_it_once(
    live_services, s3_endpoint, owner, settings
):
    model = _model(owner, s3_endpoint)
    data = load_breast_cancer()
    with mlflow.start_run() as run:
        estimator = LogisticRegression(max_iter=200).fit(data.data[:200], data.target[:200])
        mlflow.sklearn.log_model(estimator, name="model")
    job = training_submit(actor=owner.user, model=model, estimator="LogisticRegression")
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1)
    assert job_finish(
        job_id=job.pk, attempt=1, outcome=Outcome("succeeded", 0, {"run_id": run.info.run_id, "metrics": {}}, "", 1.0)
    )

    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "MLFLOW_TRACKING_URI": live_services.url,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint.url,
        "AWS_ENDPOINT_URL": s3_endpoint.url,
        "MODELGATE_ARTIFACT_ROOT": settings.MODELGATE_ARTIFACT_ROOT,
    }
    died = subprocess.run(
        [sys.executable, "-c", DIE_WHILE_APPLYING, str(job.pk)], cwd=ROOT, env=env, capture_output=True, timeout=300
    )
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-3000:]
    mlflow_versions = MlflowClient(live_services.url).search_model_versions(f"name='{model.name}'")
    assert len(mlflow_versions) == 1  # made by the dead try
    assert Job.objects.get(pk=job.pk).outcome_applied_at is None
    assert not ModelVersion.objects.filter(model=model).exists()

    assert jobs_with_unapplied_outcome(older_than_s=0) == [job.pk]
    job_outcome_apply(job_id=job.pk)  # what the reaper does
    job_outcome_apply(job_id=job.pk)  # and a second reaper finds nothing to do

    assert list(ModelVersion.objects.filter(model=model).values_list("version", "stage")) == [(1, "evaluation")]
    assert len(MlflowClient(live_services.url).search_model_versions(f"name='{model.name}'")) == 1
    assert Job.objects.get(pk=job.pk).result["version"] == 1
    assert Job.objects.filter(kind=JobKind.EVALUATE, version__model=model).count() == 1
