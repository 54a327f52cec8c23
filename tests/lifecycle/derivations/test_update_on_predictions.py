"""The update trigger end to end: a production forest trained on a real worker, its
predictions logged through the API with ground truth sent later, a drift monitor whose
action is ``derive``, and the incremental update it asks for run on a worker over the
last week's labelled predictions, registered as a child of production with its recipe."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from lifecycle.governance.services.transitions import transition_request
from lifecycle.jobs.models import Job
from lifecycle.monitoring.choices import ActionState
from lifecycle.monitoring.services.actions import alert_action_run
from lifecycle.monitoring.services.alerts import monitors_evaluate
from lifecycle.monitoring.services.windows import window_record
from registry.choices import Stage
from registry.services import model_update
from tests.lifecycle.derivations.test_derive_flow import _model, _settled, _trained
from tests.lifecycle.monitoring.test_alerts import START, STEP, frame_of

pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("mlflow"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("broker", ["redis"], indirect=True),
]

LOGGED = 150
UPDATE_ON_DRIFT = {
    "type": "drift",
    "statistic": "psi",
    "windows": 1,
    "action": "derive",
    "method": "incremental",
    "params": {"add_estimators": 5, "data": {"source": "predictions", "days": 7, "min_rows": 100}},
}


def _log_labelled_predictions(owner, model, frame) -> None:
    features = frame.drop(columns=["target"])
    records = [
        {
            "request_id": f"call-{i}",
            "version": 1,
            "latency_ms": 3.0,
            "inputs": {"dataframe_records": [row]},
            "outputs": {"predictions": [int(frame["target"][i])]},
        }
        for i, row in enumerate(features.head(LOGGED + 20).to_dict(orient="records"))
    ]
    posted = owner.client.post(f"/api/v1/models/{model.name}/predictions/", records, format="json")
    assert posted.status_code == 202, posted.json()
    # Ground truth comes for all but the last 20 calls.
    labels = [{"request_id": f"call-{i}", "label": int(frame["target"][i])} for i in range(LOGGED)]
    sent = owner.client.post(f"/api/v1/models/{model.name}/feedback/", labels, format="json")
    assert sent.status_code == 202, sent.json()


def test_a_drift_alert_updates_production_incrementally_on_the_labelled_predictions(
    workers, owner, approver, s3_endpoint
):
    model = _model(owner, s3_endpoint, name="tumours-live")
    parent = _trained(owner, model, "RandomForestClassifier", {"n_estimators": 20, "random_state": 0})
    for stage in (Stage.STAGING, Stage.PRODUCTION):
        assert transition_request(version=parent, to=stage, reason="first", actor=owner.user).status == "applied"
    model_update(actor=approver.user, model=model, changes={"policy": {"rules": [], "monitors": [UPDATE_ON_DRIFT]}})
    cancer = load_breast_cancer(as_frame=True).frame
    _log_labelled_predictions(owner, model, cancer)
    window_record(
        version=parent,
        deployment=None,
        start=START,
        end=START + STEP,
        frame=frame_of(cancer, rows=300, scale=1.6, seed=0),
    )
    (alert,) = monitors_evaluate(version=parent, deployment=None)

    acted = alert_action_run(alert=alert)

    assert acted.action_state == ActionState.DONE, acted.action_result
    job = Job.objects.get(pk=acted.action_result["job"])
    (derivation,) = _settled(job)
    assert derivation.state == "registered", Job.objects.get(pk=job.pk).state_detail
    child = derivation.version
    assert child.parent_id == parent.pk and child.version == 2
    assert derivation.method == "incremental" and derivation.parent_digest == parent.digest
    assert derivation.reason.startswith(f"alert {alert.pk} ") and derivation.created_by.username == "monitor"
    read = derivation.details["data"]
    assert read["source"] == "predictions"
    assert (read["logged_rows"], read["labelled_rows"], read["rows"]) == (LOGGED + 20, LOGGED, LOGGED)
    assert derivation.details["rows"] == LOGGED and "warm_start" in derivation.details["how"]
    tags = MlflowClient().get_model_version(model.name, "2").tags
    assert tags["modelgate.parent_version"] == "1" and tags["modelgate.derivation.method"] == "incremental"
    # The update asked for production, through the same gates (none here): it is there now.
    child.refresh_from_db()
    assert child.stage == Stage.PRODUCTION
    # The alert acts once: running it again starts nothing.
    assert alert_action_run(alert=alert).action_result == acted.action_result
    assert Job.objects.filter(kind="derive").count() == 1
