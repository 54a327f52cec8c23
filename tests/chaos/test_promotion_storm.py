"""50 promotions and rollbacks of one model at the same instant, through the API, each
thread with its own database connection: a sampler reading the database all along sees
exactly one production version (and one open production span) at every instant, the
partial unique constraint refuses a second one, and MLflow's ``champion`` alias agrees
at the end. ``MODELGATE_CHAOS_RACERS`` sets the number of callers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from mlflow.tracking import MlflowClient

from lifecycle.governance.models import ProductionRecord
from lifecycle.governance.services.audit import audit_verify
from lifecycle.governance.services.outbox import outbox_relay
from lifecycle.governance.services.transitions import transition_request
from registry import mlflow_gateway
from registry.choices import Stage
from registry.models import ModelVersion, RegisteredModel
from tests.chaos.conftest import chaos_number
from tests.lifecycle.test_concurrency import client_of
from tests.registry.factories import version_create

pytestmark = [
    pytest.mark.services,
    pytest.mark.postgres,
    pytest.mark.xdist_group("chaos"),
    pytest.mark.django_db(transaction=True),
]

SAMPLE = """
SELECT
  (SELECT count(*) FROM registry_modelversion WHERE model_id = %(model)s AND stage = 'production'),
  (SELECT count(*) FROM lifecycle_productionrecord WHERE model_id = %(model)s AND ended_at IS NULL)
"""


def race(calls: list) -> list:
    """Each call in its own thread with its own database connection, all released at
    once. Connections are opened first, patiently: on a PostgreSQL shared with other
    test runs the racers may wait for free slots, but the race itself opens none."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index: int, call) -> None:
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    connection.ensure_connection()
                    break
                except OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            barrier.wait(timeout=330)
            results[index] = call()
        except BaseException as exc:  # reported by the test, not lost in the thread
            results[index] = exc
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a racer is still waiting"
    return results


class Sampler(threading.Thread):
    """Reads, as often as it can, how many versions are in production and how many
    production spans are open, each pair in one statement (one snapshot)."""

    def __init__(self, model_id: int, dsn: str) -> None:
        super().__init__(daemon=True)
        self.model_id = model_id
        self.dsn = dsn
        self.samples: Counter[tuple[int, int]] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute(SAMPLE, {"model": self.model_id}).fetchone()
                self.samples[(row[0], row[1])] += 1


def test_a_storm_of_promotions_and_rollbacks_leaves_one_production_version_at_every_instant(
    live_services, owner, approver, fraud_model, chaos_rng, settings
):
    racers = chaos_number("RACERS", 50)
    promotions = racers // 2
    RegisteredModel.objects.filter(pk=fraud_model.pk).update(policy={"rules": []})
    model = RegisteredModel.objects.get(pk=fraud_model.pk)
    mlflow = MlflowClient(live_services.url)
    mlflow_gateway.registered_model_ensure(model.name)
    versions = []
    for _ in range(promotions + 2):
        version = version_create(model=model, stage=Stage.EVALUATION)
        mlflow.create_model_version(model.name, f"s3://storm/{version.version}/")
        versions.append(version)
    # Two production spans already, so that every rollback has somewhere to go.
    for version in versions[:2]:
        assert transition_request(version=version, to=Stage.PRODUCTION, reason="seed", actor=owner.user).status == (
            "applied"
        )

    def promote(version):
        client = client_of(owner)
        url = f"/api/v1/models/{model.name}/versions/{version.version}/transitions/"
        return lambda: ("promote", client.post(url, {"to": "production", "reason": "storm"}, format="json"))

    def roll_back():
        client = client_of(approver)
        url = f"/api/v1/models/{model.name}/rollback/"
        return lambda: ("rollback", client.post(url, {"reason": "storm"}, format="json"))

    calls = [promote(v) for v in versions[2:]] + [roll_back() for _ in range(racers - promotions)]
    chaos_rng.shuffle(calls)
    database = connection.settings_dict
    sampler = Sampler(
        model.pk, f"postgresql://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    )
    sampler.start()
    time.sleep(0.2)
    try:
        results = race(calls)
    finally:
        time.sleep(0.2)
        sampler.stop.set()
        sampler.join(timeout=30)

    answers = Counter()
    for result in results:
        assert not isinstance(result, BaseException), repr(result)
        verb, response = result
        assert response.status_code in (200, 201, 409), (verb, response.status_code, response.content[:300])
        if response.status_code == 409:
            assert response.json()["error"]["code"], response.json()
            answers[f"{verb} 409"] += 1
        else:
            answers[f"{verb} {response.json()['status']}"] += 1
    print(f"\n[chaos] storm of {len(calls)}: {dict(answers)}; samples {dict(sampler.samples)}")
    assert sum(sampler.samples.values()) > 10
    assert set(sampler.samples) == {(1, 1)}, sampler.samples
    assert answers["promote applied"] >= 1 and answers["rollback applied"] >= 1

    production = ModelVersion.objects.get(model=model, stage=Stage.PRODUCTION)
    assert ProductionRecord.objects.get(model=model, ended_at__isnull=True).version_id == production.pk
    other = ModelVersion.objects.filter(model=model).exclude(pk=production.pk).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=other.pk).update(stage=Stage.PRODUCTION)

    outbox_relay()
    champion = mlflow.get_model_version_by_alias(model.name, "champion")
    assert int(champion.version) == production.version
    report = audit_verify()
    assert report.valid, report
