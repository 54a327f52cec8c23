"""The outbox and its relay: webhooks delivered signed, retried, dead-lettered and
re-sent, a crash mid-delivery losing nothing, and MLflow alias moves surviving MLflow
being down. Deliveries go to a real HTTP receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from lifecycle.governance.choices import DeliveryStatus, OutboxKind
from lifecycle.governance.models import OutboxEvent, WebhookDelivery
from lifecycle.governance.services import outbox
from registry.choices import Stage
from registry.models import ModelVersion, RegisteredModel
from registry.services import metrics_record
from tests.conftest import Actor, require_service
from tests.environment import POSTGRES_AVAILABLE
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db


# --- a webhook receiver on loopback ---------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and whether its signature was right."""

    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers["X-ModelGate-Delivery"]

    @property
    def attempt(self) -> int:
        return int(self.headers["X-ModelGate-Attempt"])


class WebhookReceiver:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 that checks each request's HMAC-SHA256
    signature the way a subscriber would (401 when it is wrong), records it, and answers
    with the statuses queued in ``failures`` before answering 200 (or ``always`` forever)."""

    def __init__(self) -> None:
        self.secret = f"receiver-secret-{uuid.uuid4().hex}"
        self.received: list[Received] = []
        self.failures: list[int] = []
        self.always: int | None = None
        # When set, each request waits for it before answering (to hold a relay mid-send).
        self.hold: threading.Event | None = None
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._answer(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/modelgate"

    def signature_valid(self, headers: dict[str, str], body: bytes) -> bool:
        timestamp = headers.get("X-ModelGate-Timestamp", "")
        expected = hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("X-ModelGate-Signature", ""), f"sha256={expected}")

    def _answer(self, headers: dict[str, str], body: bytes) -> int:
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(timeout=30)
        valid = self.signature_valid(headers, body)
        with self._lock:
            if not valid:
                status = 401
            elif self.always is not None:
                status = self.always
            elif self.failures:
                status = self.failures.pop(0)
            else:
                status = 200
            self.received.append(Received(headers, body, valid, status))
        return status

    def events(self) -> list[str]:
        """Types of the events accepted (answered 2xx), in the order they arrived."""
        return [r.event["type"] for r in self.received if 200 <= r.answered < 300]

    def per_delivery(self) -> Counter[str]:
        return Counter(r.delivery_id for r in self.received)


@contextmanager
def receiver_serving() -> Iterator[WebhookReceiver]:
    """A receiver answering in a thread for as long as the block runs."""
    receiver = WebhookReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with receiver_serving() as receiver:
        yield receiver


def webhook_subscribe(admin: Actor, receiver: WebhookReceiver, events: list[str]) -> dict[str, Any]:
    response = admin.client.post(
        "/api/v1/webhooks/",
        {"team": "fraud", "url": receiver.url, "events": events, "secret": receiver.secret},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


# --- helpers ----------------------------------------------------------------------------------


def evaluation_requested(owner: Actor, model: RegisteredModel) -> dict[str, Any]:
    """A version moved from training to evaluation through the API (no policy rule gates
    evaluation, so it is applied at once and MLflow is not involved)."""
    version = version_create(model=model, stage=Stage.TRAINING)
    response = owner.client.post(
        f"/api/v1/models/{model.name}/versions/{version.version}/transitions/",
        {"to": "evaluation", "reason": "trained"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "applied"
    return response.json()


def deliveries(actor: Actor, webhook: dict[str, Any], **params: str) -> list[dict[str, Any]]:
    response = actor.client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries/", params)
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def resend(actor: Actor, webhook: dict[str, Any], delivery_id: str) -> Any:
    return actor.client.post(f"/api/v1/webhooks/{webhook['id']}/deliveries/{delivery_id}/resend/")


# --- webhooks ------------------------------------------------------------------------------


def test_an_event_is_delivered_signed_with_its_headers(owner, fraud_admin, fraud_model, webhook_receiver):
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["transition.*"])
    transition = evaluation_requested(owner, fraud_model)

    report = outbox.outbox_relay()

    assert report.delivered == 2
    assert webhook_receiver.events() == ["transition.requested", "transition.applied"]
    first = webhook_receiver.received[0]
    assert first.signature_valid
    assert first.headers["X-ModelGate-Event"] == "transition.requested"
    assert first.attempt == 1
    assert first.headers["Content-Type"] == "application/json"
    assert first.event["id"] == first.delivery_id
    assert first.event["data"]["id"] == transition["id"]
    assert first.event["data"]["to"] == "evaluation"
    listed = deliveries(fraud_admin, webhook)
    assert {(d["event"], d["status"], d["attempts"], d["last_status_code"]) for d in listed} == {
        ("transition.requested", "delivered", 1, 200),
        ("transition.applied", "delivered", 1, 200),
    }


def test_a_webhook_gets_only_the_events_it_subscribed_to(owner, fraud_admin, fraud_model, webhook_receiver):
    webhook_subscribe(fraud_admin, webhook_receiver, ["transition.applied"])
    evaluation_requested(owner, fraud_model)

    outbox.outbox_relay()

    assert webhook_receiver.events() == ["transition.applied"]


def test_a_subscription_to_an_unknown_event_is_a_400(fraud_admin, webhook_receiver):
    response = fraud_admin.client.post(
        "/api/v1/webhooks/",
        {"team": "fraud", "url": webhook_receiver.url, "events": ["transition.pending"]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"events": "unknown event"}


def test_a_delivery_with_a_wrong_secret_is_refused_by_the_receiver_and_retried(
    owner, fraud_admin, fraud_model, webhook_receiver
):
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["transition.applied"])
    webhook_receiver.secret = "rotated-secret-the-platform-does-not-know"
    evaluation_requested(owner, fraud_model)

    report = outbox.outbox_relay()

    assert report.failed == 1
    assert webhook_receiver.received[0].signature_valid is False
    (delivery,) = deliveries(fraud_admin, webhook)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 1, 401)


def test_a_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt(
    settings, owner, fraud_admin, fraud_model, webhook_receiver
):
    settings.MODELGATE_OUTBOX_BACKOFF_SECONDS = 0
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["transition.applied"])
    webhook_receiver.failures = [500, 500, 500]
    evaluation_requested(owner, fraud_model)

    outbox.outbox_relay()

    assert [(r.attempt, r.answered) for r in webhook_receiver.received] == [(1, 500), (2, 500), (3, 500), (4, 200)]
    assert all(r.signature_valid for r in webhook_receiver.received)
    assert len(webhook_receiver.per_delivery()) == 1
    (delivery,) = deliveries(fraud_admin, webhook)
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 4
    assert delivery["last_status_code"] == 200
    assert delivery["last_error"] == ""
    assert delivery["delivered_at"] is not None


def test_a_failed_delivery_waits_for_its_backoff(settings, owner, fraud_admin, fraud_model, webhook_receiver):
    settings.MODELGATE_OUTBOX_BACKOFF_SECONDS = 60
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["transition.applied"])
    webhook_receiver.failures = [503]
    evaluation_requested(owner, fraud_model)

    outbox.outbox_relay()
    outbox.outbox_relay()
    assert len(webhook_receiver.received) == 1
    (waiting,) = deliveries(fraud_admin, webhook)
    assert waiting["status"] == "pending"
    assert "HTTP 503" in waiting["last_error"]

    outbox.outbox_relay(now=timezone.now() + timedelta(seconds=61))

    assert [r.attempt for r in webhook_receiver.received] == [1, 2]
    assert deliveries(fraud_admin, webhook)[0]["status"] == "delivered"


def test_a_receiver_that_always_fails_is_dead_lettered_and_can_be_resent_by_a_team_admin(
    settings, owner, approver, viewer, outsider, fraud_admin, fraud_model, webhook_receiver
):
    settings.MODELGATE_OUTBOX_BACKOFF_SECONDS = 0
    settings.MODELGATE_OUTBOX_MAX_ATTEMPTS = 3
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["transition.applied"])
    webhook_receiver.always = 500
    evaluation_requested(owner, fraud_model)

    report = outbox.outbox_relay()

    assert report.dead == 1
    assert len(webhook_receiver.received) == 3
    (dead,) = deliveries(fraud_admin, webhook, status="dead")
    assert (dead["status"], dead["attempts"], dead["last_status_code"]) == ("dead", 3, 500)
    assert outbox.outbox_relay().dead == 0
    assert len(webhook_receiver.received) == 3

    for someone in (owner, approver, viewer):
        assert resend(someone, webhook, dead["delivery_id"]).status_code == 403
    assert resend(outsider, webhook, dead["delivery_id"]).status_code == 404
    assert resend(fraud_admin, webhook, str(uuid.uuid4())).status_code == 404
    assert WebhookDelivery.objects.get(delivery_id=dead["delivery_id"]).status == DeliveryStatus.DEAD

    webhook_receiver.always = None
    response = resend(fraud_admin, webhook, dead["delivery_id"])
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "pending"
    outbox.outbox_relay()

    assert webhook_receiver.received[-1].answered == 200
    assert webhook_receiver.received[-1].attempt == 4
    assert webhook_receiver.per_delivery() == {dead["delivery_id"]: 4}
    (delivered,) = deliveries(fraud_admin, webhook)
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 4)


def test_a_crash_mid_delivery_is_delivered_by_the_next_relay_exactly_once(
    monkeypatch, owner, fraud_admin, fraud_model, webhook_receiver
):
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["transition.applied"])
    evaluation_requested(owner, fraud_model)
    claimed: list[int] = []

    def crash(delivery: WebhookDelivery, attempt: int) -> tuple[bool, int | None, str]:
        # The relay has claimed the row (and counted the attempt) when the worker dies.
        claimed.append(attempt)
        raise SystemExit("worker killed mid-delivery")

    monkeypatch.setattr(outbox, "_send", crash)
    with pytest.raises(SystemExit):
        outbox.outbox_relay()
    assert claimed == [1]
    (after_crash,) = deliveries(fraud_admin, webhook)
    assert (after_crash["status"], after_crash["attempts"]) == ("pending", 0)
    assert webhook_receiver.received == []

    monkeypatch.undo()
    report = outbox.outbox_relay()
    outbox.outbox_relay()

    assert report.delivered == 1
    assert webhook_receiver.per_delivery() == {after_crash["delivery_id"]: 1}
    assert webhook_receiver.received[0].attempt == 1
    (delivered,) = deliveries(fraud_admin, webhook)
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 1)


@pytest.mark.django_db(transaction=True)
def test_a_delivery_being_sent_by_one_relay_is_skipped_by_another(owner, fraud_admin, fraud_model, webhook_receiver):
    """Two relays at once (two workers): the second skips the row the first holds."""
    require_service("PostgreSQL", POSTGRES_AVAILABLE and connection.vendor == "postgresql")
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["transition.applied"])
    evaluation_requested(owner, fraud_model)
    webhook_receiver.hold = threading.Event()
    reports: list[outbox.RelayReport] = []

    def first_relay() -> None:
        try:
            reports.append(outbox.outbox_relay())
        finally:
            connection.close()

    worker = threading.Thread(target=first_relay)
    worker.start()
    try:
        assert webhook_receiver.arrived.wait(timeout=30)
        second = outbox.outbox_relay()
    finally:
        webhook_receiver.hold.set()
        worker.join(timeout=30)

    assert second.delivered == 0
    assert [r.delivered for r in reports] == [1]
    assert len(webhook_receiver.received) == 1
    assert deliveries(fraud_admin, webhook)[0]["status"] == "delivered"


# --- who may see and manage webhooks ---------------------------------------------------------


def test_only_a_team_admin_may_add_a_webhook(owner, approver, outsider, webhook_receiver):
    body = {"team": "fraud", "url": webhook_receiver.url, "events": ["*"]}
    for someone in (owner, approver, outsider):
        assert someone.client.post("/api/v1/webhooks/", body, format="json").status_code == 403


def test_a_webhook_secret_is_shown_only_when_it_is_created(viewer, fraud_admin, webhook_receiver):
    created = fraud_admin.client.post(
        "/api/v1/webhooks/", {"team": "fraud", "url": webhook_receiver.url}, format="json"
    ).json()

    assert len(created["secret"]) >= 32
    assert created["events"] == ["*"]
    listed = viewer.client.get("/api/v1/webhooks/").json()["results"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in viewer.client.get(f"/api/v1/webhooks/{created['id']}/").json()


def test_an_outsider_sees_neither_the_webhooks_nor_their_deliveries(outsider, fraud_admin, webhook_receiver):
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["*"])

    assert outsider.client.get("/api/v1/webhooks/").json()["results"] == []
    assert outsider.client.get(f"/api/v1/webhooks/{webhook['id']}/").status_code == 404
    assert outsider.client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries/").status_code == 404


def test_an_unknown_delivery_status_filter_is_a_400(fraud_admin, webhook_receiver):
    webhook = webhook_subscribe(fraud_admin, webhook_receiver, ["*"])

    response = fraud_admin.client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries/", {"status": "lost"})

    assert response.status_code == 400


# --- MLflow alias moves -----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def trained_run() -> str:
    """An MLflow run that logged a scikit-learn model, as a training job would."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    data = load_breast_cancer()
    model = LogisticRegression(max_iter=5000).fit(data.data, data.target)
    mlflow.set_experiment("fraud-training")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(data.data, model.predict(data.data)))
    return run.info.run_id


