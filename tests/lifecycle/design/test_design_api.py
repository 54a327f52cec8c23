"""The design stage through the API: the card read and replaced as revisions, audited,
stale edits refused, and design completed only with a complete card."""

from __future__ import annotations

import pytest

from lifecycle.governance.models import AuditRecord, OutboxEvent
from registry.models import RegisteredModel

pytestmark = pytest.mark.django_db

DESIGN = "/api/v1/models/fraud-v2/design/"


def _put(actor, body, **headers):
    return actor.client.put(DESIGN, body, format="json", **headers)


def test_a_model_created_without_asking_for_design_is_active_and_takes_versions_at_once(fraud_model, owner):
    assert fraud_model.stage == "active"
    body = owner.client.get("/api/v1/models/fraud-detector/").json()
    assert body["stage"] == "active"
    design = owner.client.get("/api/v1/models/fraud-detector/design/").json()
    assert design["revision"] == 0 and design["stage"] == "active" and not design["complete"]


def test_a_new_card_is_empty_and_names_every_missing_field(design_model, viewer):
    response = viewer.client.get(DESIGN)
    assert response.status_code == 200
    body = response.json()
    assert response["ETag"] == '"0"'
    assert body["revision"] == 0 and body["stage"] == "design" and body["complete"] is False
    assert body["missing"][:3] == ["intended_use", "out_of_scope_uses", "owner"]
    assert body["card"]["success_criteria"] == []


def test_each_put_makes_a_revision_with_its_actor_diff_and_audit_record(design_model, owner, complete_card):
    first = _put(owner, {"card": {"intended_use": "scoring payments"}, "revision": 0, "reason": "first draft"})
    assert first.status_code == 200, first.json()
    assert first.json()["revision"] == 1 and first["ETag"] == '"1"'
    assert "intended_use" not in first.json()["missing"]

    second = _put(owner, {"card": complete_card, "reason": "filled in"}, HTTP_IF_MATCH='"1"')
    assert second.status_code == 200, second.json()
    body = second.json()
    assert body["revision"] == 2 and body["complete"] is True and body["missing"] == []
    assert body["updated_by"] == "owner"

    revisions = owner.client.get(DESIGN + "revisions/").json()["results"]
    assert [r["number"] for r in revisions] == [2, 1]
    assert revisions[0]["actor"] == "owner" and revisions[0]["reason"] == "filled in"
    assert revisions[0]["diff"]["intended_use"] == {
        "before": "scoring payments",
        "after": complete_card["intended_use"],
    }
    assert revisions[1]["diff"]["intended_use"] == {"before": "", "after": "scoring payments"}
    assert revisions[1]["card"]["intended_use"] == "scoring payments"

    records = AuditRecord.objects.filter(action="design.card_update", model_name="fraud-v2").order_by("id")
    assert [r.after["revision"] for r in records] == [1, 2]
    assert records[1].actor_name == "owner" and records[1].reason == "filled in"
    assert records[1].before["changed"]["intended_use"] == "scoring payments"
    assert records[1].after["missing"] == []
    assert OutboxEvent.objects.filter(event_type="model.design_updated").count() == 2
    assert owner.client.get("/api/v1/audit/verify/").json()["valid"] is True


def test_saving_the_same_card_again_makes_no_revision(design_model, owner, complete_card):
    _put(owner, {"card": complete_card, "revision": 0})
    again = _put(owner, {"card": complete_card, "revision": 1})
    assert again.status_code == 200 and again.json()["revision"] == 1
    assert AuditRecord.objects.filter(action="design.card_update").count() == 1


