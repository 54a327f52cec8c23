"""The periodic pass over the prediction log: records sent through the API name their
deployment (id or name) and land in its windows; each deployment is computed on its own
schedule, only when its next window is due; labels that arrive after a window was
computed have the next pass compute its live metrics again, and the monitors that read
them fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sklearn.datasets import load_breast_cancer

from lifecycle.deployments.models import Deployment, Route
from lifecycle.governance.services.transitions import transition_request
from lifecycle.monitoring.models import Alert, MonitorWindow
from lifecycle.monitoring.selectors import prediction_window
from lifecycle.monitoring.services.runs import monitoring_pass
from lifecycle.monitoring.services.windows import window_floor
from registry.choices import Stage
from tests.lifecycle.monitoring.test_alerts import monitored
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db
CANCER = load_breast_cancer(as_frame=True).frame


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    """Replicas are queued, never dispatched."""
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


@pytest.fixture(autouse=True)
def log_root(settings, tmp_path) -> None:
    settings.MODELGATE_PREDICTION_LOG_ROOT = str(tmp_path / "prediction-log")
    settings.MODELGATE_MONITOR_WINDOW_SECONDS = 300


@pytest.fixture
def served(owner, fraud_model):
    version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    assert transition_request(version=version, to=Stage.PRODUCTION, reason="first", actor=owner.user).status == (
        "applied"
    )
    return version


def deploy(owner, model, body: dict) -> Deployment:
    answer = owner.client.post(f"/api/v1/models/{model.name}/deployments/", body, format="json")
    assert answer.status_code == 201, answer.json()
    return Deployment.objects.get(pk=answer.json()["id"])


def records(start: datetime, count: int, prefix: str, **extra) -> list[dict]:
    rows = CANCER.sample(count, random_state=len(prefix) + count, replace=True).reset_index(drop=True)
    return [
        {
            "request_id": f"{prefix}-{i}",
            "version": 1,
            "ts": (start + timedelta(seconds=i)).isoformat(),
            "latency_ms": 3.0,
            "inputs": {"dataframe_records": [row.drop("target").to_dict()]},
            "outputs": {"predictions": [int(row["target"])]},
            **extra,
        }
        for i, row in rows.iterrows()
    ]


def post(owner, model, body) -> dict:
    answer = owner.client.post(f"/api/v1/models/{model.name}/predictions/", body, format="json")
    assert answer.status_code == 202, answer.json()
    return answer.json()


def test_records_name_their_deployment_by_id_or_name_and_an_unknown_one_is_a_400(owner, fraud_model, served):
    web = deploy(owner, fraud_model, {"name": "web"})
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    post(owner, fraud_model, {"records": records(now, 3, "batch"), "deployment": "web"})
    post(owner, fraud_model, records(now + timedelta(minutes=1), 2, "own", deployment=web.pk))
    post(owner, fraud_model, records(now + timedelta(minutes=2), 2, "old", deployment_id=web.pk))
    post(owner, fraud_model, records(now + timedelta(minutes=3), 1, "none"))

    frame = prediction_window(
        model=fraud_model, version=1, start=now, end=now + timedelta(minutes=10), deployment_id=web.pk
    )
    assert sorted(frame["request_id"]) == ["batch-0", "batch-1", "batch-2", "old-0", "old-1", "own-0", "own-1"]

    for body, field in [
        ({"records": records(now, 1, "x"), "deployment": "mobile"}, "deployment"),
        ({"records": records(now, 1, "x"), "deployment": True}, "deployment"),
        (records(now, 1, "x") + records(now, 1, "y", deployment="mobile"), "records[1].deployment"),
        (records(now, 1, "x", deployment_id=web.pk + 99), "records[0].deployment_id"),
        (records(now, 1, "x", deployment="web", deployment_id=web.pk + 99), "records[0].deployment_id"),
    ]:
        answer = owner.client.post(f"/api/v1/models/{fraud_model.name}/predictions/", body, format="json")
        assert answer.status_code == 400, (field, answer.json())
        assert field in answer.json()["error"]["details"], (field, answer.json())
    # Nothing of a refused batch was written.
    assert len(prediction_window(model=fraud_model, version=1, start=now, end=now + timedelta(minutes=10))) == 8


def test_each_deployment_is_computed_only_when_its_next_window_is_due(owner, approver, fraud_model, served):
    monitored(fraud_model, approver, owner, [{"type": "error_rate", "op": ">", "value": 0.5}])
    slow = deploy(owner, fraud_model, {"name": "slow", "monitor_every_minutes": 10})
    fast = deploy(owner, fraud_model, {"name": "fast"})
    assert slow.monitor_every_minutes == 10 and fast.monitor_every_minutes is None
    base = window_floor(datetime.now(UTC) - timedelta(hours=1), timedelta(minutes=10))
    Route.objects.filter(deployment__in=[slow, fast]).update(started_at=base)
    post(owner, fraud_model, {"records": records(base, 30, "s1"), "deployment": "slow"})
    post(owner, fraud_model, {"records": records(base + timedelta(minutes=10), 20, "s2"), "deployment": "slow"})
    post(owner, fraud_model, {"records": records(base, 10, "f1"), "deployment": "fast"})

    first = monitoring_pass(now=base + timedelta(minutes=20, seconds=1))

    assert sorted(first.deployments) == sorted([slow.pk, fast.pk]) and first.problems == []
    slow_windows = MonitorWindow.objects.filter(deployment=slow).order_by("start")
    assert [(w.end - w.start, w.rows) for w in slow_windows] == [
        (timedelta(minutes=10), 30),
        (timedelta(minutes=10), 20),
    ]
    assert [w.rows for w in MonitorWindow.objects.filter(deployment=fast).order_by("start")] == [10, 0, 0, 0]
    slow.refresh_from_db()
    assert slow.monitor_due_at == base + timedelta(minutes=30)

    # Five minutes on: the default deployment's next window has ended, the slow one's has not.
    second = monitoring_pass(now=base + timedelta(minutes=25, seconds=1))
    assert second.deployments == [fast.pk] and second.windows == 1
    assert MonitorWindow.objects.filter(deployment=slow).count() == 2
    # Before either is due again the pass reads nothing.
    assert monitoring_pass(now=base + timedelta(minutes=29)).deployments == []

    third = monitoring_pass(now=base + timedelta(minutes=30, seconds=1))
    assert sorted(third.deployments) == sorted([slow.pk, fast.pk]) and third.windows == 2
    assert MonitorWindow.objects.filter(deployment=slow).count() == 3


def test_late_labels_recompute_the_windows_live_metrics_and_the_monitor_fires(owner, approver, fraud_model, served):
    monitored(
        fraud_model,
        approver,
        owner,
        [{"type": "live_metric", "metric": "accuracy", "op": "<", "value": 0.9, "min_labels": 50, "windows": 1}],
    )
    web = deploy(owner, fraud_model, {"name": "web"})
    base = window_floor(datetime.now(UTC) - timedelta(minutes=30), timedelta(minutes=5))
    Route.objects.filter(deployment=web).update(started_at=base)
    sent = records(base, 80, "late")
    post(owner, fraud_model, {"records": sent, "deployment": "web"})
    now = base + timedelta(minutes=5, seconds=1)

    first = monitoring_pass(now=now)
    (window,) = MonitorWindow.objects.filter(deployment=web)
    assert (window.rows, window.labels, first.alerts) == (80, 0, [])

    # The truth arrives after the window was computed: the model was wrong on every row.
    labels = [{"request_id": r["request_id"], "label": 1 - r["outputs"]["predictions"][0]} for r in sent]
    answer = owner.client.post(f"/api/v1/models/{fraud_model.name}/feedback/", labels, format="json")
    assert answer.status_code == 202

    second = monitoring_pass(now=now + timedelta(seconds=30))

    assert second.deployments == [] and second.windows == 0  # not due: only the late labels are read
    assert second.relabelled == 1
    window.refresh_from_db()
    assert window.labels == 80 and window.metrics["accuracy"] == 0.0
    (alert,) = Alert.objects.all()
    assert second.alerts == [alert.pk] and alert.rule["metric"] == "accuracy" and alert.observed == 0.0
    # The same labels are not read twice.
    third = monitoring_pass(now=now + timedelta(seconds=40))
    assert (third.relabelled, third.alerts) == (0, [])
    # Labels for rows of no stored window change nothing.
    owner.client.post(
        f"/api/v1/models/{fraud_model.name}/feedback/", [{"request_id": "elsewhere", "label": 1}], format="json"
    )
    assert monitoring_pass(now=now + timedelta(seconds=50)).relabelled == 0
