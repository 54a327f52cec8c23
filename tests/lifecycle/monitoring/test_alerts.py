"""Monitors over stored windows on PostgreSQL: the reference profile of the version's
dataset, an unshifted stream that fires nothing, a shifted one whose rollback leaves one
production version and names the alert, deduplication, exactly one action per alert,
canary abort, and the alert endpoints with who may call them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from lifecycle.deployments.choices import RouteMode
from lifecycle.deployments.models import Deployment
from lifecycle.governance.models import AuditRecord, OutboxEvent, Transition
from lifecycle.governance.services.audit import audit_verify
from lifecycle.governance.services.transitions import transition_request
from lifecycle.monitoring.choices import ActionState, AlertAction, AlertStatus
from lifecycle.monitoring.models import Alert, DriftResult, MonitorWindow, ReferenceProfile
from lifecycle.monitoring.services.actions import alert_action_run
from lifecycle.monitoring.services.alerts import monitors_evaluate
from lifecycle.monitoring.services.windows import window_record
from registry.choices import Stage
from registry.models import ModelVersion, RegisteredModel
from registry.services import dataset_create, model_update, team_ensure
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db

GATES = [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8}]
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    """Jobs are queued, never dispatched: nothing here runs a replica."""
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def monitored(model: RegisteredModel, approver, owner, monitors: list[dict[str, Any]]) -> None:
    dataset_create(
        actor=owner.user, team=team_ensure(name="fraud"), name="cancer", uri="builtin:breast_cancer", target="target"
    )
    model_update(
        actor=approver.user,
        model=model,
        changes={"policy": {"rules": GATES, "monitors": monitors}, "dataset": "cancer"},
    )


@pytest.fixture
def two_productions(fraud_model, owner) -> tuple[ModelVersion, ModelVersion]:
    """v1 was production, v2 is now: a rollback has somewhere to go."""
    versions = []
    for f1 in (0.9, 0.92):
        version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": f1})
        applied = transition_request(version=version, to=Stage.PRODUCTION, reason="better", actor=owner.user)
        assert applied.status == "applied", applied.status_detail
        versions.append(version)
    return versions[0], versions[1]


def frame_of(cancer: pd.DataFrame, *, rows: int, scale: float, seed: int) -> pd.DataFrame:
    """One window as the prediction log gives it: call columns, features, prediction, label."""
    rng = np.random.default_rng(seed)
    sample = cancer.iloc[rng.integers(0, len(cancer), rows)].reset_index(drop=True)
    features = sample.drop(columns="target") * scale
    calls = pd.DataFrame(
        {
            "request_id": [f"r{seed}-{i}" for i in range(rows)],
            "row": 0,
            "deployment_id": pd.NA,
            "version": 2,
            "mode": "primary",
            "source": "gateway",
            "ts": pd.Timestamp(START),
            "latency_ms": rng.gamma(4.0, 5.0, rows),
            "status": 200,
        }
    )
    return pd.concat([calls, features], axis=1).assign(prediction=sample["target"], label=sample["target"])


def stream(version: ModelVersion, cancer, *, windows: int, scale: float, first: int = 0, deployment=None) -> list:
    opened = []
    for i in range(first, first + windows):
        start = START + i * STEP
        window_record(
            version=version,
            deployment=deployment,
            start=start,
            end=start + STEP,
            frame=frame_of(cancer, rows=300, scale=scale, seed=i),
        )
        opened.extend(monitors_evaluate(version=version, deployment=deployment))
    return opened


ROLLBACK_ON_DRIFT = [{"type": "drift", "features": "*", "statistic": "psi", "windows": 3, "action": "rollback"}]


def test_a_window_stores_every_features_drift_against_the_datasets_reference(
    owner, approver, fraud_model, two_productions, cancer
):
    monitored(fraud_model, approver, owner, ROLLBACK_ON_DRIFT)
    _, v2 = two_productions
    window = window_record(
        version=v2, start=START, end=START + STEP, frame=frame_of(cancer, rows=300, scale=1.0, seed=0)
    )
    assert ReferenceProfile.objects.count() == 1
    assert window.reference.profile["prediction"]["kind"] == "categorical"
    assert window.rows == 300 and window.labels == 300 and window.metrics["accuracy"] == 1.0
    assert window.schema == []
    assert DriftResult.objects.filter(window=window).count() == 31  # 30 features and the prediction
    # Stored once: the same window again is the same row.
    again = window_record(version=v2, start=START, end=START + STEP, frame=frame_of(cancer, rows=10, scale=9, seed=1))
    assert again.pk == window.pk and MonitorWindow.objects.count() == 1


def test_an_unshifted_stream_fires_nothing_over_twenty_windows(owner, approver, fraud_model, two_productions, cancer):
    monitored(
        fraud_model,
        approver,
        owner,
        [{"type": "drift", "statistic": s} for s in ("psi", "ks", "ks_pvalue", "chi2_pvalue", "out_of_range_share")]
        + [{"type": "live_metric", "metric": "f1_macro", "op": "<", "value": 0.85, "min_labels": 200}],
    )
    _, v2 = two_productions
    assert stream(v2, cancer, windows=20, scale=1.0) == []
    assert not Alert.objects.exists()


def test_a_drift_rollback_leaves_one_production_version_and_an_audit_record_naming_the_alert(
    owner, approver, fraud_model, two_productions, cancer
):
    monitored(fraud_model, approver, owner, ROLLBACK_ON_DRIFT)
    v1, v2 = two_productions
    assert stream(v2, cancer, windows=2, scale=1.5) == []  # two windows: not yet
    (alert,) = stream(v2, cancer, windows=1, scale=1.5, first=2)
    assert (alert.status, alert.action, alert.action_state) == (AlertStatus.FIRING, AlertAction.ROLLBACK, "pending")
    assert len(alert.features) > 20 and alert.observed > 0.2
    assert OutboxEvent.objects.filter(event_type="alert.firing").count() == 1

    done = alert_action_run(alert=alert)

    assert done.action_state == ActionState.DONE
    assert list(ModelVersion.objects.filter(model=fraud_model, stage=Stage.PRODUCTION)) == [v1]
    assert ModelVersion.objects.get(pk=v2.pk).stage == Stage.ROLLED_BACK
    record = AuditRecord.objects.get(action="model.rollback")
    assert record.actor_name == "monitor"
    assert f"alert {alert.pk}" in record.reason
    assert done.action_result["to_version"] == 1
    assert audit_verify().valid


def test_a_second_pass_over_the_same_window_counts_no_new_occurrence(
    owner, approver, fraud_model, two_productions, cancer
):
    monitored(fraud_model, approver, owner, ROLLBACK_ON_DRIFT)
    _, v2 = two_productions
    (alert,) = stream(v2, cancer, windows=3, scale=1.5)
    # The periodic pass runs more often than windows close: judging the same windows again
    # neither opens an alert nor counts one.
    assert monitors_evaluate(version=v2, deployment=None) == []
    alert.refresh_from_db()
    assert alert.occurrences == 1 and Alert.objects.count() == 1


def test_a_duplicate_alert_does_not_roll_back_twice(owner, approver, fraud_model, two_productions, cancer):
    monitored(fraud_model, approver, owner, ROLLBACK_ON_DRIFT)
    _, v2 = two_productions
    (alert,) = stream(v2, cancer, windows=3, scale=1.5)
    # The rule keeps firing: the open alert counts it, no second alert opens.
    assert stream(v2, cancer, windows=2, scale=1.5, first=3) == []
    alert.refresh_from_db()
    assert alert.occurrences == 3 and Alert.objects.count() == 1

    first = alert_action_run(alert=alert)
    second = alert_action_run(alert=alert)

    assert first.action_state == second.action_state == ActionState.DONE
    assert Transition.objects.filter(kind="rollback").count() == 1
    assert AuditRecord.objects.filter(action="model.rollback").count() == 1


def test_a_resolved_alert_lets_the_rule_open_a_new_one(owner, approver, fraud_model, two_productions, cancer):
    from lifecycle.monitoring.services.alerts import alert_resolve

    monitored(fraud_model, approver, owner, [{"type": "drift", "statistic": "psi", "windows": 1}])
    _, v2 = two_productions
    (first,) = stream(v2, cancer, windows=1, scale=1.5)
    assert first.action_state == ActionState.NONE
    alert_resolve(alert=first, actor=approver.user, comment="new supplier, expected")
    (second,) = stream(v2, cancer, windows=1, scale=1.5, first=1)
    assert second.pk != first.pk
    assert OutboxEvent.objects.filter(event_type="alert.resolved").count() == 1


def test_a_retrain_without_a_recipe_fails_once_and_says_why(owner, approver, fraud_model, two_productions, cancer):
    monitored(fraud_model, approver, owner, [{"type": "drift", "statistic": "psi", "windows": 1, "action": "retrain"}])
    _, v2 = two_productions
    (alert,) = stream(v2, cancer, windows=1, scale=1.5)
    failed = alert_action_run(alert=alert)
    assert failed.action_state == ActionState.FAILED
    assert "recipe" in failed.action_result["error"]
    assert AuditRecord.objects.filter(action="alert.action_failed", object_id=str(alert.pk)).count() == 1


def test_a_canary_whose_monitors_fire_is_aborted(owner, approver, fraud_model, cancer):
    monitored(fraud_model, approver, owner, [{"type": "drift", "statistic": "psi", "windows": 2}])
    v1 = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    transition_request(version=v1, to=Stage.PRODUCTION, reason="first", actor=owner.user)
    version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.95})
    body = owner.client.post(f"/api/v1/models/{fraud_model.name}/deployments/", {}, format="json").json()
    started = approver.client.post(
        f"/api/v1/deployments/{body['id']}/canary/", {"version": 2, "weight": 0.2}, format="json"
    )
    assert started.status_code == 200, started.json()
    deployment = Deployment.objects.get(pk=body["id"])
    canary = deployment.routes.get(mode=RouteMode.CANARY).version

    (alert,) = stream(canary, cancer, windows=2, scale=1.5, deployment=deployment)
    assert alert.action == AlertAction.ABORT_CANARY
    alert_action_run(alert=alert)

    assert list(deployment.routes.values_list("version__version", "mode", "weight")) == [(1, "primary", 1.0)]
    assert deployment.revisions.order_by("-number").first().actor.username == "monitor"


# --- the API ---------------------------------------------------------------------------


@pytest.fixture
def firing(owner, approver, fraud_model, two_productions, cancer) -> Alert:
    monitored(fraud_model, approver, owner, [{"type": "drift", "statistic": "psi", "windows": 1}])
    (alert,) = stream(two_productions[1], cancer, windows=1, scale=1.5)
    return alert


def test_a_viewer_lists_the_models_alerts(viewer, firing):
    response = viewer.client.get("/api/v1/models/fraud-detector/alerts/?status=firing")
    assert response.status_code == 200, response.json()
    (item,) = response.json()["results"]
    assert (item["id"], item["status"], item["version"], item["rule"]["statistic"]) == (firing.pk, "firing", 2, "psi")
    assert viewer.client.get("/api/v1/models/fraud-detector/alerts/?status=burning").status_code == 400


def test_an_outsider_sees_no_alerts_and_cannot_touch_one(outsider, firing):
    assert outsider.client.get("/api/v1/models/fraud-detector/alerts/").status_code == 404
    assert outsider.client.post(f"/api/v1/alerts/{firing.pk}/acknowledge/", {}, format="json").status_code == 404
    assert outsider.client.get("/api/v1/models/fraud-detector/drift/").status_code == 404


def test_anonymous_callers_are_refused(anonymous, firing):
    assert anonymous.get("/api/v1/models/fraud-detector/alerts/").status_code == 401
    assert anonymous.post(f"/api/v1/alerts/{firing.pk}/resolve/", {}, format="json").status_code == 401
    assert anonymous.get("/api/v1/models/fraud-detector/drift/").status_code == 401


@pytest.mark.parametrize("who", ["viewer", "owner"])
def test_only_approvers_acknowledge_or_resolve(request, who, firing):
    actor = request.getfixturevalue(who)
    for verb in ("acknowledge", "resolve"):
        response = actor.client.post(f"/api/v1/alerts/{firing.pk}/{verb}/", {}, format="json")
        assert response.status_code == 403, response.json()
    firing.refresh_from_db()
    assert firing.status == AlertStatus.FIRING


def test_an_approver_acknowledges_then_resolves_and_each_step_is_audited(approver, firing):
    acknowledged = approver.client.post(
        f"/api/v1/alerts/{firing.pk}/acknowledge/", {"comment": "looking"}, format="json"
    )
    assert acknowledged.status_code == 200
    assert (acknowledged.json()["status"], acknowledged.json()["acknowledged_by"]) == ("acknowledged", "approver")
    resolved = approver.client.post(f"/api/v1/alerts/{firing.pk}/resolve/", {"comment": "supplier"}, format="json")
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolution"] == "supplier"
    again = approver.client.post(f"/api/v1/alerts/{firing.pk}/acknowledge/", {}, format="json")
    assert again.status_code == 409
    assert list(
        AuditRecord.objects.filter(object_type="alert", object_id=str(firing.pk)).values_list("action", flat=True)
    ) == ["alert.firing", "alert.acknowledged", "alert.resolved"]
    unknown = approver.client.post(f"/api/v1/alerts/{firing.pk}/resolve/", {"colour": 1}, format="json")
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]["details"]


def test_the_drift_endpoint_gives_each_window_with_its_features(viewer, firing):
    response = viewer.client.get("/api/v1/models/fraud-detector/drift/?version=2&feature=mean radius")
    assert response.status_code == 200
    (window,) = response.json()["results"]
    assert window["rows"] == 300
    assert [d["feature"] for d in window["drift"]] == ["mean radius"]
    assert window["drift"][0]["psi"] > 0.2
    assert viewer.client.get("/api/v1/models/fraud-detector/drift/?version=x").status_code == 400


def test_a_bad_monitor_rule_in_the_policy_is_a_400_naming_it(approver, fraud_model):
    response = approver.client.patch(
        f"/api/v1/models/{fraud_model.name}/",
        {"policy": {"rules": GATES, "monitors": [{"type": "drift", "statistic": "pis", "action": "reboot"}]}},
        format="json",
    )
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert "policy.monitors[0].statistic" in details and "policy.monitors[0].action" in details
    fraud_model.refresh_from_db()
    assert "monitors" not in fraud_model.policy


def test_a_good_monitor_rule_is_stored_in_canonical_form_and_gates_still_apply(approver, owner, fraud_model):
    response = approver.client.patch(
        f"/api/v1/models/{fraud_model.name}/",
        {"policy": {"rules": GATES, "monitors": [{"type": "error_rate", "op": ">", "value": 0.05}]}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    fraud_model.refresh_from_db()
    assert fraud_model.policy["monitors"] == [
        {"type": "error_rate", "op": ">", "value": 0.05, "windows": 3, "action": "alert", "min_rows": 20}
    ]
    low = version_create(model=fraud_model, stage=Stage.EVALUATION, metrics={"f1": 0.5})
    assert transition_request(version=low, to=Stage.STAGING, reason="try", actor=owner.user).status == "blocked"


# --- the periodic pass, over the prediction log ----------------------------------------


def test_the_periodic_pass_reads_the_log_fires_once_and_rolls_back_once(
    settings, tmp_path, owner, approver, fraud_model, two_productions, cancer
):
    from lifecycle.deployments.models import Route
    from lifecycle.monitoring.services.runs import monitoring_pass
    from lifecycle.monitoring.services.windows import window_floor

    settings.MODELGATE_PREDICTION_LOG_ROOT = str(tmp_path / "prediction-log")
    settings.MODELGATE_MONITOR_WINDOW_SECONDS = 300
    monitored(fraud_model, approver, owner, ROLLBACK_ON_DRIFT)
    v1, v2 = two_productions
    body = owner.client.post(f"/api/v1/models/{fraud_model.name}/deployments/", {}, format="json").json()
    base = window_floor(datetime.now(UTC) - timedelta(minutes=40), STEP)
    Route.objects.filter(deployment_id=body["id"]).update(started_at=base - STEP)
    records = []
    for k in range(3):
        frame = frame_of(cancer, rows=120, scale=1.5, seed=k)
        features = frame.drop(
            columns=[
                "request_id",
                "row",
                "deployment_id",
                "version",
                "mode",
                "source",
                "ts",
                "latency_ms",
                "status",
                "prediction",
                "label",
            ]
        )
        for i, row in enumerate(features.to_dict(orient="records")):
            records.append(
                {
                    "request_id": f"w{k}-{i}",
                    "version": 2,
                    "deployment_id": body["id"],
                    "ts": (base + k * STEP + timedelta(seconds=i)).isoformat(),
                    "latency_ms": 4.0,
                    "inputs": {"dataframe_records": [row]},
                    "outputs": {"predictions": [int(frame["prediction"][i])]},
                }
            )
    posted = owner.client.post(f"/api/v1/models/{fraud_model.name}/predictions/", records, format="json")
    assert posted.status_code == 202, posted.json()

    report = monitoring_pass(now=base + 3 * STEP + timedelta(seconds=1))

    windows = MonitorWindow.objects.filter(version=v2, deployment_id=body["id"]).order_by("start")
    assert [w.rows for w in windows] == [0, 120, 120, 120]
    (alert,) = Alert.objects.all()
    assert report.alerts == [alert.pk] and report.actions == {alert.pk: ActionState.DONE}
    assert list(ModelVersion.objects.filter(model=fraud_model, stage=Stage.PRODUCTION)) == [v1]
    # The same windows again: nothing new is stored, nothing fires, nothing acts.
    again = monitoring_pass(now=base + 3 * STEP + timedelta(seconds=2))
    assert (again.windows, again.alerts, again.actions) == (0, [], {})
    assert Transition.objects.filter(kind="rollback").count() == 1
