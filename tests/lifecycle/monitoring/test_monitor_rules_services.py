"""Monitor rules added and removed one at a time: saved through the registry's
``model_update`` (approvers only, validated and audited as ``PATCH models/{name}/``), the
rest of the policy kept."""

from __future__ import annotations

import pytest

from lifecycle.monitoring.services.monitors import model_monitor_add, model_monitor_remove
from registry.errors import Conflict, Forbidden, InvalidInput

pytestmark = pytest.mark.django_db

ALERT = {"type": "error_rate", "value": 0.05}
DERIVE = {
    "type": "drift",
    "statistic": "psi",
    "action": "derive",
    "method": "incremental",
    "params": {"data": {"source": "predictions", "days": 7, "min_rows": 20}},
}


def test_an_added_rule_comes_back_canonical_after_the_others_and_the_gates_stay(fraud_model, approver):
    first = model_monitor_add(model=fraud_model, monitor=ALERT, actor=approver.user)
    changed = model_monitor_add(model=first, monitor=DERIVE, actor=approver.user, reason="refresh on drift")

    alert, derive = changed.policy["monitors"]
    assert alert["type"] == "error_rate" and alert["windows"] == 3 and alert["action"] == "alert"
    assert derive["method"] == "incremental" and derive["params"] == DERIVE["params"] and derive["min_rows"] == 100
    assert changed.policy["rules"] == fraud_model.policy["rules"]


def test_a_bad_derive_parameter_is_refused_naming_the_rule_and_field(fraud_model, approver):
    model_monitor_add(model=fraud_model, monitor=ALERT, actor=approver.user)
    bad = {**DERIVE, "params": {"data": {"source": "predictions", "days": 7}, "epochs": 0}}

    with pytest.raises(InvalidInput) as caught:
        model_monitor_add(model=fraud_model, monitor=bad, actor=approver.user)

    assert caught.value.details == {"policy.monitors[1].params.epochs": "must be between 1 and 1000"}
    fraud_model.refresh_from_db()
    assert len(fraud_model.policy["monitors"]) == 1


def test_a_developer_may_not_change_the_monitor_rules(fraud_model, owner, approver):
    with pytest.raises(Forbidden):
        model_monitor_add(model=fraud_model, monitor=ALERT, actor=owner.user)
    changed = model_monitor_add(model=fraud_model, monitor=ALERT, actor=approver.user)
    with pytest.raises(Forbidden):
        model_monitor_remove(model=changed, index=0, expected=changed.policy["monitors"][0], actor=owner.user)


def test_removing_takes_only_the_rule_that_was_shown(fraud_model, approver):
    changed = model_monitor_add(model=fraud_model, monitor=ALERT, actor=approver.user)
    (shown,) = changed.policy["monitors"]

    with pytest.raises(Conflict):
        model_monitor_remove(model=changed, index=0, expected={**shown, "value": 0.5}, actor=approver.user)
    with pytest.raises(InvalidInput):
        model_monitor_remove(model=changed, index=3, expected=shown, actor=approver.user)
    emptied = model_monitor_remove(model=changed, index=0, expected=shown, actor=approver.user)

    assert "monitors" not in emptied.policy and emptied.policy["rules"] == fraud_model.policy["rules"]