def test_an_edit_of_a_stale_revision_is_refused_and_the_newer_card_kept(
    design_model, owner, fraud_admin, complete_card
):
    assert _put(owner, {"card": complete_card, "revision": 0}).status_code == 200
    # Both read revision 1; the admin saves first.
    assert (
        _put(fraud_admin, {"card": {**complete_card, "owner": "admin@example.com"}, "revision": 1}).status_code == 200
    )
    late = _put(owner, {"card": {**complete_card, "owner": "late@example.com"}, "revision": 1})
    assert late.status_code == 409
    error = late.json()["error"]
    assert error["code"] == "stale_revision" and error["details"] == {"revision": 2}
    late_by_header = _put(owner, {"card": {**complete_card, "owner": "late@example.com"}}, HTTP_IF_MATCH='"1"')
    assert late_by_header.status_code == 409
    assert owner.client.get(DESIGN).json()["card"]["owner"] == "admin@example.com"


def test_an_edit_without_the_revision_it_was_made_on_is_refused_once_the_card_exists(
    design_model, owner, complete_card
):
    assert _put(owner, {"card": complete_card}).status_code == 200
    response = _put(owner, {"card": {**complete_card, "owner": "x@example.com"}})
    assert response.status_code == 400
    assert "revision" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"card": {"task": "clustering"}, "revision": 0}, "card.task"),
        (
            {"card": {"resource_budget": {"latency_p95_ms": "fast"}}, "revision": 0},
            "card.resource_budget.latency_p95_ms",
        ),
        (
            {"card": {"success_criteria": [{"metric": "f1", "op": "=>", "value": 0.9}]}, "revision": 0},
            "card.success_criteria[0].op",
        ),
        (
            {"card": {"datasets": [{"name": "no-such-data", "role": "training"}]}, "revision": 0},
            "card.datasets[0].name",
        ),
        ({"card": {"colour": "red"}, "revision": 0}, "card.colour"),
        ({"card": "a string", "revision": 0}, "card"),
        ({"card": {}, "revision": -1}, "revision"),
        ({"card": {}, "revision": 0, "extra": 1}, "extra"),
    ],
)
def test_a_malformed_card_is_a_400_naming_the_field_and_changes_nothing(design_model, owner, body, field):
    response = _put(owner, body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"], response.json()
    assert owner.client.get(DESIGN).json()["revision"] == 0


def test_if_match_and_a_body_revision_that_disagree_are_refused(design_model, owner, complete_card):
    response = _put(owner, {"card": complete_card, "revision": 0}, HTTP_IF_MATCH='"3"')
    assert response.status_code == 400 and "revision" in response.json()["error"]["details"]


def test_design_cannot_be_completed_while_the_card_is_incomplete_and_the_refusal_names_the_fields(
    design_model, owner, complete_card
):
    empty = owner.client.post(DESIGN + "complete/", {"reason": "ready?"}, format="json")
    assert empty.status_code == 409
    assert empty.json()["error"]["code"] == "design_incomplete"
    assert "intended_use" in empty.json()["error"]["details"]["missing"]

    del complete_card["fairness"]
    complete_card["resource_budget"].pop("memory_mb")
    _put(owner, {"card": complete_card, "revision": 0})
    response = owner.client.post(DESIGN + "complete/", {}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["details"]["missing"] == ["fairness", "resource_budget.memory_mb"]
    assert "fairness" in error["message"] and "resource_budget.memory_mb" in error["message"]
    assert RegisteredModel.objects.get(name="fraud-v2").stage == "design"
    assert not AuditRecord.objects.filter(action="model.design_complete").exists()


def test_a_model_in_design_refuses_versions_and_training_naming_the_missing_fields(design_model, owner):
    register = owner.client.post("/api/v1/models/fraud-v2/versions/", {"run_id": "0123456789abcdef"}, format="json")
    assert register.status_code == 409
    error = register.json()["error"]
    assert error["code"] == "model_in_design"
    assert "intended_use" in error["details"]["missing"] and "intended_use" in error["message"]
    train = owner.client.post("/api/v1/models/fraud-v2/train/", {"estimator": "random_forest"}, format="json")
    assert train.status_code == 409 and train.json()["error"]["code"] == "model_in_design"


def test_completing_a_complete_design_activates_the_model_and_seeds_its_gates(design_model, owner, complete_card):
    _put(owner, {"card": complete_card, "revision": 0})
    response = owner.client.post(DESIGN + "complete/", {"reason": "card reviewed"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["stage"] == "active"
    # The card defines what the model lacked: task, primary metric, evaluation dataset.
    assert body["primary_metric"] == "f1" and body["dataset"] == "holdout"
    thresholds = [r for r in body["policy"]["rules"] if r["type"] == "metric_threshold"]
    assert [(r["metric"], r["op"], r["value"], r["stages"]) for r in thresholds] == [
        ("f1", ">=", 0.9, ["staging", "production"]),
        ("auc", ">=", 0.95, ["staging", "production"]),
    ]

    done = AuditRecord.objects.get(action="model.design_complete", model_name="fraud-v2")
    assert done.before == {"stage": "design"} and done.after == {"stage": "active", "card_revision": 1}
    assert done.actor_name == "owner" and done.reason == "card reviewed"
    seeding = AuditRecord.objects.get(action="model.policy_change", model_name="fraud-v2")
    assert seeding.before["policy"] == {"rules": []} and len(seeding.after["policy"]["rules"]) == len(
        body["policy"]["rules"]
    )
    assert OutboxEvent.objects.filter(event_type="model.design_completed").exists()
    design = owner.client.get(DESIGN).json()
    assert design["completed_by"] == "owner" and design["completed_revision"] == 1

    again = owner.client.post(DESIGN + "complete/", {}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_in_design"
    assert owner.client.get("/api/v1/audit/verify/").json()["valid"] is True


def test_seeding_keeps_the_gates_a_policy_already_has_and_adds_each_target_once(owner, fraud_datasets, complete_card):
    policy = {
        "rules": [
            {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.9},
            {"type": "approvals", "count": 1},
        ]
    }
    created = owner.client.post(
        "/api/v1/models/", {"name": "fraud-v2", "team": "fraud", "stage": "design", "policy": policy}, format="json"
    )
    assert created.status_code == 201, created.json()
    _put(owner, {"card": complete_card, "revision": 0})
    body = owner.client.post(DESIGN + "complete/", {}, format="json").json()
    kinds = [(r["type"], r.get("metric")) for r in body["policy"]["rules"]]
    # The card's input schema, artifact, latency and memory budgets are gates too.
    assert kinds == [
        ("metric_threshold", "f1"),
        ("approvals", None),
        ("metric_threshold", "auc"),
        ("input_schema", None),
        ("max_artifact_mb", None),
        ("max_latency_ms", None),
        ("max_memory_mb", None),
    ]
    memory = body["policy"]["rules"][-1]
    assert memory == {
        "type": "max_memory_mb",
        "value": complete_card["resource_budget"]["memory_mb"],
        "stages": ["staging", "production"],
    }


def test_seeding_keeps_the_monitors_and_pii_columns_a_policy_already_has(owner, fraud_datasets, complete_card):
    monitors = [{"type": "error_rate", "op": ">", "value": 0.05, "windows": 2, "action": "alert", "min_rows": 20}]
    policy = {"rules": [], "pii": ["email"], "monitors": monitors}
    created = owner.client.post(
        "/api/v1/models/", {"name": "fraud-v2", "team": "fraud", "stage": "design", "policy": policy}, format="json"
    )
    assert created.status_code == 201, created.json()
    _put(owner, {"card": complete_card, "revision": 0})

    body = owner.client.post(DESIGN + "complete/", {}, format="json").json()

    assert body["policy"]["monitors"] == monitors and body["policy"]["pii"] == ["email"]
    assert body["policy"]["rules"][-1]["type"] == "max_memory_mb"


def test_the_card_stays_editable_after_design_without_changing_the_gates(design_model, owner, complete_card):
    _put(owner, {"card": complete_card, "revision": 0})
    policy = owner.client.post(DESIGN + "complete/", {}, format="json").json()["policy"]
    changed = {**complete_card, "success_criteria": [{"metric": "f1", "op": ">=", "value": 0.5}]}
    assert _put(owner, {"card": changed, "revision": 1}).status_code == 200
    assert owner.client.get("/api/v1/models/fraud-v2/").json()["policy"] == policy


def test_creating_a_model_in_an_unknown_stage_is_a_400(owner):
    response = owner.client.post("/api/v1/models/", {"name": "m", "team": "fraud", "stage": "retired"}, format="json")
    assert response.status_code == 400 and "stage" in response.json()["error"]["details"]


def test_the_card_exports_as_markdown_for_the_model_and_for_a_version_beside_its_metrics(
    design_model, viewer, owner, complete_card
):
    from tests.registry.factories import version_create

    _put(owner, {"card": complete_card, "revision": 0})
    response = viewer.client.get(DESIGN + "card.md")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert text.startswith("# Model card: fraud-v2\n")
    assert "- f1 >= 0.9 (gates staging, production)" in text
    assert "| amount | double | yes |" in text

    owner.client.post(DESIGN + "complete/", {}, format="json")
    version = version_create(model=RegisteredModel.objects.get(name="fraud-v2"), metrics={"f1": 0.93, "auc": 0.91})
    versioned = viewer.client.get(f"/api/v1/models/fraud-v2/versions/{version.version}/card.md")
    assert versioned.status_code == 200
    text = versioned.content.decode()
    assert text.startswith(f"# Model card: fraud-v2 v{version.version}\n")
    assert "| f1 | 0.93 | >= 0.9 | met |" in text
    assert "| auc | 0.91 | >= 0.95 | NOT met |" in text
    assert "- model stage: active" in text

    missing = viewer.client.get("/api/v1/models/fraud-v2/versions/99/card.md", HTTP_ACCEPT="text/markdown")
    assert missing.status_code == 404


def test_a_model_created_with_an_inline_card_has_it_as_its_first_revision(owner, fraud_datasets, complete_card):
    response = owner.client.post(
        "/api/v1/models/",
        {"name": "fraud-v2", "team": "fraud", "stage": "design", "design": complete_card},
        format="json",
    )

    assert response.status_code == 201, response.json()
    design = owner.client.get(DESIGN).json()
    assert design["revision"] == 1 and design["complete"] is True and design["stage"] == "design"
    assert design["card"]["intended_use"] == complete_card["intended_use"]
    record = AuditRecord.objects.get(action="design.card_update", model_name="fraud-v2")
    assert record.actor_name == "owner" and record.reason == "model created"
    # Complete already: design can be left at once.
    assert owner.client.post(DESIGN + "complete/", {}, format="json").status_code == 200


def test_a_bad_inline_card_creates_no_model_and_names_the_field(owner, fraud_datasets, complete_card):
    complete_card["resource_budget"]["latency_p95_ms"] = "fast"
    complete_card["datasets"] = [{"name": "nowhere", "role": "training"}]

    response = owner.client.post(
        "/api/v1/models/",
        {"name": "fraud-v2", "team": "fraud", "stage": "design", "design": complete_card},
        format="json",
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert "design.resource_budget.latency_p95_ms" in details
    assert not RegisteredModel.objects.filter(name="fraud-v2").exists()
    assert not AuditRecord.objects.filter(model_name="fraud-v2").exists()


def test_an_inline_card_naming_an_unknown_dataset_creates_no_model(owner, fraud_datasets, complete_card):
    complete_card["datasets"] = [{"name": "nowhere", "role": "training"}]

    response = owner.client.post(
        "/api/v1/models/", {"name": "fraud-v2", "team": "fraud", "design": complete_card}, format="json"
    )

    assert response.status_code == 400
    assert "design.datasets[0].name" in response.json()["error"]["details"]
    assert not RegisteredModel.objects.filter(name="fraud-v2").exists()
