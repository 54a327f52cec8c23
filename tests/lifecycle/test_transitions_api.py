"""Edges of the transition endpoints: bad input, illegal moves, duplicates, stale
decisions, who may call what, the approvals inbox and ``Idempotency-Key``."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle.governance.models import Transition
from registry.choices import Stage
from registry.models import ModelVersion, RegisteredModel
from registry.services import metrics_record, model_create, model_update, team_ensure
from tests.conftest import Actor
from tests.registry.factories import actor_create, version_create

pytestmark = pytest.mark.django_db

DIGEST = "e" * 64
NEEDS_ONE_APPROVAL = {
    "rules": [
        {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8},
        {"type": "approvals", "count": 1, "stages": ["production"]},
    ]
}
NEEDS_TWO_APPROVALS = {"rules": [{"type": "approvals", "count": 2, "stages": ["production"]}]}


def evaluated(model: RegisteredModel, f1: float = 0.9, stage: str = Stage.EVALUATION) -> ModelVersion:
    """A version that has been through evaluation, with its f1 on the evaluation dataset."""
    version = version_create(model=model, stage=stage)
    metrics_record(version=version, metrics={"f1": f1}, source="evaluation", dataset_digest=DIGEST)
    return version


def policy_set(model: RegisteredModel, approver: Actor, policy: dict[str, Any]) -> None:
    model_update(actor=approver.user, model=model, changes={"policy": policy})


def request(actor: Actor, version: ModelVersion, to: str, reason: str = "ready", **headers: str) -> Any:
    return actor.client.post(
        f"/api/v1/models/{version.model.name}/versions/{version.version}/transitions/",
        {"to": to, "reason": reason},
        format="json",
        **headers,
    )


def verb(actor: Actor, transition_id: int, name: str, comment: str = "") -> Any:
    return actor.client.post(f"/api/v1/transitions/{transition_id}/{name}/", {"comment": comment}, format="json")


@pytest.fixture
def pending(owner: Actor, approver: Actor, fraud_model: RegisteredModel) -> dict[str, Any]:
    """A request by the owner to put an evaluated version in production, waiting for one approval."""
    policy_set(fraud_model, approver, NEEDS_ONE_APPROVAL)
    response = request(owner, evaluated(fraud_model), "production")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending"
    return response.json()


# --- bad input and illegal moves --------------------------------------------------------


def test_an_unknown_stage_is_a_400_naming_the_field(owner, fraud_model):
    response = request(owner, evaluated(fraud_model), "limbo")

    assert response.status_code == 400
    assert "to" in response.json()["error"]["details"]
    assert not Transition.objects.exists()


def test_an_unknown_field_in_the_request_is_a_400(owner, fraud_model):
    version = evaluated(fraud_model)
    response = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/{version.version}/transitions/",
        {"to": "staging", "priority": "high"},
        format="json",
    )

    assert response.status_code == 400
    assert "priority" in response.json()["error"]["details"]


def test_training_cannot_go_straight_to_production(owner, fraud_model):
    version = version_create(model=fraud_model, stage=Stage.TRAINING)

    response = request(owner, version, "production")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "invalid_transition"
    assert error["details"] == {"from": "training", "to": "production"}
    version.refresh_from_db()
    assert version.stage == Stage.TRAINING


def test_the_production_version_is_not_archived_by_request(owner, fraud_model):
    live = evaluated(fraud_model, stage=Stage.PRODUCTION)

    response = request(owner, live, "archived")

    assert response.status_code == 409
    assert "rollback" in response.json()["error"]["message"]


def test_an_unknown_version_is_a_404(owner, fraud_model):
    response = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/99/transitions/", {"to": "staging"}, format="json"
    )

    assert response.status_code == 404


def test_a_second_open_request_for_the_same_version_and_stage_is_a_409(owner, fraud_model, pending):
    version = ModelVersion.objects.get(model=fraud_model, version=pending["version"])

    response = request(owner, version, "production", reason="again")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "transition_open"
    assert error["details"] == {"transition": pending["id"]}
    assert Transition.objects.filter(version=version).count() == 1


def test_a_blocked_request_is_still_open_and_a_second_one_is_a_409(owner, fraud_model):
    low = evaluated(fraud_model, f1=0.5)
    first = request(owner, low, "staging")
    assert first.json()["status"] == "blocked"

    assert request(owner, low, "staging").status_code == 409


def test_a_decided_request_does_not_stop_a_new_one(owner, approver, fraud_model, pending):
    assert verb(approver, pending["id"], "reject", "not this week").status_code == 200
    version = ModelVersion.objects.get(model=fraud_model, version=pending["version"])

    again = request(owner, version, "production", reason="next week")

    assert again.status_code == 201
    assert again.json()["status"] == "pending"


def test_a_request_whose_gates_all_pass_without_approvals_is_applied_at_once(owner, fraud_model):
    version = evaluated(fraud_model, f1=0.95)

    response = request(owner, version, "staging")

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "applied"
    assert body["from_stage"] == "evaluation"
    assert body["to"] == "staging"
    assert body["requested_by"] == "owner"
    assert [(g["rule"], g["status"]) for g in body["gates"]] == [("metric_threshold", "passed")]
    assert body["decided_at"] is not None
    version.refresh_from_db()
    assert version.stage == Stage.STAGING


# --- approving and deciding -----------------------------------------------------------


def test_requester_cannot_approve_own_transition(owner, fraud_admin, fraud_model):
    """Not even an admin: the four-eyes rule holds for every role."""
    version = evaluated(fraud_model)
    policy_set(fraud_model, fraud_admin, NEEDS_ONE_APPROVAL)
    mine = request(fraud_admin, version, "production").json()

    response = verb(fraud_admin, mine["id"], "approve", "looks good to me")

    assert response.status_code == 403
    assert "requester" in response.json()["error"]["message"]
    assert Transition.objects.get(pk=mine["id"]).status == "pending"


def test_approving_twice_is_a_409(approver, fraud_model, pending):
    policy_set(fraud_model, approver, NEEDS_TWO_APPROVALS)
    first = verb(approver, pending["id"], "approve", "fine by me")
    assert first.status_code == 200
    assert first.json()["status"] == "pending"

    second = verb(approver, pending["id"], "approve", "really fine")

    assert second.status_code == 409
    assert second.json()["error"]["code"] == "already_decided"
    assert len(Transition.objects.get(pk=pending["id"]).decisions.all()) == 1


def test_approving_a_decided_transition_is_a_409(approver, fraud_admin, pending):
    assert verb(approver, pending["id"], "approve").json()["status"] == "applied"

    late = verb(fraud_admin, pending["id"], "approve", "me too")

    assert late.status_code == 409
    assert late.json()["error"]["code"] == "stale_state"


def test_rejecting_or_rechecking_a_decided_transition_is_a_409(owner, approver, fraud_admin, pending):
    assert verb(approver, pending["id"], "reject", "no").json()["status"] == "rejected"

    assert verb(fraud_admin, pending["id"], "reject").status_code == 409
    assert verb(owner, pending["id"], "recheck").status_code == 409
    assert verb(owner, pending["id"], "cancel").status_code == 409


def test_the_second_of_two_required_approvals_applies_the_transition(approver, fraud_admin, fraud_model, pending):
    policy_set(fraud_model, approver, NEEDS_TWO_APPROVALS)
    assert verb(approver, pending["id"], "approve").json()["status"] == "pending"

    response = verb(fraud_admin, pending["id"], "approve", "second pair of eyes")

    body = response.json()
    assert body["status"] == "applied"
    assert [(a["user"], a["decision"], a["role"]) for a in body["approvals"]] == [
        ("approver", "approve", "approver"),
        ("fraud-admin", "approve", "admin"),
    ]


# --- who may call what ------------------------------------------------------------------


def test_anonymous_callers_get_a_401(anonymous, fraud_model, pending):
    assert (
        anonymous.post(
            f"/api/v1/models/{fraud_model.name}/versions/1/transitions/", {"to": "staging"}, format="json"
        ).status_code
        == 401
    )
    assert anonymous.get("/api/v1/transitions/").status_code == 401
    assert anonymous.post(f"/api/v1/transitions/{pending['id']}/approve/").status_code == 401


def test_a_viewer_cannot_request_a_transition(viewer, fraud_model):
    response = request(viewer, evaluated(fraud_model), "staging")

    assert response.status_code == 403
    assert not Transition.objects.exists()


def test_an_outsider_gets_a_404_for_every_transition_endpoint(outsider, fraud_model, pending):
    assert request(outsider, evaluated(fraud_model), "staging").status_code == 404
    assert outsider.client.get(f"/api/v1/models/{fraud_model.name}/versions/1/transitions/").status_code == 404
    assert outsider.client.get(f"/api/v1/transitions/{pending['id']}/").status_code == 404
    for name in ("approve", "reject", "recheck", "cancel"):
        assert verb(outsider, pending["id"], name).status_code == 404, name
    assert Transition.objects.get(pk=pending["id"]).status == "pending"


@pytest.mark.parametrize("name", ["approve", "reject"])
def test_a_developer_cannot_decide_on_a_transition(pending, name):
    colleague = actor_create("colleague", {"fraud": "developer"})

    response = verb(colleague, pending["id"], name)

    assert response.status_code == 403
    assert Transition.objects.get(pk=pending["id"]).status == "pending"


@pytest.mark.parametrize("name", ["approve", "reject", "recheck", "cancel"])
def test_a_viewer_cannot_act_on_a_transition(viewer, pending, name):
    response = verb(viewer, pending["id"], name)

    assert response.status_code == 403
    assert Transition.objects.get(pk=pending["id"]).status == "pending"


def test_a_viewer_sees_the_transition(viewer, pending):
    response = viewer.client.get(f"/api/v1/transitions/{pending['id']}/")

    assert response.status_code == 200
    assert response.json()["status"] == "pending"


def test_only_the_requester_or_an_admin_may_cancel(owner, approver, fraud_admin, fraud_model, pending):
    assert verb(approver, pending["id"], "cancel").status_code == 403

    response = verb(fraud_admin, pending["id"], "cancel", "superseded")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["status_detail"] == "cancelled by fraud-admin: superseded"


# --- the approvals inbox ------------------------------------------------------------------


@pytest.fixture
def ads_pending(outsider: Actor) -> dict[str, Any]:
    """Team ads' own pending request, requested by its admin (the outsider to fraud)."""
    model = model_create(
        actor=outsider.user,
        name="ads-ctr",
        team=team_ensure(name="ads"),
        policy={"rules": [{"type": "approvals", "count": 1, "stages": ["production"]}]},
    )
    response = request(outsider, evaluated(model), "production")
    assert response.json()["status"] == "pending"
    return response.json()


