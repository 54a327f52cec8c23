"""Exactly one action per alert on real PostgreSQL: passes that judge the same windows at
the same instant open one alert, and workers that run its action at once roll back once.
A retrain alert submits the retraining job with the production version as parent."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from sklearn.datasets import load_breast_cancer

from lifecycle.governance.models import AuditRecord, Transition
from lifecycle.governance.services.audit import audit_verify
from lifecycle.jobs.choices import JobKind
from lifecycle.jobs.models import Job
from lifecycle.monitoring.choices import ActionState
from lifecycle.monitoring.models import Alert
from lifecycle.monitoring.services.actions import alert_action_run
from lifecycle.monitoring.services.alerts import monitors_evaluate
from lifecycle.training.services import training_submit
from registry.choices import Stage
from registry.models import ModelVersion
from tests.conftest import require_service
from tests.environment import POSTGRES_AVAILABLE
from tests.lifecycle.monitoring.test_alerts import ROLLBACK_ON_DRIFT, monitored, stream

pytestmark = [pytest.mark.django_db(transaction=True)]
THREADS = 8


@pytest.fixture(autouse=True)
def on_postgres() -> None:
    require_service("PostgreSQL", POSTGRES_AVAILABLE and connection.vendor == "postgresql")


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


def together(work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in THREADS threads released by one barrier; their results or errors."""
    barrier = threading.Barrier(THREADS)
    results: list[Any] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:  # collected for the assertion below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture
def drifting(owner, approver, fraud_model):
    from lifecycle.governance.services.transitions import transition_request
    from tests.registry.factories import version_create

    monitored(fraud_model, approver, owner, ROLLBACK_ON_DRIFT)
    versions = []
    for f1 in (0.9, 0.92):
        version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": f1})
        transition_request(version=version, to=Stage.PRODUCTION, reason="better", actor=owner.user)
        versions.append(version)
    cancer = load_breast_cancer(as_frame=True).frame
    # Two shifted windows stored and judged: the third is the one every pass sees at once.
    assert stream(versions[1], cancer, windows=2, scale=1.5) == []
    stream(versions[1], cancer, windows=1, scale=1.5, first=2)
    return versions


def test_simultaneous_actions_of_one_alert_roll_back_once(drifting, fraud_model):
    v1, _ = drifting
    alert = Alert.objects.get()

    outcomes = together(lambda: alert_action_run(alert=alert).action_state)

    # One worker claimed and ran it; the others found it running or already done.
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert set(outcomes) <= {ActionState.RUNNING, ActionState.DONE}, outcomes
    assert Alert.objects.get().action_state == ActionState.DONE
    assert Transition.objects.filter(kind="rollback").count() == 1
    assert AuditRecord.objects.filter(action="model.rollback").count() == 1
    assert AuditRecord.objects.filter(action="alert.action_done").count() == 1
    assert list(ModelVersion.objects.filter(model=fraud_model, stage=Stage.PRODUCTION)) == [v1]
    assert audit_verify().valid


def test_simultaneous_passes_over_the_same_windows_open_one_alert(drifting):
    _, v2 = drifting
    Alert.objects.all().delete()

    opened = together(lambda: len(monitors_evaluate(version=v2, deployment=None)))

    assert sorted(opened) == [0] * (THREADS - 1) + [1], opened
    # The losers of the race joined the winner's alert: one firing, seen once.
    assert Alert.objects.get().occurrences == 1
    assert AuditRecord.objects.filter(action="alert.firing").count() == 2  # the fixture's, then this one


def test_a_retrain_alert_submits_the_retraining_job_as_the_monitor(owner, approver, fraud_model):
    from lifecycle.governance.services.transitions import transition_request
    from tests.registry.factories import version_create

    monitored(fraud_model, approver, owner, [{"type": "drift", "statistic": "psi", "windows": 1, "action": "retrain"}])
    fraud_model.refresh_from_db()
    job = training_submit(actor=owner.user, model=fraud_model, estimator="LogisticRegression", estimator_params={})
    version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    Job.objects.filter(pk=job.pk).update(result={"version": version.version})  # as the training outcome leaves it
    transition_request(version=version, to=Stage.PRODUCTION, reason="first", actor=owner.user)
    (alert,) = stream(version, load_breast_cancer(as_frame=True).frame, windows=1, scale=1.5)

    done = alert_action_run(alert=alert)

    assert done.action_state == ActionState.DONE
    retrain = Job.objects.get(pk=done.action_result["job"])
    assert (retrain.kind, retrain.created_by.username) == (JobKind.RETRAIN, "monitor")
    assert retrain.spec["params"]["parent_version"] == version.version
    record = AuditRecord.objects.get(action="model.retrain")
    assert f"alert {alert.pk}" in record.reason


