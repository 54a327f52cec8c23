"""An alert's action whose worker stops mid-way: the claim has a lease, the periodic pass
takes an expired one over and finishes the action (or fails it, saying why), and nothing
acts twice for one alert, because every run first looks for the effect already recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from sklearn.datasets import load_breast_cancer

from lifecycle.governance.models import AuditRecord, Transition
from lifecycle.governance.services.audit import audit_verify
from lifecycle.governance.services.transitions import model_rollback, transition_request
from lifecycle.monitoring.choices import ActionState
from lifecycle.monitoring.models import Alert
from lifecycle.monitoring.services import actions
from lifecycle.monitoring.services.actions import alert_action_reclaim, alert_action_run, alert_actions_reap
from lifecycle.monitoring.services.alerts import monitor_actor
from lifecycle.monitoring.services.runs import monitoring_pass
from registry.choices import Stage
from registry.models import ModelVersion
from tests.lifecycle.monitoring.test_alerts import ROLLBACK_ON_DRIFT, monitored, stream
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    """Jobs are queued, never dispatched."""
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


@pytest.fixture
def two_productions(fraud_model, owner) -> tuple[ModelVersion, ModelVersion]:
    """v1 was production, v2 is now: a rollback has somewhere to go."""
    versions = []
    for f1 in (0.9, 0.92):
        version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": f1})
        assert transition_request(version=version, to=Stage.PRODUCTION, reason="better", actor=owner.user).status == (
            "applied"
        )
        versions.append(version)
    return versions[0], versions[1]


class WorkerKilled(Exception):
    """What a worker that dies mid-way looks like to the code it was running."""


@pytest.fixture
def rollback_alert(owner, approver, fraud_model, two_productions) -> Alert:
    monitored(fraud_model, approver, owner, ROLLBACK_ON_DRIFT)
    cancer = load_breast_cancer(as_frame=True).frame
    (alert,) = stream(two_productions[1], cancer, windows=3, scale=1.5)
    assert alert.action_state == ActionState.PENDING
    return alert


def _expire(alert: Alert) -> None:
    Alert.objects.filter(pk=alert.pk).update(action_lease_until=timezone.now() - timedelta(seconds=1))


def test_a_crash_between_claim_and_finish_is_taken_over_and_rolls_back_once(
    monkeypatch, approver, fraud_model, two_productions, rollback_alert
):
    v1, v2 = two_productions
    crash = {"left": 1}
    real = actions.model_rollback

    def dying_rollback(**kwargs):
        if crash["left"]:
            crash["left"] -= 1
            real(**kwargs)  # the effect is written, then the worker dies before the commit
            raise WorkerKilled("killed mid-way")
        return real(**kwargs)

    monkeypatch.setattr(actions, "model_rollback", dying_rollback)
    with pytest.raises(WorkerKilled):
        alert_action_run(alert=rollback_alert)

    stuck = Alert.objects.get(pk=rollback_alert.pk)
    assert stuck.action_state == ActionState.RUNNING and stuck.action_attempts == 1
    assert stuck.action_lease_until > timezone.now() and stuck.action_claim
    # Nothing of the dead attempt was committed: the effect and "done" go together.
    assert not Transition.objects.filter(kind="rollback").exists()
    assert ModelVersion.objects.get(pk=v2.pk).stage == Stage.PRODUCTION
    # While the lease holds, nobody takes the action over, and a second run does not claim it.
    assert alert_actions_reap() == {}
    assert alert_action_run(alert=rollback_alert).action_state == ActionState.RUNNING

    _expire(stuck)
    report = monitoring_pass()

    done = Alert.objects.get(pk=rollback_alert.pk)
    assert report.actions == {done.pk: ActionState.DONE}
    assert (done.action_state, done.action_attempts, done.action_claim) == (ActionState.DONE, 2, "")
    assert done.action_result["to_version"] == 1 and "recovered" not in done.action_result
    assert list(ModelVersion.objects.filter(model=fraud_model, stage=Stage.PRODUCTION)) == [v1]
    assert Transition.objects.filter(kind="rollback").count() == 1
    assert f"alert {done.pk} (" in AuditRecord.objects.get(action="model.rollback").reason
    assert AuditRecord.objects.filter(action="alert.action_done", object_id=str(done.pk)).count() == 1
    (shown,) = approver.client.get(f"/api/v1/models/{fraud_model.name}/alerts/").json()["results"]
    assert (shown["action_state"], shown["action_attempts"], shown["action_lease_until"]) == ("done", 2, None)
    from tests.frontend.conftest import client_for

    page = client_for(approver).get(f"/models/{fraud_model.name}/monitoring/").content.decode()
    assert "done (claimed 2 times)" in page and "production back to v1" in page
    # Later passes leave it alone.
    assert monitoring_pass().actions == {}
    assert audit_verify().valid


def test_an_effect_already_committed_is_reported_not_repeated(fraud_model, two_productions, rollback_alert):
    """A claim whose worker committed the rollback but never recorded the outcome."""
    v1, _ = two_productions
    Alert.objects.filter(pk=rollback_alert.pk).update(
        action_state=ActionState.RUNNING, action_claim="dead", action_attempts=1, action_at=timezone.now()
    )
    model_rollback(
        model=fraud_model, actor=monitor_actor(team=fraud_model.team), reason=actions.alert_reason(rollback_alert)
    )
    _expire(rollback_alert)

    assert alert_actions_reap() == {rollback_alert.pk: ActionState.DONE}

    done = Alert.objects.get(pk=rollback_alert.pk)
    assert done.action_result["recovered"] is True and done.action_result["to_version"] == 1
    assert done.action_result["transition"] == Transition.objects.get(kind="rollback").pk
    assert Transition.objects.filter(kind="rollback").count() == 1
    assert list(ModelVersion.objects.filter(model=fraud_model, stage=Stage.PRODUCTION)) == [v1]


def test_an_action_that_never_finishes_is_failed_with_the_reason(
    settings, monkeypatch, fraud_model, two_productions, rollback_alert
):
    settings.MODELGATE_ALERT_ACTION_ATTEMPTS = 2

    def always_dies(**kwargs):
        raise WorkerKilled("killed mid-way")

    monkeypatch.setattr(actions, "model_rollback", always_dies)
    with pytest.raises(WorkerKilled):
        alert_action_run(alert=rollback_alert)
    _expire(rollback_alert)
    with pytest.raises(WorkerKilled):
        alert_actions_reap()  # the second claim dies too
    assert Alert.objects.get(pk=rollback_alert.pk).action_attempts == 2
    _expire(rollback_alert)

    assert alert_actions_reap() == {rollback_alert.pk: ActionState.FAILED}

    failed = Alert.objects.get(pk=rollback_alert.pk)
    assert "claimed 2 times and never finished" in failed.action_result["error"]
    assert not Transition.objects.filter(kind="rollback").exists()
    assert ModelVersion.objects.get(pk=two_productions[1].pk).stage == Stage.PRODUCTION
    record = AuditRecord.objects.get(action="alert.action_failed", object_id=str(failed.pk))
    assert record.actor_name == "monitor"


def test_a_claim_taken_over_is_lost_by_its_first_holder(fraud_model, two_productions, rollback_alert):
    """A worker that was only slow finds, when it gets to act, that its claim was taken over."""
    Alert.objects.filter(pk=rollback_alert.pk).update(
        action_state=ActionState.RUNNING, action_claim="slow", action_attempts=1
    )
    _expire(rollback_alert)
    taken = alert_action_reclaim(alert=Alert.objects.get(pk=rollback_alert.pk))
    assert taken.action_state == ActionState.DONE and taken.action_attempts == 2

    late = actions._execute(rollback_alert.pk, "slow")

    assert late.action_state == ActionState.DONE
    assert Transition.objects.filter(kind="rollback").count() == 1
    assert AuditRecord.objects.filter(action="alert.action_done").count() == 1
