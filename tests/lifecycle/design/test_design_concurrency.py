"""Concurrent edits of one model card on real PostgreSQL: of many saves made on the same
revision exactly one wins and every other is told the card moved on; of many completions
exactly one moves the model out of design. The audit chain stays valid."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from lifecycle.design.models import DesignCardRevision
from lifecycle.governance.models import AuditRecord
from lifecycle.governance.services.audit import audit_verify
from registry.models import RegisteredModel
from tests.conftest import require_service
from tests.environment import POSTGRES_AVAILABLE
from tests.lifecycle.test_concurrency import client_of, race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 8


@pytest.fixture(autouse=True)
def on_postgres() -> None:
    require_service("PostgreSQL", POSTGRES_AVAILABLE and connection.vendor == "postgresql")


def _answer(response) -> str:
    assert not isinstance(response, BaseException), repr(response)
    if response.status_code == 200:
        return "200"
    assert response.status_code == 409, (response.status_code, response.json())
    return response.json()["error"]["code"]


def test_of_many_saves_on_one_revision_exactly_one_wins(design_model, owner, complete_card):
    calls = []
    for i in range(THREADS):
        client = client_of(owner)
        body = {"card": {**complete_card, "owner": f"writer-{i}@example.com"}, "revision": 0}
        calls.append(
            lambda client=client, body=body: client.put("/api/v1/models/fraud-v2/design/", body, format="json")
        )
    counts = Counter(_answer(response) for response in race(calls))
    assert counts == {"200": 1, "stale_revision": THREADS - 1}
    assert list(DesignCardRevision.objects.values_list("number", flat=True)) == [1]
    assert AuditRecord.objects.filter(action="design.card_update").count() == 1
    assert audit_verify().valid


def test_of_many_completions_exactly_one_leaves_design(design_model, owner, complete_card):
    owner.client.put("/api/v1/models/fraud-v2/design/", {"card": complete_card, "revision": 0}, format="json")
    calls = []
    for _ in range(THREADS):
        client = client_of(owner)
        calls.append(lambda client=client: client.post("/api/v1/models/fraud-v2/design/complete/", {}, format="json"))
    counts = Counter(_answer(response) for response in race(calls))
    assert counts == {"200": 1, "not_in_design": THREADS - 1}
    assert RegisteredModel.objects.get(name="fraud-v2").stage == "active"
    assert AuditRecord.objects.filter(action="model.design_complete").count() == 1
    assert AuditRecord.objects.filter(action="model.policy_change", model_name="fraud-v2").count() == 1
    assert audit_verify().valid
