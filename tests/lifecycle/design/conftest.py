"""Fixtures of the design stage's tests: a model in design, the team's datasets, a
complete card."""

from __future__ import annotations

import copy

import pytest

from tests.registry.factories import dataset_row_create

COMPLETE_CARD = {
    "intended_use": "Flag card payments likely to be fraudulent for manual review.",
    "out_of_scope_uses": ["credit decisions", "blocking payments without review"],
    "owner": "payments-risk@example.com",
    "task": "classification",
    "input_schema": [{"name": "amount", "type": "double"}, {"name": "country", "type": "string"}],
    "output_schema": [{"name": "fraud_probability", "type": "double"}],
    "datasets": [{"name": "payments-2025", "role": "training"}, {"name": "holdout", "role": "evaluation"}],
    "success_criteria": [{"metric": "f1", "op": ">=", "value": 0.9}, {"metric": "auc", "op": ">=", "value": 0.95}],
    "risks": ["false positives delay honest customers"],
    "fairness": "Recall is compared across card-issuing countries at each evaluation.",
    "resource_budget": {"latency_p95_ms": 5, "memory_mb": 512, "artifact_mb": 20},
}


@pytest.fixture
def complete_card() -> dict:
    return copy.deepcopy(COMPLETE_CARD)


@pytest.fixture
def fraud_datasets(owner):
    from registry.services import team_ensure

    team = team_ensure(name="fraud")
    return [dataset_row_create(team=team, name=name) for name in ("payments-2025", "holdout")]


@pytest.fixture
def design_model(owner, fraud_datasets):
    """A model created in the design stage, through the API as a CI pipeline would."""
    from registry.models import RegisteredModel

    response = owner.client.post(
        "/api/v1/models/",
        {"name": "fraud-v2", "team": "fraud", "description": "next fraud model", "stage": "design"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["stage"] == "design"
    return RegisteredModel.objects.get(name="fraud-v2")
