"""The audit trail: a hash chain that names the first record changed, removed or forged
behind the platform's back (``manage.py audit_verify`` and ``GET audit/verify/``), and
the trail's filters and visibility."""

from __future__ import annotations

import io
import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from lifecycle.governance.models import AuditRecord
from lifecycle.governance.services.audit import GENESIS, _content, record_hash
from lifecycle.governance.services.transitions import transition_approve, transition_request
from registry.choices import Stage
from registry.models import RegisteredModel
from registry.services import metrics_record, model_create, model_update, team_ensure
from tests.conftest import Actor
from tests.registry.factories import actor_create, version_create

pytestmark = pytest.mark.django_db

GATED = {
    "rules": [
        {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8},
        {"type": "approvals", "count": 1, "stages": ["production"]},
    ]
}


@pytest.fixture
def trail(owner: Actor, approver: Actor, fraud_model: RegisteredModel) -> list[AuditRecord]:
    """The records of a policy change and of a version promoted with an approval."""
    model_update(actor=approver.user, model=fraud_model, changes={"policy": GATED}, reason="four eyes")
    version = version_create(model=fraud_model, stage=Stage.EVALUATION)
    metrics_record(version=version, metrics={"f1": 0.9}, source="evaluation", dataset_digest="b" * 64)
    transition = transition_request(version=version, to=Stage.PRODUCTION, reason="ship it", actor=owner.user)
    transition_approve(transition=transition, actor=approver.user, comment="ok")
    records = list(AuditRecord.objects.order_by("id"))
    assert len(records) >= 5
    return records


@pytest.fixture
def ads_model(outsider: Actor) -> RegisteredModel:
    return model_create(actor=outsider.user, name="ads-ctr", team=team_ensure(name="ads"))


def verify(actor: Actor) -> dict[str, Any]:
    response = actor.client.get("/api/v1/audit/verify/")
    assert response.status_code == 200
    return response.json()


def command_error() -> str:
    with pytest.raises(CommandError) as raised:
        call_command("audit_verify")
    return str(raised.value)


def sql(statement: str, *params: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, list(params))


def listed(caller: Actor, **params: str) -> list[dict[str, Any]]:
    response = caller.client.get("/api/v1/audit/", {"page_size": "500", **params})
    assert response.status_code == 200, response.json()
    return response.json()["results"]


# --- the hash chain ----------------------------------------------------------------------------


def test_a_valid_chain_reports_its_record_count(viewer, trail):
    out = io.StringIO()

    call_command("audit_verify", stdout=out)

    assert out.getvalue().strip() == f"audit chain valid: {len(trail)} records"
    assert verify(viewer) == {"valid": True, "records": len(trail), "first_bad": None, "problem": ""}


def test_each_record_chains_onto_the_one_before(trail):
    assert trail[0].prev_hash == GENESIS
    for earlier, later in itertools.pairwise(trail):
        assert later.prev_hash == earlier.hash


