"""Concurrent promotions on real PostgreSQL: many requests and approvals for versions of
one model at the same instant leave exactly one production version, a production
history without overlaps and a valid audit chain, and every loser is told why.

Each thread makes its calls through the API with its own client and database
connection; a barrier releases them together. The outcome counts are printed (run
with ``-s`` to see them) and written to ``test-output/concurrency-<test>.json``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection
from rest_framework.test import APIClient

from lifecycle.governance.models import ProductionRecord, Transition
from lifecycle.governance.services.audit import audit_verify
from registry.choices import Stage
from registry.models import ModelVersion, RegisteredModel
from registry.services import metrics_record, model_update
from tests.conftest import Actor, require_service
from tests.environment import POSTGRES_AVAILABLE
from tests.registry.factories import actor_create, version_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DIGEST = "c0" * 32
THREADS = 24
THRESHOLD = {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8, "stages": ["production"]}
BEATS_CHAMPION = {"type": "beats_champion", "metric": "f1", "min_delta": 0.0, "stages": ["production"]}
ONE_APPROVAL = {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]}


@pytest.fixture(autouse=True)
def on_postgres() -> None:
    require_service("PostgreSQL", POSTGRES_AVAILABLE and connection.vendor == "postgresql")


def client_of(actor: Actor) -> APIClient:
    """A client of the thread's own (the test client is not shared between threads)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {actor.token}")
    return client


def connect_patiently() -> None:
    """Open the thread's database connection, waiting while PostgreSQL has no free slot
    (other test runs share the server): the race itself then opens no connection."""
    deadline = time.monotonic() + 120
    while True:
        try:
            connection.ensure_connection()
            return
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread, all released at once; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            connect_patiently()
            barrier.wait(timeout=180)
            results[index] = call()
        except BaseException as exc:  # reported by the test, not lost in the thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a thread is still waiting"
    return results


def outcome(response: Any) -> str:
    """``applied`` / ``blocked`` / ``pending`` for a transition answer, else the status code."""
    assert not isinstance(response, BaseException), repr(response)
    if response.status_code in (200, 201):
        return response.json()["status"]
    assert response.status_code == 409, (response.status_code, response.json())
    return "409"


def report(name: str, counts: Counter[str], output_dir: Path) -> None:
    line = ", ".join(f"{key}: {counts[key]}" for key in ("applied", "blocked", "pending", "409"))
    print(f"\n{name}: {line}")
    (output_dir / f"concurrency-{name}.json").write_text(json.dumps(dict(counts), sort_keys=True))


def evaluated(model: RegisteredModel, f1: float) -> ModelVersion:
    version = version_create(model=model, stage=Stage.EVALUATION)
    metrics_record(version=version, metrics={"f1": f1}, source="evaluation", dataset_digest=DIGEST)
    return version


def f1_of(version: ModelVersion) -> float:
    return version.metric_rows.get(name="f1", is_current=True).value


def request_call(actor: Actor, version: ModelVersion) -> Callable[[], Any]:
    client = client_of(actor)
    url = f"/api/v1/models/{version.model.name}/versions/{version.version}/transitions/"
    return lambda: client.post(url, {"to": "production", "reason": "race"}, format="json")


def approve_call(actor: Actor, transition_id: int) -> Callable[[], Any]:
    client = client_of(actor)
    url = f"/api/v1/transitions/{transition_id}/approve/"
    return lambda: client.post(url, {"comment": "go"}, format="json")


def assert_production_is_consistent(model: RegisteredModel) -> list[ProductionRecord]:
    """One production version, one open span (its own), spans that never overlap, and
    each promotion beating the one before it; returns the spans in order."""
    live = list(ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION))
    assert len(live) == 1
    spans = list(
        ProductionRecord.objects.filter(model=model)
        .select_related("version", "transition")
        .order_by("started_at", "id")
    )
    open_spans = [span for span in spans if span.ended_at is None]
    assert len(open_spans) == 1
    assert open_spans[0].version_id == live[0].pk
    assert spans[-1] is open_spans[0]
    for span in spans:
        # Decided when it was applied, under the lock: not when the request began waiting.
        assert span.transition is not None and span.transition.decided_at is not None
        assert span.transition.decided_at <= span.started_at
    for earlier, later in itertools.pairwise(spans):
        assert earlier.started_at <= later.transition.decided_at, (earlier, later)
        assert earlier.ended_at is not None
        assert earlier.ended_at <= later.started_at, (earlier, later)
        assert earlier.ended_reason == "replaced"
        assert f1_of(earlier.version) < f1_of(later.version)
        assert earlier.version.stage == Stage.ARCHIVED
    chain = audit_verify()
    assert chain.valid, chain
    return spans


def assert_every_loser_knows_why(model: RegisteredModel) -> None:
    for transition in Transition.objects.filter(model=model).exclude(status="applied"):
        assert transition.status in ("blocked", "pending")
        if transition.status == "blocked":
            assert transition.status_detail.startswith("blocked by "), transition.status_detail
            failed = [gate for gate in transition.gates if gate["status"] == "failed"]
            assert failed and all(gate["detail"] for gate in failed)
        else:
            assert transition.status_detail.startswith("waiting: ")