@pytest.mark.services
@pytest.mark.xdist_group("mlflow")
def test_the_champion_alias_move_survives_mlflow_being_down(live_services, settings, owner, fraud_model):
    from mlflow.tracking import MlflowClient

    registered = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/", {"run_id": trained_run()}, format="json"
    )
    assert registered.status_code == 201, registered.json()
    number = registered.json()["version"]
    version = ModelVersion.objects.get(model=fraud_model, version=number)
    metrics_record(version=version, metrics={"f1": 0.95}, source="evaluation", dataset_digest="f" * 64)
    transitions = f"/api/v1/models/{fraud_model.name}/versions/{number}/transitions/"
    assert owner.client.post(transitions, {"to": "evaluation"}, format="json").json()["status"] == "applied"
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{_closed_port()}"

    promoted = owner.client.post(
        transitions, {"to": "production", "reason": "ModelGate, not MLflow, decides"}, format="json"
    )
    assert promoted.status_code == 201, promoted.json()
    assert promoted.json()["status"] == "applied"
    report = outbox.outbox_relay()

    (event,) = OutboxEvent.objects.filter(kind=OutboxKind.MLFLOW_ALIAS)
    assert (report.aliases, report.failed) == (0, 1)
    assert event.status == DeliveryStatus.PENDING
    assert event.attempts == 1
    assert "mlflow" in event.last_error.lower()
    assert event.payload == {"model": fraud_model.name, "alias": "champion"}
    assert owner.client.get(f"/api/v1/models/{fraud_model.name}/aliases/champion/").json()["version"] == number

    settings.MLFLOW_TRACKING_URI = live_services.url
    report = outbox.outbox_relay(now=event.next_attempt_at)

    event.refresh_from_db()
    assert report.aliases == 1
    assert (event.status, event.attempts, event.last_error) == (DeliveryStatus.DELIVERED, 2, "")
    champion = MlflowClient(live_services.url).get_model_version_by_alias(fraud_model.name, "champion")
    assert champion.version == str(number)
