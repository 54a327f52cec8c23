"""The database connection dropped, MLflow down and S3 down during registration,
promotion and rollback: the API answers 503 in the error format, nothing is
half-written, the retry with the same ``Idempotency-Key`` succeeds once, and the audit
chain still verifies.

MLflow and S3 are instances this test starts and stops; the connection it drops is the
test's own (``pg_terminate_backend`` on the test database only).
"""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from mlflow.tracking import MlflowClient

from lifecycle.governance.models import AuditRecord, OutboxEvent, ProductionRecord, Transition
from lifecycle.governance.services import transitions
from lifecycle.governance.services.audit import audit_verify
from lifecycle.governance.services.outbox import outbox_relay
from registry import mlflow_gateway
from registry.models import IdempotencyRecord, ModelVersion, RegisteredModel

pytestmark = [
    pytest.mark.services,
    pytest.mark.postgres,
    pytest.mark.xdist_group("chaos"),
    pytest.mark.django_db(transaction=True),
]


def _drop_my_connection() -> None:
    """``pg_terminate_backend`` of the backend serving this process's Django connection,
    on the test database and nothing else."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_database()")
        pid, database = cursor.fetchone()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s AND datname = %s", (pid, database)
        ).fetchone()
        assert ended == (True,)
        for _ in range(50):
            if admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None:
                return
            time.sleep(0.1)


def _dropping_after(function):
    """``function``, then the connection dropped before the request's transaction commits."""

    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        _drop_my_connection()
        return result

    return wrapped


def _unavailable(response, dependency: str) -> None:
    assert response.status_code == 503, (response.status_code, response.content[:500])
    error = response.json()["error"]
    assert error["code"] == "dependency_unavailable"
    assert error["message"]
    assert error["details"]["dependency"] == dependency


def _counts(model) -> dict[str, int]:
    return {
        "versions": ModelVersion.objects.filter(model=model).count(),
        "transitions": Transition.objects.filter(model=model).count(),
        "production_records": ProductionRecord.objects.filter(model=model).count(),
        "outbox": OutboxEvent.objects.count(),
        "audit": AuditRecord.objects.count(),
        "idempotency": IdempotencyRecord.objects.count(),
    }


def _production(model) -> int | None:
    return ModelVersion.objects.filter(model=model, stage="production").values_list("version", flat=True).first()


