"""Fixtures of the registry's API tests: a second team with its own objects, the rest of
the cast (superuser, read-only, expired and revoked tokens) and the local MLflow store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from registry import mlflow_gateway
from registry.choices import Stage, TokenScope
from registry.models import Dataset, RegisteredModel
from registry.services import team_ensure
from tests.conftest import Actor
from tests.registry.factories import (
    actor_create,
    alias_create,
    artifact_write,
    dataset_row_create,
    model_row_create,
    version_create,
)


@pytest.fixture
def superuser(db) -> Actor:
    return actor_create("root", superuser=True)


@pytest.fixture
def read_only(fraud_admin: Actor) -> Actor:
    """The fraud admin through a token that has only the ``read`` scope."""
    return actor_create("fraud-admin", scopes=[TokenScope.READ], user=fraud_admin.user)


@pytest.fixture
def expired(owner: Actor) -> Actor:
    return actor_create("owner", expires_in=timedelta(seconds=-1), user=owner.user)


@pytest.fixture
def revoked(owner: Actor) -> Actor:
    return actor_create("owner", revoked=True, user=owner.user)


@dataclass
class TeamObjects:
    """One team's model (versions 1 in production and 2 in staging, alias ``candidate`` on
    version 1) and dataset."""

    team: str
    model: RegisteredModel
    dataset: Dataset


def _objects_of(team_name: str, model: RegisteredModel, artifacts: Path) -> TeamObjects:
    team = team_ensure(name=team_name)
    first = version_create(
        model=model,
        stage=Stage.PRODUCTION,
        metrics={"f1": 0.91},
        tags={"framework": "sklearn"},
        artifact_dir=artifact_write(artifacts / team_name / "v1"),
    )
    version_create(model=model, stage=Stage.STAGING, metrics={"f1": 0.93})
    alias_create(version=first, name="candidate")
    return TeamObjects(team_name, model, dataset_row_create(team=team, name=f"{team_name}-eval"))


@pytest.fixture
def fraud_objects(fraud_model: RegisteredModel, tmp_path: Path) -> TeamObjects:
    return _objects_of("fraud", fraud_model, tmp_path / "artifacts")


@pytest.fixture
def ads_objects(outsider: Actor, tmp_path: Path) -> TeamObjects:
    model = model_row_create(team=team_ensure(name="ads"), name="ads-ctr", tags={"domain": "ads"})
    return _objects_of("ads", model, tmp_path / "artifacts")


@pytest.fixture
def mlflow_store(settings) -> MlflowClient:
    """The test process's own MLflow store (SQLite in its scratch directory, no server),
    holding versions 1 and 2 of both teams' models, so that aliases can be set, and an
    import experiment whose artifacts stay in that scratch directory.

    The store outlives each test's database transaction, so this only adds what is missing.
    """
    var = Path(settings.VAR_DIR)
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{var / 'mlflow.sqlite3'}"
    client = mlflow_gateway.client()
    artifacts = var / "mlflow-artifacts"
    if client.get_experiment_by_name(mlflow_gateway.IMPORT_EXPERIMENT) is None:
        client.create_experiment(mlflow_gateway.IMPORT_EXPERIMENT, artifact_location=artifacts.as_uri())
    placeholder = artifact_write(artifacts / "placeholder")
    for name in ("fraud-detector", "ads-ctr"):
        mlflow_gateway.registered_model_ensure(name)
        for _ in range(len(mlflow_gateway.model_versions(name)), 2):
            client.create_model_version(name, source=str(placeholder), run_id=None)
    return client
