"""``/metrics`` of the API service parses as Prometheus text and carries request counts
and the database's figures; JSON log lines name their request and never personal data."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from config.logs import JsonFormatter, logging_config

EMAIL = "private.person@example.org"


def scrape() -> dict[str, list]:
    answer = APIClient().get("/metrics")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(answer.content.decode())}


def test_a_scrape_parses_and_counts_requests_per_route_and_model(owner, fraud_model):
    for _ in range(3):
        assert owner.client.get("/api/v1/models/fraud-detector/").status_code == 200
    owner.client.get("/api/v1/models/no-such-model/")
    families = scrape()
    counted = [
        s
        for s in families["modelgate_http_requests"]
        if s.name.endswith("_total") and s.labels["route"] == "/api/v1/models/<str:name>/"
    ]
    # Keyed by method too: other tests of this process may have sent a PATCH or a HEAD
    # to the same route and model, a series of its own.
    by_model = {(s.labels["model"], s.labels["method"], s.labels["status"]): s.value for s in counted}
    assert by_model[("fraud-detector", "GET", "200")] >= 3
    # A name that found nothing is not a label of its own.
    assert all(model != "no-such-model" for model, _, _ in by_model)
    assert any(s.name.endswith("_count") for s in families["modelgate_http_request_duration_seconds"])


def test_a_scrape_reads_queue_depth_and_worker_heartbeats_from_the_database(db):
    from lifecycle.jobs.models import ResourcePool, Worker

    pool = ResourcePool.objects.create(name="gpu-a100")
    now = timezone.now()
    Worker.objects.create(
        name="host-1",
        hostname="host-1",
        pool=pool,
        queue="worker.host-1",
        last_heartbeat=now - timedelta(seconds=90),
        started_at=now - timedelta(hours=1),
    )
    families = scrape()
    (age,) = families["modelgate_worker_heartbeat_age_seconds"]
    assert age.labels == {"worker": "host-1", "pool": "gpu-a100", "state": "online"}
    assert 89 <= age.value < 200
    assert "modelgate_job_queue_depth" in families
    assert "modelgate_alerts_firing" in families and "modelgate_drift" in families


def test_json_lines_carry_the_request_id_and_no_personal_data(owner, approver, fraud_model, settings, tmp_path: Path):
    from registry.services import model_update

    model_update(actor=approver.user, model=fraud_model, changes={"policy": {"rules": [], "pii": ["email"]}})
    settings.MODELGATE_PREDICTION_LOG_ROOT = str(tmp_path / "log")
    log_file = tmp_path / "api.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    try:
        record = {
            "request_id": "r-1",
            "version": 1,
            "inputs": {"dataframe_records": [{"amount": 3.0, "email": EMAIL}]},
            "outputs": [1],
        }
        sent = owner.client.post(
            "/api/v1/models/fraud-detector/predictions/", [record], format="json", HTTP_X_REQUEST_ID="api-call-1"
        )
        assert sent.status_code == 202
        missing = owner.client.get("/api/v1/models/fraud-detector/versions/99/", HTTP_X_REQUEST_ID="api-call-2")
        assert missing.status_code == 404
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
    text = log_file.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    assert events, "nothing was logged"
    assert all({"ts", "level", "logger", "message", "request_id"} <= set(event) for event in events)
    assert {"api-call-2"} <= {event["request_id"] for event in events if event["logger"] == "django.request"}
    assert EMAIL not in text and "example.org" not in text
    stored = b"".join(p.read_bytes() for p in (tmp_path / "log").rglob("*.parquet"))
    assert stored and EMAIL.encode() not in stored


def test_production_logs_json_unless_told_otherwise():
    assert logging_config(log_format="json", level="INFO")["formatters"]["default"] == {
        "()": "config.logs.JsonFormatter"
    }
    with pytest.raises(ValueError):
        logging_config(log_format="xml", level="INFO")


def test_a_multi_line_message_stays_one_line():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "first\nsecond", (), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line and json.loads(line)["message"] == "first\nsecond"


@pytest.mark.django_db(transaction=True)
def test_under_gunicorn_every_worker_answers_the_sum_of_all_workers(settings, tmp_path: Path):
    """Two gunicorn workers (the repository's gunicorn.conf.py: multiprocess mode): the
    count of a route is the same whichever worker answers the scrape."""
    import subprocess
    import sys

    import requests

    from tests.conftest import free_port, wait_until

    database = settings.DATABASES["default"]
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {
        **{k: v for k, v in __import__("os").environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "DATABASE_URL": url,
        "MODELGATE_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=Path(__file__).resolve().parents[3],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: requests.get(f"{base}/api/v1/config", timeout=2).status_code == 401,
            timeout=60,
            what="gunicorn",
            process=process,
            log=log,
        )

        def counted() -> float:
            text = requests.get(f"{base}/metrics", timeout=10, headers={"Connection": "close"}).text
            return sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "modelgate_http_requests_total" and sample.labels["route"] == "/api/v1/config"
            )

        before = counted()
        for _ in range(20):
            # A fresh connection each time, so that both workers take some.
            assert requests.get(f"{base}/api/v1/config", timeout=10, headers={"Connection": "close"}).status_code == 401
        counts = {counted() for _ in range(6)}
        assert counts == {before + 20}, log.read_text()[-2000:]
    finally:
        process.terminate()
        process.wait(timeout=20)


# --- the scrape token --------------------------------------------------------------


def test_with_a_metrics_token_the_api_scrape_must_send_it(settings, db):
    settings.MODELGATE_METRICS_TOKEN = "scrape-secret"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Basic scrape-secret"}):
        refused = APIClient().get("/metrics", **headers)
        assert refused.status_code == 401, headers
        assert refused["WWW-Authenticate"].startswith("Bearer")
        assert refused.json()["error"]["code"] == "not_authenticated"
        assert b"modelgate_" not in refused.content
    answer = APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert answer.status_code == 200 and b"modelgate_alerts_firing" in answer.content
    settings.MODELGATE_METRICS_TOKEN = ""
    assert APIClient().get("/metrics").status_code == 200


def test_with_a_metrics_token_the_gateway_scrape_must_send_it():
    import httpx

    from serving.settings import GatewaySettings
    from tests.serving.conftest import dead_url, route, start_gateway, table

    server = start_gateway(
        table(1, route(1, 1.0, "primary", [dead_url()])),
        settings=GatewaySettings(refresh_seconds=0.2, metrics_token="scrape-secret"),
    )
    try:
        with httpx.Client(timeout=10) as client:
            refused = client.get(f"{server.url}/metrics", headers={"Authorization": "Bearer wrong"})
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "not_authenticated"
            assert client.get(f"{server.url}/metrics").status_code == 401
            answer = client.get(f"{server.url}/metrics", headers={"Authorization": "Bearer scrape-secret"})
            assert answer.status_code == 200 and "modelgate_gateway" in answer.text
    finally:
        server.stop()
