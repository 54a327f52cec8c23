"""The gateway's prediction log in front of a real MLflow scoring server: every call (or
the deployment's sample of them) lands in Parquet with personal data hashed, a full queue
drops and counts instead of slowing anyone, the JSON log lines name their request and
never hold personal data, and ``/metrics`` parses as Prometheus text."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.logs import JsonFormatter
from lifecycle.monitoring.prediction_log import PiiMasker
from lifecycle.monitoring.prediction_store import PredictionStore
from serving.prediction_logging import prediction_log_hook
from tests.serving.conftest import COLUMNS, SERVE_TOKEN, SETOSA, VIRGINICA, dead_url, route, table

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("serving-replicas")]

AUTH = {"Authorization": f"Bearer {SERVE_TOKEN}"}
MASKER = PiiMasker(b"gateway test key")
EMAILS = [f"caller{i}@example.org" for i in range(6)]


def logged_table(*routes, sample_rate: float = 1.0, pii: list[str] | None = None) -> dict:
    document = table(1, *routes)
    document["deployments"][0]["log"] = {"sample_rate": sample_rate, "pii": pii or []}
    return document


def payload(i: int) -> dict:
    return {
        "dataframe_records": [{**dict(zip(COLUMNS, VIRGINICA if i % 2 else SETOSA, strict=True)), "email": EMAILS[i]}]
    }


def window(store: PredictionStore):
    now = datetime.now(UTC)
    return store.window(model="iris", start=now - timedelta(hours=1), end=now + timedelta(minutes=1))


def metrics_of(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_gateway_calls_land_in_the_log_with_personal_data_hashed_and_metrics_scrape(
    replicas, gateway_factory, tmp_path: Path
):
    store = PredictionStore(str(tmp_path / "log"), masker=MASKER)
    hook = prediction_log_hook(store.write_calls, flush_seconds=0.05)
    # No signature on the route: the extra "email" column reaches the replica, which
    # scores on the columns it knows.
    server = gateway_factory(
        logged_table(route(1, 1.0, "primary", [replicas["v1a"]]), pii=["email"]), on_prediction=hook
    )
    with httpx.Client(timeout=30) as client:
        answers = [
            client.post(server.invocations(), json=payload(i), headers={**AUTH, "X-Request-Id": f"pl-{i}"})
            for i in range(6)
        ]
        assert {a.status_code for a in answers} == {200}, answers[0].text
        deadline = time.monotonic() + 10
        while hook.buffer.counters.written_calls < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        scraped = client.get(f"{server.url}/metrics")

    frame = window(store)
    assert sorted(frame["request_id"]) == [f"pl-{i}" for i in range(6)]
    assert set(frame["version"]) == {1} and set(frame["deployment_id"]) == {7} and set(frame["mode"]) == {"primary"}
    by_id = frame.set_index("request_id")
    assert by_id.loc["pl-0", "email"] == MASKER.mask_value(EMAILS[0])
    assert by_id.loc["pl-0", "petal length (cm)"] == SETOSA[2]
    assert by_id.loc["pl-1", "prediction"] == 2 and by_id.loc["pl-0", "prediction"] == 0
    stored = b"".join(p.read_bytes() for p in (tmp_path / "log").rglob("*.parquet"))
    assert all(email.encode() not in stored for email in EMAILS)

    assert scraped.status_code == 200
    families = metrics_of(scraped.text)
    served = [
        s
        for s in families["modelgate_gateway_requests"]
        if s.name.endswith("_total")
        and s.labels == {"model": "iris", "version": "1", "route": "primary", "status": "200"}
    ]
    assert served and served[0].value == 6
    durations = [s for s in families["modelgate_gateway_request_duration_seconds"] if s.name.endswith("_count")]
    assert sum(s.value for s in durations) == 6
    dropped = {s.labels["reason"]: s.value for s in families["modelgate_prediction_log_dropped"]}
    assert dropped["queue_full"] == 0
    assert "modelgate_prediction_log_written_rows" in families


def test_a_full_queue_drops_and_counts_while_predictions_go_on(replicas, gateway_factory):
    release = threading.Event()

    def stuck_writer(batch):
        release.wait(30)
        return len(batch)

    hook = prediction_log_hook(stuck_writer, capacity=2, batch_size=1, flush_seconds=0.01)
    server = gateway_factory(logged_table(route(1, 1.0, "primary", [replicas["v1a"]])), on_prediction=hook)
    try:
        with httpx.Client(timeout=30) as client:
            statuses = [
                client.post(server.invocations(), json=payload(i % 6), headers=AUTH).status_code for i in range(8)
            ]
            scraped = metrics_of(client.get(f"{server.url}/metrics").text)
    finally:
        release.set()
    assert statuses == [200] * 8
    dropped = {s.labels["reason"]: s.value for s in scraped["modelgate_prediction_log_dropped"]}
    # One batch is stuck in the writer, two calls wait in the queue, the rest are dropped.
    assert dropped["queue_full"] >= 5
    assert hook.buffer.counters.dropped == dropped["queue_full"]


def test_a_sample_rate_of_zero_logs_nothing(replicas, gateway_factory, tmp_path: Path):
    store = PredictionStore(str(tmp_path / "log"), masker=MASKER)
    hook = prediction_log_hook(store.write_calls, flush_seconds=0.05)
    server = gateway_factory(
        logged_table(route(1, 1.0, "primary", [replicas["v1a"]]), sample_rate=0.0), on_prediction=hook
    )
    with httpx.Client(timeout=30) as client:
        for i in range(3):
            assert client.post(server.invocations(), json=payload(i), headers=AUTH).status_code == 200
    server.stop()
    assert hook.sampled_out == 3 and hook.buffer.counters.offered == 0
    assert window(store).empty


def test_json_log_lines_name_their_request_and_hold_no_personal_data(replicas, gateway_factory, tmp_path: Path):
    log_file = tmp_path / "gateway.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    store = PredictionStore(str(tmp_path / "log"), masker=MASKER)
    hook = prediction_log_hook(store.write_calls, flush_seconds=0.05)
    try:
        # The shadow answers from nowhere: the gateway logs a warning for each call.
        document = logged_table(
            route(1, 1.0, "primary", [replicas["v1a"]]), route(2, 0.0, "shadow", [dead_url()]), pii=["email"]
        )
        server = gateway_factory(document, on_prediction=hook)
        with httpx.Client(timeout=30) as client:
            for i in range(3):
                answer = client.post(
                    server.invocations(), json=payload(i), headers={**AUTH, "X-Request-Id": f"log-{i}"}
                )
                assert answer.status_code == 200
            deadline = time.monotonic() + 10
            while server.gateway.counters.shadow_failed < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        server.stop()
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()

    text = log_file.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    assert events and all({"ts", "level", "logger", "message", "request_id"} <= set(e) for e in events)
    shadow_lines = [e for e in events if e["logger"] == "serving.gateway" and "shadow" in e["message"]]
    assert {e["request_id"] for e in shadow_lines} == {"log-0", "log-1", "log-2"}
    assert all(email not in text for email in EMAILS)
    # The calls were logged (masked) all the same.
    assert sorted(window(store)["request_id"]) == ["log-0", "log-1", "log-2"]
