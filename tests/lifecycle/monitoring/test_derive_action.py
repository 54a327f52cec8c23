"""A monitor whose action is ``derive``: validated with the policy (the method's parameters
by the update stage's own check), and an alert that fires asks the update stage for the
derivation once, as the monitor, naming the alert."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle.derivations.choices import DerivationMethod
from lifecycle.derivations.models import Derivation
from lifecycle.governance.models import AuditRecord
from lifecycle.governance.rules import PolicyError
from lifecycle.governance.services.transitions import transition_request
from lifecycle.jobs.models import Job
from lifecycle.monitoring.choices import ActionState, AlertAction
from lifecycle.monitoring.models import Alert
from lifecycle.monitoring.rules import DERIVE_METHODS, parse_monitors
from lifecycle.monitoring.services.actions import alert_action_run
from registry.choices import Stage
from registry.services import dataset_create, model_update, team_ensure
from tests.lifecycle.monitoring.test_alerts import START, STEP, frame_of
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db

GATES = [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8}]
UPDATE_ON_DRIFT = {
    "type": "drift",
    "statistic": "psi",
    "windows": 1,
    "action": "derive",
    "method": "incremental",
    "params": {"epochs": 2, "data": {"source": "predictions", "days": 7}},
}


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    """Jobs are queued, never dispatched: the job itself runs in the update stage's tests."""
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


@pytest.fixture
def cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def _monitored(model, approver, owner, monitors: list[dict[str, Any]]) -> None:
    dataset_create(
        actor=owner.user, team=team_ensure(name="fraud"), name="cancer", uri="builtin:breast_cancer", target="target"
    )
    model_update(
        actor=approver.user,
        model=model,
        changes={"policy": {"rules": GATES, "monitors": monitors}, "dataset": "cancer"},
    )


def _fired(version, cancer) -> Alert:
    from lifecycle.monitoring.services.alerts import monitors_evaluate
    from lifecycle.monitoring.services.windows import window_record

    window_record(
        version=version,
        deployment=None,
        start=START,
        end=START + STEP,
        frame=frame_of(cancer, rows=300, scale=1.6, seed=0),
    )
    (alert,) = monitors_evaluate(version=version, deployment=None)
    return alert


@pytest.fixture
def production(fraud_model, owner):
    version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    applied = transition_request(version=version, to=Stage.PRODUCTION, reason="good", actor=owner.user)
    assert applied.status == "applied", applied.status_detail
    return version


def test_the_monitors_copy_of_the_method_names_agrees_with_the_update_stage():
    assert DERIVE_METHODS == tuple(DerivationMethod.values)


def test_a_derive_action_names_a_method_and_only_it_takes_one():
    with pytest.raises(PolicyError) as caught:
        parse_monitors(
            [
                {"type": "drift", "action": "derive"},
                {"type": "drift", "action": "derive", "method": "compress", "params": []},
                {"type": "drift", "action": "rollback", "method": "onnx"},
            ]
        )
    errors = {e["field"]: e["message"] for e in caught.value.errors}
    assert "unknown derivation method None" in errors["monitors[0].method"]
    assert "compress" in errors["monitors[1].method"] and "object" in errors["monitors[1].params"]
    assert "only a derive action" in errors["monitors[2].method"]


def test_a_derive_monitors_parameters_are_checked_by_the_update_stage_and_named(approver, fraud_model):
    bad = {**UPDATE_ON_DRIFT, "params": {"epochs": 0, "data": {"source": "predictions"}, "colour": 1}}
    response = approver.client.patch(
        f"/api/v1/models/{fraud_model.name}/",
        {"policy": {"rules": GATES, "monitors": [bad]}},
        format="json",
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert "policy.monitors[0].params.epochs" in details
    assert "days is required" in str(details["policy.monitors[0].params.data"])
    assert "policy.monitors[0].params.colour" in details


def test_a_derive_monitor_is_stored_with_its_method_and_other_monitors_without(approver, owner, fraud_model):
    _monitored(fraud_model, approver, owner, [UPDATE_ON_DRIFT, {"type": "error_rate", "op": ">", "value": 0.05}])

    fraud_model.refresh_from_db()
    derive, plain = fraud_model.policy["monitors"]
    assert (derive["action"], derive["method"], derive["params"]) == (
        "derive",
        "incremental",
        UPDATE_ON_DRIFT["params"],
    )
    assert "method" not in plain and "params" not in plain


def test_a_firing_derive_alert_queues_one_update_of_production_as_the_monitor(
    approver, owner, fraud_model, production, cancer
):
    _monitored(fraud_model, approver, owner, [UPDATE_ON_DRIFT])
    alert = _fired(production, cancer)
    assert (alert.action, alert.action_state) == (AlertAction.DERIVE, ActionState.PENDING)

    first = alert_action_run(alert=alert)
    second = alert_action_run(alert=alert)

    assert first.action_state == second.action_state == ActionState.DONE
    (job,) = Job.objects.filter(kind="derive")
    assert first.action_result == {"job": job.pk, "method": "incremental"}
    derivation = Derivation.objects.get(job=job)
    assert derivation.parent == production and derivation.method == "incremental"
    assert derivation.created_by.username == "monitor" and derivation.reason.startswith(f"alert {alert.pk} ")
    window = job.spec["params"]["new_data"]
    assert window["source"] == "predictions" and window["model"] == fraud_model.name and window["min_rows"] == 20
    assert job.spec["params"]["request_stage"] == "production"
    record = AuditRecord.objects.get(action="version.derive")
    assert record.actor.username == "monitor" and f"alert {alert.pk}" in record.reason


def test_a_derive_alert_on_a_version_no_longer_in_production_fails_once_and_says_why(
    approver, owner, fraud_model, production, cancer
):
    _monitored(fraud_model, approver, owner, [UPDATE_ON_DRIFT])
    alert = _fired(production, cancer)
    newer = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.95})
    transition_request(version=newer, to=Stage.PRODUCTION, reason="better", actor=owner.user)

    failed = alert_action_run(alert=alert)

    assert failed.action_state == ActionState.FAILED
    assert "not production" in failed.action_result["error"]
    assert not Job.objects.filter(kind="derive").exists()


def test_a_refused_update_is_recorded_on_the_alert(approver, owner, fraud_model, production, cancer):
    _monitored(fraud_model, approver, owner, [UPDATE_ON_DRIFT])
    alert = _fired(production, cancer)
    # The production version lost its digest: the update stage refuses to derive from it.
    type(production).objects.filter(pk=production.pk).update(digest="")

    failed = alert_action_run(alert=alert)

    assert failed.action_state == ActionState.FAILED and "digest" in failed.action_result["error"]
    assert AuditRecord.objects.filter(action="alert.action_failed", object_id=str(alert.pk)).count() == 1