def test_a_record_changed_with_raw_sql_is_named_by_the_command_and_the_endpoint(viewer, trail):
    changed = trail[len(trail) // 2]

    sql("UPDATE lifecycle_auditrecord SET reason = 'x' WHERE id = %s", changed.pk)

    assert f"audit chain broken at record {changed.pk}: its content does not match its hash" in command_error()
    report = verify(viewer)
    assert (report["valid"], report["first_bad"], report["records"]) == (False, changed.pk, len(trail))


def test_a_changed_actor_or_timestamp_is_detected_too(viewer, trail):
    sql("UPDATE lifecycle_auditrecord SET actor_name = 'someone-else' WHERE id = %s", trail[1].pk)
    assert verify(viewer)["first_bad"] == trail[1].pk

    sql("UPDATE lifecycle_auditrecord SET actor_name = %s WHERE id = %s", trail[1].actor_name, trail[1].pk)
    assert verify(viewer)["valid"] is True
    sql("UPDATE lifecycle_auditrecord SET at = %s WHERE id = %s", trail[2].at - timedelta(hours=1), trail[2].pk)
    assert verify(viewer)["first_bad"] == trail[2].pk


def test_a_deleted_middle_record_is_detected_at_the_record_after_it(viewer, trail):
    removed, following = trail[2], trail[3]

    sql("DELETE FROM lifecycle_auditrecord WHERE id = %s", removed.pk)

    assert f"audit chain broken at record {following.pk}: its previous-hash does not match" in command_error()
    report = verify(viewer)
    assert (report["valid"], report["first_bad"], report["records"]) == (False, following.pk, len(trail) - 1)


def test_a_changed_record_with_a_recomputed_hash_is_detected_at_the_next_record(viewer, trail):
    """Rewriting a record and its own hash breaks the link from the record after it."""
    forged = trail[1]
    forged.reason = "nothing to see here"
    new_hash = record_hash(forged.prev_hash, _content(forged))

    sql("UPDATE lifecycle_auditrecord SET reason = %s, hash = %s WHERE id = %s", forged.reason, new_hash, forged.pk)

    assert verify(viewer)["first_bad"] == trail[2].pk


def test_a_forged_record_appended_to_the_chain_is_detected(viewer, trail):
    last = trail[-1]
    sql(
        "INSERT INTO lifecycle_auditrecord (at, actor_name, action, object_type, object_id, model_name, before, after,"
        " reason, request_id, token_prefix, prev_hash, hash) VALUES (%s, 'intruder', 'version.stage_change',"
        " 'model_version', 'fraud-detector/1', 'fraud-detector', NULL, NULL, '', '', '', %s, %s)",
        last.at,
        last.hash,
        "f" * 64,
    )
    intruder = AuditRecord.objects.get(actor_name="intruder")

    report = verify(viewer)

    assert (report["valid"], report["first_bad"]) == (False, intruder.pk)


# --- what a record holds -----------------------------------------------------------------------


def test_a_change_through_the_api_is_recorded_with_its_request_id_and_token(owner, fraud_model):
    version = version_create(model=fraud_model, stage=Stage.TRAINING)

    response = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/{version.version}/transitions/",
        {"to": "evaluation", "reason": "trained on March data"},
        format="json",
        HTTP_X_REQUEST_ID="ci-build-1234",
    )

    assert response.status_code == 201
    records = AuditRecord.objects.filter(request_id="ci-build-1234").order_by("id")
    assert [r.action for r in records] == ["transition.request", "version.stage_change"]
    request_record = records[0]
    assert request_record.actor_name == "owner"
    assert request_record.reason == "trained on March data"
    assert request_record.after == {"version": version.version, "from": "training", "to": "evaluation"}
    assert request_record.token_prefix
    assert owner.token.startswith(f"mg_{request_record.token_prefix}_")


def test_a_refused_change_leaves_no_record(owner, fraud_model):
    version = version_create(model=fraud_model, stage=Stage.TRAINING)
    before = AuditRecord.objects.count()

    response = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/{version.version}/transitions/",
        {"to": "production"},
        format="json",
    )

    assert response.status_code == 409
    assert AuditRecord.objects.count() == before


# --- filters and visibility ----------------------------------------------------------------------


def test_the_trail_filters_by_model_actor_and_action(owner, approver, fraud_model, ads_model, trail):
    fraud_records = listed(approver, model=fraud_model.name)
    assert fraud_records
    assert {r["model"] for r in fraud_records} == {fraud_model.name}
    assert [r["id"] for r in fraud_records] == sorted((r["id"] for r in fraud_records), reverse=True)

    by_approver = listed(approver, actor="approver")
    assert by_approver and {r["actor"] for r in by_approver} == {"approver"}
    assert {r["action"] for r in by_approver} >= {"model.policy_change", "transition.approve"}

    (approval,) = listed(approver, action="transition.approve")
    assert (approval["actor"], approval["reason"], approval["before"]) == ("approver", "ok", {"status": "pending"})
    assert len(approval["hash"]) == len(approval["prev_hash"]) == 64

    assert (
        listed(approver, model=fraud_model.name, actor="owner", action="transition.request")[0]["reason"] == "ship it"
    )
    assert listed(approver, actor="nobody") == []


def test_an_outsider_does_not_see_the_records_of_another_team(outsider, viewer, fraud_model, ads_model, trail):
    theirs = listed(outsider)

    assert theirs
    assert {r["model"] for r in theirs} == {"ads-ctr"}
    assert listed(outsider, model=fraud_model.name) == []
    assert "ads-ctr" not in {r["model"] for r in listed(viewer)}


def test_a_superuser_sees_every_record(fraud_model, ads_model, trail):
    root = actor_create("root", superuser=True)

    assert {r["model"] for r in listed(root)} >= {fraud_model.name, "ads-ctr"}


def test_anonymous_callers_get_a_401_from_the_audit_endpoints(anonymous):
    assert anonymous.get("/api/v1/audit/").status_code == 401
    assert anonymous.get("/api/v1/audit/verify/").status_code == 401


def test_an_unknown_audit_filter_is_a_400(viewer):
    response = viewer.client.get("/api/v1/audit/", {"user": "owner"})

    assert response.status_code == 400
    assert "user" in response.json()["error"]["details"]