def test_outages_answer_503_write_nothing_and_the_same_key_succeeds_once(
    private_dependencies, owner, approver, fraud_model, settings, monkeypatch
):
    mlflow_server, s3 = private_dependencies
    settings.MODELGATE_OUTBOX_BACKOFF_SECONDS = 0.5
    settings.MODELGATE_OUTBOX_BACKOFF_MAX_SECONDS = 4
    # No gates: this test is about outages, not about what a promotion must show.
    RegisteredModel.objects.filter(pk=fraud_model.pk).update(policy={"rules": []})
    model = RegisteredModel.objects.get(pk=fraud_model.pk)
    for number in range(1, 6):
        s3.put("models", f"v{number}/MLmodel", f"flavors: {{}}\nmodel_uuid: m{number}\n".encode())
        s3.put("models", f"v{number}/model.bin", bytes([number]) * 64)
    versions_url = f"/api/v1/models/{model.name}/versions/"

    def register(number: int, key: str | None = None):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        return owner.client.post(versions_url, {"source": f"s3://models/v{number}/"}, format="json", **headers)

    def move(number: int, to: str, key: str | None = None):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        return owner.client.post(f"{versions_url}{number}/transitions/", {"to": to}, format="json", **headers)

    def roll_back(key: str):
        return approver.client.post(
            f"/api/v1/models/{model.name}/rollback/", {"reason": "chaos"}, format="json", HTTP_IDEMPOTENCY_KEY=key
        )

    def in_mlflow() -> int:
        return len(
            MlflowClient(mlflow_server.url, registry_uri=mlflow_server.url).search_model_versions(
                f"name='{model.name}'"
            )
        )

    for number in (1, 2):
        answer = register(number)
        assert answer.status_code == 201, answer.json()
    assert move(1, "evaluation").json()["status"] == "applied"
    assert move(1, "production").json()["status"] == "applied"
    assert move(2, "evaluation").json()["status"] == "applied"

    # The database connection drops during registration, after MLflow made the version.
    before = _counts(model)
    monkeypatch.setattr(mlflow_gateway, "model_version_create", _dropping_after(mlflow_gateway.model_version_create))
    _unavailable(register(3, "register-3"), "database")
    monkeypatch.undo()
    assert _counts(model) == before
    assert in_mlflow() == 3  # the lost try's MLflow version, adopted by the retry
    first = register(3, "register-3")
    replay = register(3, "register-3")
    assert first.status_code == 201 and first.json()["version"] == 3
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert ModelVersion.objects.filter(model=model).count() == 3 and in_mlflow() == 3

    # ... during a promotion, after the service did its work and before the commit.
    before = _counts(model)
    monkeypatch.setattr(transitions, "transition_request", _dropping_after(transitions.transition_request))
    _unavailable(move(2, "production", "promote-2"), "database")
    monkeypatch.undo()
    assert _counts(model) == before
    assert _production(model) == 1
    first = move(2, "production", "promote-2")
    replay = move(2, "production", "promote-2")
    assert first.status_code == 201 and first.json()["status"] == "applied"
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
    assert _production(model) == 2
    assert ProductionRecord.objects.filter(model=model, version__version=2).count() == 1

    # ... during a rollback: the retry rolls back once, however often it is sent.
    before = _counts(model)
    monkeypatch.setattr(transitions, "model_rollback", _dropping_after(transitions.model_rollback))
    _unavailable(roll_back("rollback-1"), "database")
    monkeypatch.undo()
    assert _counts(model) == before
    assert _production(model) == 2
    first = roll_back("rollback-1")
    replay = roll_back("rollback-1")
    assert first.status_code == 200, first.json()
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
    assert _production(model) == 1
    assert Transition.objects.filter(model=model, kind="rollback").count() == 1

    # MLflow down: registration needs it (503); promotion and rollback do not (their
    # MLflow alias moves wait in the outbox).
    mlflow_server.stop()
    before = _counts(model)
    _unavailable(register(4, "register-4"), "mlflow")
    assert _counts(model) == before
    assert move(3, "evaluation").json()["status"] == "applied"
    assert move(3, "production", "promote-3").json()["status"] == "applied"
    assert roll_back("rollback-2").status_code == 200
    assert _production(model) == 1
    assert outbox_relay().failed >= 1

    # S3 down as well: registration reads the artifact first (503 naming the store).
    s3.stop()
    before = _counts(model)
    _unavailable(register(5, "register-5"), "artifacts")
    assert _counts(model) == before

    s3.start()
    mlflow_server.start()
    for number, key in ((4, "register-4"), (5, "register-5")):
        first = register(number, key)
        replay = register(number, key)
        assert first.status_code == 201 and first.json()["version"] == number, first.json()
        assert replay.json() == first.json()
    assert ModelVersion.objects.filter(model=model).count() == 5 and in_mlflow() == 5

    # The relay backs off after each failed try (0.5 s doubling): it delivers once the
    # back-off of the alias moves that failed while MLflow was down has run out.
    deadline = time.monotonic() + 60
    while OutboxEvent.objects.filter(kind="mlflow_alias", status="pending").exists() and time.monotonic() < deadline:
        outbox_relay()
        time.sleep(0.5)
    champion = MlflowClient(mlflow_server.url, registry_uri=mlflow_server.url).get_model_version_by_alias(
        model.name, "champion"
    )
    assert int(champion.version) == _production(model) == 1
    assert not OutboxEvent.objects.filter(kind="mlflow_alias", status="pending").exists()
    report = audit_verify()
    assert report.valid, report
