"""``Idempotency-Key`` on creating calls: a CI retry gets the first answer, not a duplicate."""

from __future__ import annotations

import pytest

from registry.models import Dataset, IdempotencyRecord, RegisteredModel

pytestmark = pytest.mark.django_db

CREATES = [
    pytest.param(
        "/api/v1/models/",
        {"name": "churn-predictor", "team": "fraud", "tags": {"domain": "retention"}},
        {"name": "churn-predictor", "team": "fraud", "tags": {"domain": "payments"}},
        RegisteredModel,
        id="models",
    ),
    pytest.param(
        "/api/v1/datasets/",
        {"name": "iris-eval", "team": "fraud", "uri": "builtin:iris", "target": "target"},
        {"name": "iris-eval", "team": "fraud", "uri": "builtin:wine", "target": "target"},
        Dataset,
        id="datasets",
    ),
]


@pytest.mark.parametrize(("url", "body", "other_body", "table"), CREATES)
def test_the_same_key_and_body_replays_the_first_response_and_creates_once(owner, url, body, other_body, table):
    first = owner.client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="ci-run-81")
    retry = owner.client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="ci-run-81")

    assert first.status_code == 201, first.json()
    assert "Idempotent-Replayed" not in first
    assert retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert table.objects.filter(name=body["name"]).count() == 1


@pytest.mark.parametrize(("url", "body", "other_body", "table"), CREATES)
def test_the_same_key_with_another_body_is_a_409(owner, url, body, other_body, table):
    owner.client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="ci-run-82")

    reused = owner.client.post(url, other_body, format="json", HTTP_IDEMPOTENCY_KEY="ci-run-82")

    assert reused.status_code == 409, reused.json()
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert table.objects.filter(name=body["name"]).count() == 1


def test_a_key_used_on_another_endpoint_is_a_409(owner):
    owner.client.post(
        "/api/v1/models/", {"name": "churn-predictor", "team": "fraud"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )

    reused = owner.client.post(
        "/api/v1/datasets/",
        {"name": "churn-predictor", "team": "fraud", "uri": "builtin:iris"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )

    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert not Dataset.objects.exists()


def test_keys_belong_to_their_user(owner, approver):
    body = {"name": "churn-predictor", "team": "fraud"}
    owner.client.post("/api/v1/models/", body, format="json", HTTP_IDEMPOTENCY_KEY="shared")

    other = approver.client.post("/api/v1/models/", body, format="json", HTTP_IDEMPOTENCY_KEY="shared")

    # Not a replay of the owner's answer: the approver's own attempt, a duplicate name.
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "conflict"
    assert "Idempotent-Replayed" not in other


def test_without_a_key_a_retry_is_a_duplicate(owner):
    body = {"name": "churn-predictor", "team": "fraud"}

    assert owner.client.post("/api/v1/models/", body, format="json").status_code == 201
    assert owner.client.post("/api/v1/models/", body, format="json").status_code == 409
    assert not IdempotencyRecord.objects.exists()