def test_simultaneous_production_requests_leave_exactly_one_production_version(
    owner, approver, fraud_model, output_dir
):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": {"rules": [THRESHOLD, BEATS_CHAMPION]}})
    scores = [0.81, 0.95, 0.86, 0.78, 0.90, 0.83, 0.93, 0.88]
    versions = [evaluated(fraud_model, f1) for f1 in scores]
    colleague = actor_create("colleague", {"fraud": "developer"})
    # Three callers per version: its request and two duplicates that must be refused.
    calls = [request_call(actor, v) for v in versions for actor in (owner, colleague, owner)]
    assert len(calls) == THREADS

    responses = race(calls)

    counts = Counter(outcome(response) for response in responses)
    report("production-requests", counts, output_dir)
    assert counts["409"] == 2 * len(versions)
    assert counts["applied"] + counts["blocked"] == len(versions)
    assert counts["pending"] == 0
    assert counts["applied"] >= 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] in ("transition_open", "invalid_transition")
    assert Transition.objects.filter(model=fraud_model).count() == len(versions)
    spans = assert_production_is_consistent(fraud_model)
    assert len(spans) == counts["applied"]
    assert_every_loser_knows_why(fraud_model)
    below = Transition.objects.get(version=versions[scores.index(0.78)])
    assert below.status == "blocked"
    assert "metric_threshold: f1 = 0.78" in below.status_detail


def test_simultaneous_approvals_of_pending_promotions_leave_exactly_one_production_version(
    owner, approver, fraud_admin, fraud_model, output_dir
):
    model_update(
        actor=approver.user,
        model=fraud_model,
        changes={"policy": {"rules": [THRESHOLD, BEATS_CHAMPION, ONE_APPROVAL]}},
    )
    scores = [0.84, 0.97, 0.81, 0.92, 0.88, 0.95, 0.83, 0.90, 0.86, 0.93]
    versions = [evaluated(fraud_model, f1) for f1 in scores]
    pending = []
    for version in versions:
        response = owner.client.post(
            f"/api/v1/models/{fraud_model.name}/versions/{version.version}/transitions/",
            {"to": "production", "reason": "ready"},
            format="json",
        )
        assert response.json()["status"] == "pending", response.json()
        pending.append(response.json()["id"])
    # Two approvers on every request, and four more requests for versions already asked for.
    calls = [approve_call(actor, t) for t in pending for actor in (approver, fraud_admin)]
    calls += [request_call(owner, version) for version in versions[:4]]
    assert len(calls) == THREADS

    responses = race(calls)

    approvals, requests = responses[: 2 * len(pending)], responses[2 * len(pending) :]
    counts = Counter(outcome(response) for response in responses)
    report("approvals", counts, output_dir)
    assert all(response.status_code == 409 for response in requests)
    assert {response.json()["error"]["code"] for response in requests} <= {"transition_open", "invalid_transition"}
    for transition_id, answers in zip(pending, zip(approvals[0::2], approvals[1::2], strict=True), strict=True):
        outcomes = [outcome(answer) for answer in answers]
        assert outcomes.count("applied") <= 1, (transition_id, outcomes)
        final = Transition.objects.get(pk=transition_id)
        if final.status == "applied":
            # The other approver came second and found it decided, or came first and it was
            # blocked then (it cannot be: a blocked one stays blocked as champions only improve).
            assert sorted(outcomes) == ["409", "applied"], outcomes
        else:
            assert final.status == "blocked"
            assert outcomes == ["blocked", "blocked"], outcomes
            assert len(final.decisions.all()) == 2
    assert counts["pending"] == 0
    spans = assert_production_is_consistent(fraud_model)
    assert len(spans) == Transition.objects.filter(model=fraud_model, status="applied").count() == counts["applied"]
    assert_every_loser_knows_why(fraud_model)


def test_two_replicas_turning_ready_at_once_leave_the_deployment_ready(owner, fraud_model):
    """The first replica's report is held open while the second reports: the second waits
    for it and judges the deployment with both ready, instead of each seeing only itself
    ready and both writing ``degraded``."""
    from django.db import transaction

    from lifecycle.deployments import services as deployments
    from lifecycle.deployments.choices import DeploymentState
    from lifecycle.deployments.models import Deployment, Replica
    from lifecycle.jobs import dispatch

    dispatch_kick, dispatch.scheduler_kick = dispatch.scheduler_kick, lambda: None
    try:
        version = version_create(model=fraud_model, stage=Stage.STAGING)
        deployment = deployments.deployment_create(
            actor=owner.user, model=fraud_model, version=version.version, replicas=2
        )
    finally:
        dispatch.scheduler_kick = dispatch_kick
    first, second = Replica.objects.filter(deployment=deployment).order_by("pk")
    first_reported, second_started = threading.Event(), threading.Event()

    def report_first() -> None:
        with transaction.atomic():
            deployments.replica_ready(replica_id=first.pk, url="http://127.0.0.1:9001", host="a")
            first_reported.set()
            second_started.wait(timeout=30)
            time.sleep(0.5)  # the second report is now waiting on this transaction, or has run past it

    def report_second() -> None:
        assert first_reported.wait(timeout=30)
        second_started.set()
        deployments.replica_ready(replica_id=second.pk, url="http://127.0.0.1:9002", host="b")

    failures = [r for r in race([report_first, report_second]) if isinstance(r, BaseException)]

    assert not failures, failures
    assert Deployment.objects.get(pk=deployment.pk).state == DeploymentState.READY
