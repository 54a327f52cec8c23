"""Fixtures of the security tests: every kind of caller, and one object of each kind of
team fraud, so that every operation of the API has something to act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

JOB_SPEC = {"entrypoint": ["python", "train.py"], "resources": {"cpus": 1, "memory_mb": 512}}


@pytest.fixture(autouse=True)
def no_scheduling_pass(monkeypatch) -> None:
    """Jobs stay queued: the matrix asks who may submit them, not where they run."""
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


@pytest.fixture
def local_mlflow(settings) -> None:
    """The test process's own MLflow store, with versions 1 and 2 of fraud-detector."""
    from registry import mlflow_gateway
    from tests.registry.factories import artifact_write

    var = Path(settings.VAR_DIR)
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{var / 'mlflow.sqlite3'}"
    client = mlflow_gateway.client()
    artifacts = var / "mlflow-artifacts"
    if client.get_experiment_by_name(mlflow_gateway.IMPORT_EXPERIMENT) is None:
        client.create_experiment(mlflow_gateway.IMPORT_EXPERIMENT, artifact_location=artifacts.as_uri())
    placeholder = artifact_write(artifacts / "placeholder")
    mlflow_gateway.registered_model_ensure("fraud-detector")
    for _ in range(len(mlflow_gateway.model_versions("fraud-detector")), 2):
        client.create_model_version("fraud-detector", source=str(placeholder), run_id=None)


@pytest.fixture
def callers(db, viewer, owner, approver, fraud_admin, outsider) -> dict[str, Any]:
    from datetime import timedelta

    from rest_framework.test import APIClient

    from registry.choices import TokenScope
    from tests.registry.factories import actor_create

    def through(**token: Any) -> APIClient:
        return actor_create("fraud-admin", user=fraud_admin.user, **token).client

    return {
        "none": APIClient(),
        "viewer": viewer.client,
        "developer": owner.client,
        "approver": approver.client,
        "admin": fraud_admin.client,
        "other_team_admin": outsider.client,
        "expired": through(expires_in=timedelta(seconds=-1)),
        "read_scope": through(scopes=[TokenScope.READ]),
        "serve_scope": through(scopes=[TokenScope.SERVE]),
    }


@pytest.fixture
def fraud_world(db, local_mlflow, owner, fraud_admin, tmp_path) -> dict[str, str]:
    """Team fraud's objects, one of each kind an operation names, and their ids: versions
    1 (production, with artifacts) and 2 (staging), alias ``candidate``, a dataset, a
    pending promotion requested by a developer who is not in the cast, a deployment, an
    alert, a job, a webhook with a delivery."""
    from django.utils import timezone

    from lifecycle.deployments.services import deployment_create
    from lifecycle.governance.models import WebhookDelivery
    from lifecycle.governance.services.transitions import transition_request
    from lifecycle.governance.services.webhooks import webhook_create
    from lifecycle.jobs.services import job_submit
    from lifecycle.monitoring.models.alerts import Alert
    from registry.choices import Stage
    from registry.models import RegisteredModel
    from registry.services import model_create, team_ensure
    from tests.registry.factories import actor_create, alias_create, artifact_write, dataset_row_create, version_create

    team = team_ensure(name="fraud")
    requester = actor_create("requester", {"fraud": "developer"})
    model = model_create(
        actor=owner.user,
        name="fraud-detector",
        team=team,
        description="flags fraudulent card payments",
        primary_metric="f1",
        policy={
            "rules": [
                {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.5},
                {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]},
            ]
        },
    )
    first = version_create(
        model=model, stage=Stage.PRODUCTION, metrics={"f1": 0.91}, artifact_dir=artifact_write(tmp_path / "v1")
    )
    second = version_create(
        model=model, stage=Stage.STAGING, metrics={"f1": 0.93}, artifact_dir=artifact_write(tmp_path / "v2")
    )
    alias_create(version=first, name="candidate")
    dataset = dataset_row_create(team=team, name="fraud-eval")
    transition = transition_request(version=second, to=Stage.PRODUCTION, reason="better f1", actor=requester.user)
    assert transition.status == "pending", transition.status
    webhook = webhook_create(actor=fraud_admin.user, team=team, url="http://127.0.0.1:9/hook")
    deployment = deployment_create(actor=owner.user, model=RegisteredModel.objects.get(pk=model.pk), version=1)
    job = job_submit(actor=owner.user, team=team, kind="train", spec=JOB_SPEC)
    now = timezone.now()
    alert = Alert.objects.create(
        model=model,
        version=first,
        rule_index=0,
        rule={"type": "matrix"},
        dedup_key="matrix",
        fired_at=now,
        last_fired_at=now,
    )
    delivery = WebhookDelivery.objects.filter(webhook=webhook).first()
    assert delivery is not None, "the deployment's event should have been queued for the webhook"
    return {
        "model": model.name,
        "version": "1",
        "alias": "candidate",
        "dataset": str(dataset.pk),
        "transition": str(transition.pk),
        "webhook": str(webhook.pk),
        "delivery": str(delivery.delivery_id),
        "deployment": str(deployment.pk),
        "alert": str(alert.pk),
        "job": str(job.pk),
        "artifact": str(artifact_write(tmp_path / "upload")),
    }
