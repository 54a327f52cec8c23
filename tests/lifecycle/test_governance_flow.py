"""Lifecycle governance end to end through the API: a version logged to a real MLflow
server climbs to production through its policy's gates and an approval, MLflow's
aliases follow after the relay, the audit trail records it and a webhook hears it; and
the other paths: blocked and rechecked, rejected, cancelled, staging, rollback and the
production history."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lifecycle.governance.models import AuditRecord, ProductionRecord, Transition
from lifecycle.governance.services.outbox import outbox_relay
from registry.choices import Stage
from registry.models import ModelVersion, RegisteredModel
from registry.services import metrics_record, model_update
from tests.conftest import Actor
from tests.lifecycle.test_outbox import WebhookReceiver, receiver_serving, trained_run, webhook_subscribe
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db

DIGEST = "a1" * 32  # the evaluation dataset's digest
GATED = {
    "rules": [
        {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.9, "stages": ["staging", "production"]},
        {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]},
    ]
}
THRESHOLD_ONLY = {"rules": [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.9}]}


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with receiver_serving() as receiver:
        yield receiver


def evaluate(version: ModelVersion, f1: float) -> None:
    """Record an evaluation of the version on the evaluation dataset."""
    metrics_record(version=version, metrics={"f1": f1}, source="evaluation", dataset_digest=DIGEST)


def evaluated(model: RegisteredModel, f1: float) -> ModelVersion:
    version = version_create(model=model, stage=Stage.EVALUATION)
    evaluate(version, f1)
    return version


def request(actor: Actor, model: RegisteredModel, number: int, to: str, reason: str = "ready") -> Any:
    return actor.client.post(
        f"/api/v1/models/{model.name}/versions/{number}/transitions/", {"to": to, "reason": reason}, format="json"
    )


def verb(actor: Actor, transition_id: int, name: str, comment: str = "") -> Any:
    return actor.client.post(f"/api/v1/transitions/{transition_id}/{name}/", {"comment": comment}, format="json")


def promote(owner: Actor, model: RegisteredModel, f1: float) -> ModelVersion:
    """A new version put in production through a request whose gates all pass."""
    version = evaluated(model, f1)
    response = request(owner, model, version.version, "production")
    assert response.json()["status"] == "applied", response.json()
    return version


def rollback(actor: Actor, model: RegisteredModel, **body: Any) -> Any:
    return actor.client.post(f"/api/v1/models/{model.name}/rollback/", body, format="json")


def alias_version(actor: Actor, model: RegisteredModel, alias: str) -> int | None:
    response = actor.client.get(f"/api/v1/models/{model.name}/aliases/{alias}/")
    return response.json()["version"] if response.status_code == 200 else None


def mlflow_alias(url: str, model: RegisteredModel, alias: str) -> str | None:
    try:
        return MlflowClient(url).get_model_version_by_alias(model.name, alias).version
    except MlflowException:
        return None


def stage_of(model: RegisteredModel, number: int) -> str:
    return ModelVersion.objects.get(model=model, version=number).stage


# --- the whole path, against a real MLflow server --------------------------------------------


@pytest.mark.services
@pytest.mark.xdist_group("mlflow")
def test_a_version_logged_to_mlflow_reaches_production_through_its_gates_and_an_approval(
    live_services, webhook_receiver, owner, approver, fraud_admin, fraud_model
):
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["transition.*"])
    changed = approver.client.patch(f"/api/v1/models/{fraud_model.name}/", {"policy": GATED}, format="json")
    assert changed.status_code == 200, changed.json()
    registered = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": trained_run()}, format="json"
    )
    assert registered.status_code == 201, registered.json()
    number = registered.json()["version"]
    evaluate(ModelVersion.objects.get(model=fraud_model, version=number), 0.94)

    assert request(owner, fraud_model, number, "evaluation").json()["status"] == "applied"
    staged = request(owner, fraud_model, number, "staging", reason="shadow traffic first")
    assert staged.json()["status"] == "applied", staged.json()
    outbox_relay()
    assert mlflow_alias(live_services.url, fraud_model, "challenger") == str(number)

    requested = request(owner, fraud_model, number, "production", reason="beats the rules-based scorer")

    assert requested.status_code == 201, requested.json()
    transition = requested.json()
    assert transition["status"] == "pending"
    assert transition["status_detail"].startswith("waiting: 0 of 1 approval")
    assert all({"rule", "status", "detail", "data"} <= set(gate) for gate in transition["gates"])
    gates = {gate["rule"]: gate for gate in transition["gates"]}
    assert gates["metric_threshold"]["status"] == "passed"
    assert gates["metric_threshold"]["data"]["value"] == 0.94
    assert gates["metric_threshold"]["data"]["threshold"] == 0.9
    assert "0.94" in gates["metric_threshold"]["detail"]
    assert gates["approvals"]["status"] == "waiting"
    assert gates["approvals"]["data"]["required"] == 1
    assert stage_of(fraud_model, number) == Stage.STAGING

    own = verb(owner, transition["id"], "approve", "I trust myself")
    assert own.status_code == 403
    assert stage_of(fraud_model, number) == Stage.STAGING

    approved = verb(approver, transition["id"], "approve", "checked the confusion matrix")

    assert approved.status_code == 200, approved.json()
    body = approved.json()
    assert body["status"] == "applied"
    assert body["decided_at"] is not None
    assert [(a["user"], a["decision"], a["comment"]) for a in body["approvals"]] == [
        ("approver", "approve", "checked the confusion matrix")
    ]
    assert {g["rule"]: g["status"] for g in body["gates"]} == {"metric_threshold": "passed", "approvals": "passed"}
    assert stage_of(fraud_model, number) == Stage.PRODUCTION
    assert owner.client.get(f"/api/v1/models/{fraud_model.name}/").json()["production"]["version"] == number
    assert alias_version(owner, fraud_model, "champion") == number
    assert alias_version(owner, fraud_model, "challenger") is None

    report = outbox_relay()

    assert report.aliases == 2
    assert report.errors == []
    assert mlflow_alias(live_services.url, fraud_model, "champion") == str(number)
    assert mlflow_alias(live_services.url, fraud_model, "challenger") is None

    audit = owner.client.get("/api/v1/audit/", {"model": fraud_model.name, "page_size": 500}).json()["results"]
    actions = [record["action"] for record in reversed(audit)]
    assert actions[:2] == ["model.create", "model.policy_change"]
    assert {"version.register", "transition.request", "transition.approve"} <= set(actions)
    moves = [
        (r["before"]["stage"], r["after"]["stage"], r["actor"])
        for r in reversed(audit)
        if r["action"] == "version.stage_change"
    ]
    assert moves == [
        ("training", "evaluation", "owner"),
        ("evaluation", "staging", "owner"),
        ("staging", "production", "approver"),
    ]
    approval = next(r for r in audit if r["action"] == "transition.approve")
    assert (approval["actor"], approval["reason"], approval["object_id"]) == (
        "approver",
        "checked the confusion matrix",
        str(transition["id"]),
    )
    assert approval["token"]
    verified = owner.client.get("/api/v1/audit/verify/").json()
    assert verified == {"valid": True, "records": AuditRecord.objects.count(), "first_bad": None, "problem": ""}

    assert webhook_receiver.events() == [
        "transition.requested",
        "transition.applied",
        "transition.requested",
        "transition.applied",
        "transition.requested",
        "transition.approved",
        "transition.applied",
    ]
    assert all(received.signature_valid for received in webhook_receiver.received)
    last = webhook_receiver.received[-1].event
    assert last["data"]["id"] == transition["id"]
    assert (last["data"]["to"], last["data"]["status"], last["data"]["version"]) == ("production", "applied", number)
    listed = fraud_admin.client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries/").json()["results"]
    assert {d["status"] for d in listed} == {"delivered"}
    assert len(listed) == 7


@pytest.mark.services
@pytest.mark.xdist_group("mlflow")
def test_a_rollback_restores_the_previous_production_version_here_and_in_mlflow(
    live_services, owner, approver, fraud_model
):
    run_id = trained_run()
    numbers = []
    for _ in range(2):
        registered = owner.client.post(
            f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": run_id}, format="json"
        )
        assert registered.status_code == 201, registered.json()
        numbers.append(registered.json()["version"])
    first, second = numbers
    for number, f1 in ((first, 0.91), (second, 0.93)):
        evaluate(ModelVersion.objects.get(model=fraud_model, version=number), f1)
        assert request(owner, fraud_model, number, "evaluation").json()["status"] == "applied"
        assert request(owner, fraud_model, number, "production").json()["status"] == "applied"
    outbox_relay()
    assert mlflow_alias(live_services.url, fraud_model, "champion") == str(second)
    assert stage_of(fraud_model, first) == Stage.ARCHIVED

    response = rollback(approver, fraud_model, reason="v2 doubles the false positives")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["kind"], body["version"], body["to"], body["status"]) == ("rollback", first, "production", "applied")
    assert body["status_detail"] == f"rolled back from v{second} to v{first}"
    assert stage_of(fraud_model, first) == Stage.PRODUCTION
    assert stage_of(fraud_model, second) == Stage.ROLLED_BACK
    assert alias_version(owner, fraud_model, "champion") == first
    assert mlflow_alias(live_services.url, fraud_model, "champion") == str(second)

    outbox_relay()

    assert mlflow_alias(live_services.url, fraud_model, "champion") == str(first)
    spans = owner.client.get(f"/api/v1/models/{fraud_model.name}/history/").json()["results"]
    assert [(s["version"], s["ended_reason"]) for s in spans] == [
        (first, ""),
        (second, "rolled_back"),
        (first, "replaced"),
    ]
    rolled = AuditRecord.objects.get(action="model.rollback")
    assert (rolled.before, rolled.after, rolled.actor_name) == (
        {"production": second},
        {"production": first},
        "approver",
    )


# --- blocked, rechecked, rejected, cancelled ---------------------------------------------------


def test_a_version_below_the_threshold_is_blocked_with_the_numbers_in_the_gate(owner, approver, fraud_model):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": GATED})
    weak = evaluated(fraud_model, 0.71)

    response = request(owner, fraud_model, weak.version, "production")

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "blocked"
    threshold = next(g for g in body["gates"] if g["rule"] == "metric_threshold")
    assert threshold["status"] == "failed"
    assert (threshold["data"]["value"], threshold["data"]["threshold"], threshold["data"]["op"]) == (0.71, 0.9, ">=")
    assert "0.71" in threshold["detail"] and "0.9" in threshold["detail"]
    assert body["status_detail"].startswith("blocked by metric_threshold: f1 = 0.71")
    assert stage_of(fraud_model, weak.version) == Stage.EVALUATION
    # A blocked request is not waiting for anyone: approving it does not apply it.
    assert verb(approver, body["id"], "approve").json()["status"] == "blocked"
    assert stage_of(fraud_model, weak.version) == Stage.EVALUATION


def test_a_blocked_request_becomes_pending_on_recheck_after_a_new_evaluation_and_then_applied(
    owner, approver, fraud_model
):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": GATED})
    version = evaluated(fraud_model, 0.71)
    blocked = request(owner, fraud_model, version.version, "production").json()
    assert verb(owner, blocked["id"], "recheck").json()["status"] == "blocked"

    evaluate(version, 0.93)
    rechecked = verb(owner, blocked["id"], "recheck")

    assert rechecked.status_code == 200
    assert rechecked.json()["status"] == "pending"
    assert {g["rule"]: g["status"] for g in rechecked.json()["gates"]} == {
        "metric_threshold": "passed",
        "approvals": "waiting",
    }
    assert verb(approver, blocked["id"], "approve").json()["status"] == "applied"
    assert stage_of(fraud_model, version.version) == Stage.PRODUCTION
    audit = AuditRecord.objects.filter(action="transition.recheck").order_by("id")
    assert [(r.before, r.after) for r in audit] == [
        ({"status": "blocked"}, {"status": "blocked"}),
        ({"status": "blocked"}, {"status": "pending"}),
    ]


def test_a_blocked_request_is_applied_on_recheck_when_no_approval_is_needed(owner, approver, fraud_model):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": THRESHOLD_ONLY})
    version = evaluated(fraud_model, 0.5)
    blocked = request(owner, fraud_model, version.version, "staging").json()
    assert blocked["status"] == "blocked"

    evaluate(version, 0.92)
    rechecked = verb(owner, blocked["id"], "recheck").json()

    assert rechecked["status"] == "applied"
    assert stage_of(fraud_model, version.version) == Stage.STAGING


def test_a_worse_version_than_the_champion_is_blocked_with_both_scores(owner, approver, fraud_model):
    model_update(
        actor=approver.user,
        model=fraud_model,
        changes={"policy": {"rules": [{"type": "beats_champion", "metric": "f1", "stages": ["production"]}]}},
    )
    champion = promote(owner, fraud_model, 0.92)
    challenger = evaluated(fraud_model, 0.90)

    body = request(owner, fraud_model, challenger.version, "production").json()

    assert body["status"] == "blocked"
    (gate,) = body["gates"]
    assert (gate["data"]["candidate"], gate["data"]["champion"]) == (0.9, 0.92)
    assert gate["data"]["dataset_digest"] == DIGEST
    assert "vs champion 0.92" in gate["detail"]
    assert stage_of(fraud_model, champion.version) == Stage.PRODUCTION


def test_a_rejected_request_leaves_the_version_where_it_was(owner, approver, fraud_model):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": GATED})
    version = evaluated(fraud_model, 0.95)
    pending = request(owner, fraud_model, version.version, "production").json()
    assert verb(owner, pending["id"], "reject").status_code == 403

    response = verb(approver, pending["id"], "reject", "wait for the fraud ring analysis")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "rejected"
    assert body["status_detail"] == "rejected by approver: wait for the fraud ring analysis"
    assert [(a["user"], a["decision"]) for a in body["approvals"]] == [("approver", "reject")]
    assert stage_of(fraud_model, version.version) == Stage.EVALUATION
    record = AuditRecord.objects.get(action="transition.reject")
    assert (record.before, record.after, record.reason) == (
        {"status": "pending"},
        {"status": "rejected"},
        "wait for the fraud ring analysis",
    )


def test_the_requester_may_cancel_an_open_request(owner, approver, fraud_model):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": GATED})
    version = evaluated(fraud_model, 0.95)
    pending = request(owner, fraud_model, version.version, "production").json()

    response = verb(owner, pending["id"], "cancel", "wrong version")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert stage_of(fraud_model, version.version) == Stage.EVALUATION
    assert verb(approver, pending["id"], "approve").status_code == 409
    assert request(owner, fraud_model, version.version, "production").json()["status"] == "pending"


# --- staging and the challenger alias ------------------------------------------------------------


def test_staging_moves_the_challenger_and_production_the_champion(owner, fraud_model):
    first, second = evaluated(fraud_model, 0.9), evaluated(fraud_model, 0.91)

    assert request(owner, fraud_model, first.version, "staging").json()["status"] == "applied"
    assert alias_version(owner, fraud_model, "challenger") == first.version
    assert request(owner, fraud_model, second.version, "staging").json()["status"] == "applied"
    assert alias_version(owner, fraud_model, "challenger") == second.version

    assert request(owner, fraud_model, second.version, "production").json()["status"] == "applied"

    assert alias_version(owner, fraud_model, "champion") == second.version
    # The challenger alias leaves with its version and falls back to the other staged one.
    assert alias_version(owner, fraud_model, "challenger") == first.version
    assert request(owner, fraud_model, first.version, "production").json()["status"] == "applied"
    assert alias_version(owner, fraud_model, "champion") == first.version
    assert alias_version(owner, fraud_model, "challenger") is None
    assert stage_of(fraud_model, second.version) == Stage.ARCHIVED


# --- rollback -----------------------------------------------------------------------------------


def test_a_developer_or_viewer_cannot_roll_back_and_an_outsider_gets_a_404(
    owner, viewer, outsider, approver, fraud_model
):
    promote(owner, fraud_model, 0.9)
    promote(owner, fraud_model, 0.91)

    assert rollback(owner, fraud_model, reason="I broke it").status_code == 403
    assert rollback(viewer, fraud_model, reason="I broke it").status_code == 403
    assert rollback(outsider, fraud_model, reason="I broke it").status_code == 404
    assert stage_of(fraud_model, 2) == Stage.PRODUCTION


def test_an_admin_may_roll_back(owner, fraud_admin, fraud_model):
    promote(owner, fraud_model, 0.9)
    promote(owner, fraud_model, 0.91)

    response = rollback(fraud_admin, fraud_model, reason="pager went off")

    assert response.status_code == 200
    assert stage_of(fraud_model, 1) == Stage.PRODUCTION


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}])
def test_a_rollback_needs_a_reason(owner, approver, fraud_model, body):
    promote(owner, fraud_model, 0.9)
    promote(owner, fraud_model, 0.91)

    response = rollback(approver, fraud_model, **body)

    assert response.status_code == 400
    assert "reason" in response.json()["error"]["details"]
    assert stage_of(fraud_model, 2) == Stage.PRODUCTION


def test_a_rollback_to_a_version_never_in_production_is_a_400(owner, approver, fraud_model):
    promote(owner, fraud_model, 0.9)
    promote(owner, fraud_model, 0.91)
    never = evaluated(fraud_model, 0.95)

    for target, problem in ((never.version, "was never in production"), (2, "is in production now")):
        response = rollback(approver, fraud_model, reason="try", to_version=target)
        assert response.status_code == 400
        assert response.json()["error"]["details"] == {"to_version": problem}
    assert stage_of(fraud_model, 2) == Stage.PRODUCTION


def test_a_rollback_with_nothing_to_roll_back_to_is_a_409(owner, approver, fraud_model):
    assert rollback(approver, fraud_model, reason="nothing live").status_code == 409
    promote(owner, fraud_model, 0.9)

    response = rollback(approver, fraud_model, reason="only one ever")

    assert response.status_code == 409
    assert stage_of(fraud_model, 1) == Stage.PRODUCTION
    assert Transition.objects.filter(kind="rollback").count() == 0


def test_a_rollback_may_name_an_older_production_version(owner, approver, fraud_model):
    for f1 in (0.9, 0.91, 0.92):
        promote(owner, fraud_model, f1)

    response = rollback(approver, fraud_model, reason="back to the audited one", to_version=1)

    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 1
    assert [stage_of(fraud_model, n) for n in (1, 2, 3)] == [Stage.PRODUCTION, Stage.ARCHIVED, Stage.ROLLED_BACK]
    assert ModelVersion.objects.filter(model=fraud_model, stage=Stage.PRODUCTION).count() == 1


def test_history_answers_which_version_was_in_production_at_each_moment(owner, approver, viewer, fraud_model):
    moments: dict[str, datetime] = {"before": timezone.now()}
    promote(owner, fraud_model, 0.9)
    moments["v1"] = timezone.now()
    promote(owner, fraud_model, 0.91)
    moments["v2"] = timezone.now()
    assert rollback(approver, fraud_model, reason="latency regression").status_code == 200
    moments["after"] = timezone.now()

    url = f"/api/v1/models/{fraud_model.name}/history/"
    answers = {name: viewer.client.get(url, {"at": at.isoformat()}).json() for name, at in moments.items()}

    assert {name: answer["version"] for name, answer in answers.items()} == {
        "before": None,
        "v1": 1,
        "v2": 2,
        "after": 1,
    }
    assert answers["before"]["record"] is None
    assert answers["v2"]["record"]["ended_reason"] == "rolled_back"
    # A "+" left unencoded in the query string arrives as a space; "Z" is UTC too.
    unencoded = viewer.client.get(f"{url}?at={moments['v1'].isoformat()}").json()
    zulu = viewer.client.get(url, {"at": moments["v2"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")}).json()
    assert (unencoded["version"], zulu["version"]) == (1, 2)

    spans = viewer.client.get(url).json()["results"]
    assert [(s["version"], s["ended_reason"], s["started_by"]) for s in spans] == [
        (1, "", "approver"),
        (2, "rolled_back", "owner"),
        (1, "replaced", "owner"),
    ]
    # Production moved back in one instant: no moment without a production version.
    assert spans[1]["ended_at"] == spans[0]["started_at"]
    ordered = list(ProductionRecord.objects.filter(model=fraud_model).order_by("started_at"))
    for earlier, later in itertools.pairwise(ordered):
        assert earlier.ended_at is not None and earlier.ended_at <= later.started_at


@pytest.mark.parametrize("at", ["yesterday", "2026-02-30T12:00:00Z", "2026-01-01T00:00:00", ""])
def test_a_bad_at_is_a_400(viewer, fraud_model, at):
    response = viewer.client.get(f"/api/v1/models/{fraud_model.name}/history/", {"at": at})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"at": "not a timestamp"}


def test_an_outsider_gets_a_404_for_the_history(outsider, fraud_model):
    assert outsider.client.get(f"/api/v1/models/{fraud_model.name}/history/").status_code == 404