def test_the_inbox_shows_only_pending_requests_of_visible_teams(
    owner, approver, outsider, fraud_model, pending, ads_pending
):
    applied = request(owner, evaluated(fraud_model, f1=0.95), "staging").json()
    assert applied["status"] == "applied"

    for_approver = approver.client.get("/api/v1/transitions/", {"status": "pending"}).json()["results"]
    for_outsider = outsider.client.get("/api/v1/transitions/", {"status": "pending"}).json()["results"]
    everything = approver.client.get("/api/v1/transitions/").json()["results"]

    assert [t["id"] for t in for_approver] == [pending["id"]]
    assert [t["id"] for t in for_outsider] == [ads_pending["id"]]
    assert {t["id"] for t in everything} == {pending["id"], applied["id"]}


def test_the_inbox_filters_by_model(approver, fraud_model, pending):
    assert len(approver.client.get("/api/v1/transitions/", {"model": fraud_model.name}).json()["results"]) == 1
    assert approver.client.get("/api/v1/transitions/", {"model": "ads-ctr"}).json()["results"] == []


def test_an_unknown_status_filter_is_a_400(approver):
    response = approver.client.get("/api/v1/transitions/", {"status": "waiting"})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"status": "unknown status"}


def test_an_unknown_query_parameter_of_the_inbox_is_a_400(approver):
    response = approver.client.get("/api/v1/transitions/", {"state": "pending"})

    assert response.status_code == 400
    assert "state" in response.json()["error"]["details"]


