"""The prediction log's API: batches of prediction records, ground truth, live metrics,
and the window reader the drift jobs use; personal data never reaches the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from lifecycle.monitoring.selectors import prediction_window
from lifecycle.monitoring.store import prediction_store

EMAILS = [f"person{i}@example.org" for i in range(8)]
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def log_root(settings, tmp_path: Path) -> Path:
    """The embedded default: the log in a local directory."""
    root = tmp_path / "prediction-log"
    settings.MODELGATE_PREDICTION_LOG_ROOT = str(root)
    return root


@pytest.fixture
def pii_model(fraud_model, approver):
    from registry.services import model_update

    return model_update(
        actor=approver.user, model=fraud_model, changes={"policy": {**fraud_model.policy, "pii": ["email"]}}
    )


def _records(count: int = 8, version: int = 1) -> list[dict]:
    return [
        {
            "request_id": f"req-{version}-{i}",
            "version": version,
            "ts": (NOW - timedelta(minutes=30) + timedelta(seconds=i)).isoformat(),
            "latency_ms": 3.5,
            "inputs": {"dataframe_records": [{"amount": float(i), "email": EMAILS[i % len(EMAILS)]}]},
            "outputs": {"predictions": [i % 2]},
        }
        for i in range(count)
    ]


def _stored_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_a_batch_of_records_lands_in_the_log_with_personal_data_hashed(owner, pii_model, log_root):
    answer = owner.client.post("/api/v1/models/fraud-detector/predictions/", _records(), format="json")
    assert answer.status_code == 202, answer.json()
    assert answer.json() == {"records": 8, "rows": 8}

    frame = prediction_window(model=pii_model, version=1, start=NOW - timedelta(hours=1), end=NOW)
    assert frame["request_id"].tolist() == [f"req-1-{i}" for i in range(8)]
    assert frame["amount"].tolist() == [float(i) for i in range(8)]
    assert frame["prediction"].tolist() == [i % 2 for i in range(8)]
    assert set(frame["source"]) == {"api"}
    assert all(value.startswith("pii:") for value in frame["email"])
    # Not a byte of any address is in the stored files (Parquet pages are compressed,
    # so the test reads the rows back too: above).
    stored = _stored_bytes(log_root)
    assert stored and all(email.encode() not in stored for email in EMAILS)
    assert b"example.org" not in stored


def test_labels_join_late_and_give_live_metrics_per_window(owner, pii_model, log_root):
    owner.client.post("/api/v1/models/fraud-detector/predictions/", _records(), format="json")
    # The truth: the model was right on 6 of the 8 rows; one label is corrected later.
    labels = [{"request_id": f"req-1-{i}", "label": i % 2 if i < 6 else 1 - i % 2} for i in range(8)]
    labels[0]["label"] = 1
    assert owner.client.post("/api/v1/models/fraud-detector/feedback/", labels, format="json").status_code == 202
    correction = [{"request_id": "req-1-0", "label": 0}]
    answer = owner.client.post("/api/v1/models/fraud-detector/feedback/", {"labels": correction}, format="json")
    assert answer.status_code == 202 and answer.json() == {"labels": 1}

    frame = prediction_window(model=pii_model, version=None, start=NOW - timedelta(hours=1), end=NOW, labels=True)
    assert frame["label"].tolist()[:2] == [0, 1]

    answer = owner.client.get(
        "/api/v1/models/fraud-detector/live-metrics/",
        {"window": "1h", "start": (NOW - timedelta(hours=1)).isoformat(), "end": NOW.isoformat()},
    )
    assert answer.status_code == 200, answer.json()
    (window,) = answer.json()["results"]
    assert window["version"] == 1 and window["rows"] == 8 and window["labelled_rows"] == 8
    assert window["metrics"]["accuracy"] == pytest.approx(6 / 8)
    assert "f1" in window["metrics"]


def test_rows_without_labels_are_counted_but_not_scored(owner, fraud_model, log_root):
    owner.client.post("/api/v1/models/fraud-detector/predictions/", _records(4), format="json")
    answer = owner.client.get("/api/v1/models/fraud-detector/live-metrics/", {"window": "1d", "version": "1"})
    (window,) = answer.json()["results"]
    assert window["rows"] == 4 and window["labelled_rows"] == 0 and window["metrics"] == {}


def test_a_regression_model_gets_rmse(owner, log_root):
    from registry.services import model_create, team_ensure

    model_create(actor=owner.user, name="price", team=team_ensure(name="fraud"), task="regression")
    records = [
        {"request_id": f"p{i}", "version": 2, "inputs": {"instances": [[i]]}, "outputs": [float(i)]} for i in range(4)
    ]
    owner.client.post("/api/v1/models/price/predictions/", records, format="json")
    owner.client.post(
        "/api/v1/models/price/feedback/", [{"request_id": f"p{i}", "label": i + 1.0} for i in range(4)], format="json"
    )
    (window,) = owner.client.get("/api/v1/models/price/live-metrics/").json()["results"]
    assert window["metrics"]["rmse"] == pytest.approx(1.0)
    assert window["labelled_rows"] == 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([{"request_id": "a", "inputs": {}}], "records[0].version"),
        ([{"request_id": "a", "version": 1, "inputs": {}, "colour": "red"}], "records[0].colour"),
        ({"rows": []}, "records"),
        ([], "records"),
    ],
)
def test_bad_records_are_refused_naming_the_field(owner, fraud_model, log_root, body, field):
    answer = owner.client.post("/api/v1/models/fraud-detector/predictions/", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json()["error"]["details"]
    assert not log_root.exists()


def test_a_label_must_be_a_plain_value(owner, fraud_model, log_root):
    answer = owner.client.post(
        "/api/v1/models/fraud-detector/feedback/", [{"request_id": "a", "label": {"x": 1}}], format="json"
    )
    assert answer.status_code == 400 and "labels[0].label" in answer.json()["error"]["details"]


@pytest.mark.parametrize("query", [{"window": "forever"}, {"version": "two"}, {"start": "yesterday"}, {"x": "1"}])
def test_bad_live_metric_queries_are_refused(owner, fraud_model, log_root, query):
    answer = owner.client.get("/api/v1/models/fraud-detector/live-metrics/", query)
    assert answer.status_code == 400


def test_a_viewer_cannot_send_predictions_or_labels(viewer, fraud_model, log_root):
    for path, body in (("predictions", _records(1)), ("feedback", [{"request_id": "a", "label": 1}])):
        assert viewer.client.post(f"/api/v1/models/fraud-detector/{path}/", body, format="json").status_code == 403
    assert not log_root.exists()
    # ... and may read the live metrics of its team's model.
    assert viewer.client.get("/api/v1/models/fraud-detector/live-metrics/").status_code == 200


def test_an_outsider_sees_no_such_model(outsider, fraud_model, log_root):
    assert (
        outsider.client.post("/api/v1/models/fraud-detector/predictions/", _records(1), format="json").status_code
        == 404
    )
    assert outsider.client.get("/api/v1/models/fraud-detector/live-metrics/").status_code == 404


def test_anonymous_callers_are_refused(anonymous, fraud_model, log_root):
    assert anonymous.post("/api/v1/models/fraud-detector/feedback/", [], format="json").status_code == 401
    assert anonymous.get("/api/v1/models/fraud-detector/live-metrics/").status_code == 401


def test_a_serve_token_may_send_and_a_read_token_may_not(owner, fraud_model, log_root):
    from registry.services import api_token_issue

    def client(scopes):
        _, token = api_token_issue(user=owner.user, scopes=scopes)
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return c

    path = "/api/v1/models/fraud-detector/predictions/"
    assert client(["serve"]).post(path, _records(1), format="json").status_code == 202
    assert client(["read"]).post(path, _records(1), format="json").status_code == 403


@pytest.mark.django_db
def test_the_log_is_read_from_s3_as_from_a_directory(live_services, settings, owner, pii_model):
    settings.MODELGATE_PREDICTION_LOG_ROOT = ""
    assert prediction_store().root.startswith("s3://")
    owner.client.post("/api/v1/models/fraud-detector/predictions/", _records(3), format="json")
    frame = prediction_window(model=pii_model, version=1, start=NOW - timedelta(hours=1), end=NOW)
    assert frame["request_id"].tolist() == ["req-1-0", "req-1-1", "req-1-2"]
    assert all(value.startswith("pii:") for value in frame["email"])


def test_a_store_that_cannot_be_written_is_a_503_and_nothing_half_written(owner, fraud_model, settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the log's directory should be")
    settings.MODELGATE_PREDICTION_LOG_ROOT = str(blocker / "log")
    answer = owner.client.post("/api/v1/models/fraud-detector/predictions/", _records(2), format="json")
    assert answer.status_code == 503
    assert answer.json()["error"]["details"]["dependency"] == "artifacts"
