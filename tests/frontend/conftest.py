"""Fixtures of the web UI's tests: a model with a gated promotion policy whose versions
are ORM rows (no MLflow), metrics recorded through ``metrics_record``, and requests made
through the same services the pages call.

The story every test starts from (``story``): v1 went to production through an approved
request; v2 (staging, f1 0.93 against v1's 0.90) waits for approval to go to production;
v3 (evaluation, f1 0.50) was blocked by the threshold on its way to staging.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from lifecycle.models import Transition
from lifecycle.services.transitions import transition_approve, transition_request
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


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    # Every test creates a cast of users; the default PBKDF2 would cost ~0.3 s per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
