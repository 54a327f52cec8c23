"""No secret reaches a log file: with every secret set (an API token, a webhook secret,
the PII key, the encryption keys, a password in the database, tracking and broker
URLs, the S3 keys, a user's password) and JSON logs at DEBUG written to a file, a
registration, a promotion, webhook deliveries (failed, then delivered), logins (wrong,
then right) and health checks with dependencies down leave none of them in the logs."""

from __future__ import annotations

import logging.config
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from config.logs import logging_config
from lifecycle.governance.models import WebhookDelivery
from lifecycle.governance.services.outbox import outbox_relay
from registry import storage
from registry.models import ModelVersion
from tests.lifecycle.test_governance_flow import evaluate, request
from tests.lifecycle.test_outbox import receiver_serving, trained_run, webhook_subscribe

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("mlflow"), pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


@pytest.fixture
def json_log_file(tmp_path, settings):
    """Every logger at DEBUG, as JSON lines appended to a file (config/logs.py)."""
    path = tmp_path / "modelgate.log"
    logging.config.dictConfig(logging_config(log_format="json", level="DEBUG", log_file=str(path)))
    yield path
    logging.config.dictConfig(settings.LOGGING)


def leaked(paths: list[Path], secrets: dict[str, str]) -> dict[str, list[str]]:
    """For each secret found, the log files it was found in."""
    found: dict[str, list[str]] = {}
    for path in paths:
        text = path.read_text(errors="replace") if path.exists() else ""
        for name, value in secrets.items():
            if value in text:
                found.setdefault(name, []).append(path.name)
    return found


def test_no_secret_set_anywhere_reaches_the_logs(
    live_services, json_log_file, settings, monkeypatch, owner, approver, fraud_admin, fraud_model, tmp_path
):
    secrets = {
        "owner token": owner.token,
        "admin token": fraud_admin.token,
        "webhook secret": unique("webhook-secret"),
        "PII key": unique("pii-key"),
        "secret keys": Fernet.generate_key().decode(),
        "SECRET_KEY": unique("django-secret-key-of-at-least-32-chars"),
        "database password": unique("db-password"),
        "tracking password": unique("mlflow-password"),
        "broker password": unique("broker-password"),
        "S3 secret key": unique("s3-secret-key"),
        "user password": unique("user-password"),
    }
    settings.MODELGATE_PII_KEY = secrets["PII key"]
    settings.MODELGATE_SECRET_KEYS = (secrets["secret keys"].encode(),)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secrets["S3 secret key"])
    storage._s3_client.cache_clear()

    # Registration and promotion through the API, with the token in every request.
    registered = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": trained_run()}, format="json"
    )
    assert registered.status_code == 201, registered.json()
    number = registered.json()["version"]
    evaluate(ModelVersion.objects.get(model=fraud_model, version=number), 0.95)
    with receiver_serving() as receiver:
        receiver.secret = secrets["webhook secret"]
        webhook_subscribe(fraud_admin, receiver, ["*"])
        receiver.failures = [500, 500]
        assert request(owner, fraud_model, number, "evaluation").json()["status"] == "applied"
        assert request(owner, fraud_model, number, "production").json()["status"] == "applied"
        # Deliveries fail (logged with their errors), then succeed on a later pass.
        outbox_relay()
        outbox_relay(now=timezone.now() + timedelta(days=1))
        assert WebhookDelivery.objects.filter(status="delivered").exists()
        assert all(r.signature_valid for r in receiver.received), "signed with the decrypted secret"

    # Logins on the web UI: a wrong password, then the right one.
    user = get_user_model().objects.create_user("login-user", password=secrets["user password"])
    browser = Client()
    browser.post("/login/", {"username": user.username, "password": secrets["user password"] + "x"})
    answered = browser.post("/login/", {"username": user.username, "password": secrets["user password"]})
    assert answered.status_code == 302

    # The API's own answers never show a password of a URL either.
    settings.MLFLOW_TRACKING_URI = f"http://tracking:{secrets['tracking password']}@127.0.0.1:9"
    config = owner.client.get("/api/v1/config").json()
    assert secrets["tracking password"] not in str(config)
    health = Client().get("/api/v1/health").json()
    assert secrets["tracking password"] not in str(health) and health["checks"]["mlflow"] != "ok"

    # Processes started with the secrets in their environment and the database, the
    # tracking server and the broker unreachable at URLs that carry passwords.
    database = connection.settings_dict
    reachable = f"postgres://{database['USER']}:{secrets['database password']}@127.0.0.1:5432/{database['NAME']}"
    unreachable = f"postgres://postgres:{secrets['database password']}@127.0.0.1:9/nowhere"
    logs = [json_log_file]
    for name, database_url in (("reachable", reachable), ("unreachable", unreachable)):
        log = tmp_path / f"process-{name}.log"
        logs.append(log)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "MLFLOW_TRACKING_URI": f"http://tracking:{secrets['tracking password']}@127.0.0.1:9",
            "CELERY_BROKER_URL": f"amqp://guest:{secrets['broker password']}@127.0.0.1:9//",
            "MODELGATE_SECRET_KEYS": secrets["secret keys"],
            "MODELGATE_PII_KEY": secrets["PII key"],
            "SECRET_KEY": secrets["SECRET_KEY"],
            "AWS_SECRET_ACCESS_KEY": secrets["S3 secret key"],
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
            "LOG_FILE": str(log),
            "MODELGATE_VAR_DIR": str(tmp_path / f"var-{name}"),
        }
        script = (
            "import django; django.setup(); from django.test import Client; c = Client(raise_request_exception=False); "
            "h = c.get('/api/v1/health'); print(h.status_code, h.content.decode().replace(' ', '')); "
            "print(c.post('/login/', {'username': 'nobody', 'password': 'wrong-password'}).status_code)"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split()[0] == ("200" if name == "reachable" else "503"), done.stdout
        (tmp_path / f"process-{name}.stderr").write_text(done.stderr)
        logs.append(tmp_path / f"process-{name}.stderr")

    written = [path for path in logs if path.suffix == ".log"]
    assert len(written) == 3 and all(path.stat().st_size > 0 for path in written), "the logs were written"
    assert '"level": "DEBUG"' in json_log_file.read_text(), "logs at DEBUG were captured"
    assert leaked(logs, secrets) == {}


def test_the_grep_finds_a_secret_that_was_logged(json_log_file):
    secret = unique("logged-by-mistake")
    logging.getLogger("modelgate.test").warning("calling with %s", secret)
    assert leaked([json_log_file], {"it": secret}) == {"it": [json_log_file.name]}