# --- Idempotency-Key ----------------------------------------------------------------------


def test_a_retried_request_with_the_same_idempotency_key_returns_the_first_answer(owner, fraud_model):
    version = evaluated(fraud_model, f1=0.95)

    first = request(owner, version, "staging", HTTP_IDEMPOTENCY_KEY="ci-run-7")
    retried = request(owner, version, "staging", HTTP_IDEMPOTENCY_KEY="ci-run-7")

    assert first.status_code == retried.status_code == 201
    assert retried["Idempotent-Replayed"] == "true"
    assert retried.json() == first.json()
    assert Transition.objects.filter(version=version).count() == 1


def test_the_same_idempotency_key_with_another_body_is_a_409(owner, fraud_model):
    version = evaluated(fraud_model, f1=0.95)
    assert request(owner, version, "staging", HTTP_IDEMPOTENCY_KEY="ci-run-8").status_code == 201

    reused = request(owner, version, "production", HTTP_IDEMPOTENCY_KEY="ci-run-8")

    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert Transition.objects.filter(version=version).count() == 1


def test_a_refused_request_is_not_kept_for_replay(owner, approver, fraud_model, pending):
    """A 409 is not replayed: once the open request is gone, the same key and body go through."""
    version = ModelVersion.objects.get(model=fraud_model, version=pending["version"])
    assert request(owner, version, "production", HTTP_IDEMPOTENCY_KEY="ci-run-9").status_code == 409
    verb(approver, pending["id"], "reject")

    retried = request(owner, version, "production", HTTP_IDEMPOTENCY_KEY="ci-run-9")

    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