def _stalled(alert: Alert, claim: str) -> None:
    """The alert as a worker that claimed it and then stopped leaves it, lease run out."""
    from datetime import timedelta

    from django.utils import timezone

    Alert.objects.filter(pk=alert.pk).update(
        action_state=ActionState.RUNNING,
        action_claim=claim,
        action_attempts=1,
        action_lease_until=timezone.now() - timedelta(seconds=1),
    )


def test_simultaneous_takeovers_of_a_stalled_action_roll_back_once(drifting, fraud_model):
    from lifecycle.monitoring.services.actions import alert_actions_reap

    v1, _ = drifting
    alert = Alert.objects.get()
    _stalled(alert, "dead")

    outcomes = together(alert_actions_reap)

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert Alert.objects.get().action_state == ActionState.DONE
    assert sum(1 for o in outcomes if o) == 1, outcomes  # one pass took it over
    assert Transition.objects.filter(kind="rollback").count() == 1
    assert AuditRecord.objects.filter(action="alert.action_done").count() == 1
    assert list(ModelVersion.objects.filter(model=fraud_model, stage=Stage.PRODUCTION)) == [v1]
    assert audit_verify().valid


def test_a_late_first_worker_and_the_takeover_act_once_between_them(drifting, fraud_model):
    """The first claim's worker was only slow: it resumes while passes take the claim over."""
    from itertools import count

    from lifecycle.monitoring.services import actions

    v1, _ = drifting
    alert = Alert.objects.get()
    _stalled(alert, "slow")
    turn = count()

    def resume_or_reap() -> object:
        if next(turn) % 2:
            return actions._execute(alert.pk, "slow").action_state
        return actions.alert_actions_reap()

    outcomes = together(resume_or_reap)

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert Alert.objects.get().action_state == ActionState.DONE
    assert Transition.objects.filter(kind="rollback").count() == 1
    assert AuditRecord.objects.filter(action="model.rollback").count() == 1
    assert AuditRecord.objects.filter(action="alert.action_done").count() == 1
    assert list(ModelVersion.objects.filter(model=fraud_model, stage=Stage.PRODUCTION)) == [v1]


def test_a_retrain_submitted_before_its_worker_stopped_is_not_submitted_again(owner, approver, fraud_model):
    from lifecycle.governance.services.transitions import transition_request
    from lifecycle.monitoring.services.actions import alert_actions_reap, alert_reason
    from lifecycle.monitoring.services.alerts import monitor_actor
    from lifecycle.training.services import model_retrain
    from tests.registry.factories import version_create

    monitored(fraud_model, approver, owner, [{"type": "drift", "statistic": "psi", "windows": 1, "action": "retrain"}])
    fraud_model.refresh_from_db()
    job = training_submit(actor=owner.user, model=fraud_model, estimator="LogisticRegression", estimator_params={})
    version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    Job.objects.filter(pk=job.pk).update(result={"version": version.version})
    transition_request(version=version, to=Stage.PRODUCTION, reason="first", actor=owner.user)
    (alert,) = stream(version, load_breast_cancer(as_frame=True).frame, windows=1, scale=1.5)
    _stalled(alert, "dead")
    # The stopped worker had submitted the retraining job before it died.
    submitted = model_retrain(actor=monitor_actor(team=fraud_model.team), model=fraud_model, reason=alert_reason(alert))

    assert alert_actions_reap() == {alert.pk: ActionState.DONE}

    done = Alert.objects.get(pk=alert.pk)
    assert done.action_result["job"] == submitted.pk and done.action_result["recovered"] is True
    assert Job.objects.filter(kind=JobKind.RETRAIN).count() == 1
