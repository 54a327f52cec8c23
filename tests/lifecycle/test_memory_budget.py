"""The ``max_memory_mb`` gate judged by the server: a transition of a version whose
measured peak memory is over the budget is blocked with the figure, one within it goes
through, and one never measured is blocked asking for an evaluation."""

from __future__ import annotations

import pytest

from registry.choices import MetricSource, Stage
from registry.models import ModelVersion
from registry.services import metrics_record, model_update
from tests.conftest import Actor
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db

BUDGET = {"rules": [{"type": "max_memory_mb", "value": 256, "stages": ["staging"]}]}


@pytest.fixture
def budgeted(fraud_model, approver: Actor):
    return model_update(actor=approver.user, model=fraud_model, changes={"policy": BUDGET}, reason="memory budget")


def _measured(model, peak_mb: float | None) -> ModelVersion:
    version = version_create(model=model, stage=Stage.EVALUATION)
    figures = {"latency_p95_ms": 0.4} if peak_mb is None else {"latency_p95_ms": 0.4, "peak_memory_mb": peak_mb}
    metrics_record(version=version, metrics=figures, source=MetricSource.EVALUATION, dataset_digest="ab" * 32)
    return version


def _request(actor: Actor, version: ModelVersion) -> dict:
    response = actor.client.post(
        f"/api/v1/models/{version.model.name}/versions/{version.version}/transitions/",
        {"to": "staging", "reason": "ready"},
        format="json",
    )
    assert response.status_code in (200, 201), response.json()
    return response.json()


def test_a_version_over_the_memory_budget_is_blocked_with_its_peak_memory(budgeted, owner: Actor):
    version = _measured(budgeted, 300.5)

    body = _request(owner, version)

    assert body["status"] == "blocked"
    (gate,) = body["gates"]
    assert gate["rule"] == "max_memory_mb" and gate["status"] == "failed"
    assert gate["detail"] == "peak memory 300.5 MB is over the limit 256 MB"
    assert gate["data"] == {"metric": "peak_memory_mb", "max_mb": 256, "value_mb": 300.5}
    assert "max_memory_mb: peak memory 300.5 MB is over the limit 256 MB" in body["status_detail"]
    assert ModelVersion.objects.get(pk=version.pk).stage == Stage.EVALUATION


def test_a_version_within_the_memory_budget_moves_on(budgeted, owner: Actor):
    version = _measured(budgeted, 41.0)

    body = _request(owner, version)

    assert body["status"] == "applied"
    assert body["gates"][0]["detail"] == "peak memory 41 MB is within 256 MB"
    assert ModelVersion.objects.get(pk=version.pk).stage == Stage.STAGING


def test_a_version_never_measured_is_blocked_asking_for_an_evaluation(budgeted, owner: Actor):
    version = _measured(budgeted, None)

    body = _request(owner, version)

    assert body["status"] == "blocked"
    (gate,) = body["gates"]
    assert gate["needs"] == "evaluation" and gate["data"]["value_mb"] is None
    assert "no peak memory measured" in gate["detail"]


def test_a_bad_memory_budget_is_a_400_naming_the_field(fraud_model, approver: Actor):
    response = approver.client.patch(
        f"/api/v1/models/{fraud_model.name}/",
        {"policy": {"rules": [{"type": "max_memory_mb", "value": -5}]}},
        format="json",
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"] == {"policy.rules[0].value": "value must be > 0, got -5"}
