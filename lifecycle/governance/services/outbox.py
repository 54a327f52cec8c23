"""The transactional outbox and its relay.

State changes write their side effects here in the same transaction: MLflow alias
moves, and platform events that fan out to webhook deliveries. The relay delivers them
after commit, one row per transaction, holding the row lock while it delivers, so a
crash mid-delivery rolls back to "pending" and the next run delivers it; nothing is
lost and nothing is delivered by two relays at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from lifecycle.enqueue import task_enqueue
from lifecycle.governance.choices import DeliveryStatus, OutboxKind
from lifecycle.governance.models import OutboxEvent, Webhook, WebhookDelivery
from lifecycle.governance.services.audit import audit_append
from registry.choices import Role
from registry.errors import DomainError
from registry.models import RegisteredModel, Team
from registry.permissions import require_role
from registry.services import alias_mirror

logger = logging.getLogger(__name__)


def _backoff(attempts: int) -> timedelta:
    base = settings.MODELGATE_OUTBOX_BACKOFF_SECONDS
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), settings.MODELGATE_OUTBOX_BACKOFF_MAX_SECONDS))


def _kick_relay() -> None:
    """Ask a worker to relay now; the periodic relay catches up if the broker is down."""
    try:
        task_enqueue("lifecycle.relay_outbox")
    except Exception as exc:  # the broker's many transport errors all mean "later"
        logger.warning("could not enqueue the outbox relay (it runs periodically anyway): %s", exc)


def mlflow_alias_enqueue(*, model: RegisteredModel, alias: str) -> OutboxEvent:
    """Mirror the alias's current state to MLflow after commit."""
    event = OutboxEvent.objects.create(
        kind=OutboxKind.MLFLOW_ALIAS,
        team=model.team,
        payload={"model": model.name, "alias": alias},
        next_attempt_at=timezone.now(),
    )
    transaction.on_commit(_kick_relay)
    return event


def _event_matches(webhook: Webhook, event_type: str) -> bool:
    events = webhook.events or ["*"]
    return "*" in events or event_type in events or f"{event_type.split('.')[0]}.*" in events


def event_publish(*, team: Team, event_type: str, data: dict[str, Any]) -> OutboxEvent:
    """Record a platform event and one delivery per matching webhook of the team."""
    now = timezone.now()
    payload = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    event = OutboxEvent.objects.create(
        kind=OutboxKind.EVENT,
        event_type=event_type,
        team=team,
        payload=payload,
        status=DeliveryStatus.DELIVERED,
        delivered_at=now,
        next_attempt_at=now,
    )
    deliveries = [
        WebhookDelivery(webhook=webhook, event=event, next_attempt_at=now)
        for webhook in Webhook.objects.filter(team=team, active=True)
        if _event_matches(webhook, event_type)
    ]
    if deliveries:
        WebhookDelivery.objects.bulk_create(deliveries)
        transaction.on_commit(_kick_relay)
    return event


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``"{timestamp}." + body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def delivery_body(delivery: WebhookDelivery) -> bytes:
    event = delivery.event
    document = {
        "id": str(delivery.delivery_id),
        "event_id": event.pk,
        "type": event.event_type,
        "created_at": event.created_at.isoformat(),
        "data": event.payload,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _send(delivery: WebhookDelivery, attempt: int) -> tuple[bool, int | None, str]:
    body = delivery_body(delivery)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ModelGate-Webhooks/1",
        "X-ModelGate-Event": delivery.event.event_type,
        "X-ModelGate-Delivery": str(delivery.delivery_id),
        "X-ModelGate-Timestamp": timestamp,
        "X-ModelGate-Attempt": str(attempt),
        "X-ModelGate-Signature": signature(delivery.webhook.secret, timestamp, body),
    }
    try:
        response = requests.post(
            delivery.webhook.url,
            data=body,
            headers=headers,
            timeout=settings.MODELGATE_WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:1000]
    if 200 <= response.status_code < 300:
        return True, response.status_code, ""
    return False, response.status_code, f"HTTP {response.status_code}: {response.text[:500]}"


@dataclass
class RelayReport:
    aliases: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def _relay_alias(event: OutboxEvent) -> None:
    alias_mirror(model_name=event.payload["model"], alias=event.payload["alias"])


def outbox_relay(*, now: datetime | None = None, limit: int = 200) -> RelayReport:
    """Deliver what is due: MLflow alias moves first (in order), then webhook deliveries."""
    report = RelayReport()
    max_attempts = settings.MODELGATE_OUTBOX_MAX_ATTEMPTS
    for _ in range(limit):
        with transaction.atomic():
            moment = now or timezone.now()
            event = (
                OutboxEvent.objects.select_for_update(skip_locked=True)
                .filter(kind=OutboxKind.MLFLOW_ALIAS, status=DeliveryStatus.PENDING, next_attempt_at__lte=moment)
                .order_by("id")
                .first()
            )
            if event is None:
                break
            event.attempts += 1
            try:
                _relay_alias(event)
            except DomainError as exc:
                event.last_error = str(exc)[:1000]
                event.status = DeliveryStatus.DEAD if event.attempts >= max_attempts else DeliveryStatus.PENDING
                event.next_attempt_at = moment + _backoff(event.attempts)
                report.errors.append(event.last_error)
                report.failed += 1
            else:
                event.status, event.delivered_at, event.last_error = DeliveryStatus.DELIVERED, moment, ""
                report.aliases += 1
            event.save()
    for _ in range(limit):
        with transaction.atomic():
            moment = now or timezone.now()
            delivery = (
                WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("webhook", "event")
                .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=moment)
                .order_by("id")
                .first()
            )
            if delivery is None:
                break
            delivery.attempts += 1
            ok, code, error = _send(delivery, delivery.attempts)
            delivery.last_status_code, delivery.last_error = code, error
            if ok:
                delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, timezone.now()
                report.delivered += 1
            elif delivery.attempts >= max_attempts:
                delivery.status = DeliveryStatus.DEAD
                report.dead += 1
            else:
                delivery.next_attempt_at = moment + _backoff(delivery.attempts)
                report.failed += 1
            delivery.save()
    return report


def delivery_resend(*, delivery: WebhookDelivery, actor: AbstractBaseUser) -> WebhookDelivery:
    """Put a delivery (typically one given up on) back in the queue; team admins only."""
    require_role(actor, delivery.webhook.team, Role.ADMIN, action="re-sending a webhook delivery")
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        locked.status = DeliveryStatus.PENDING
        locked.next_attempt_at = timezone.now()
        locked.save(update_fields=["status", "next_attempt_at"])
        audit_append(
            actor=actor,
            action="webhook.resend",
            object_type="webhook_delivery",
            object_id=locked.delivery_id,
            after={"webhook": locked.webhook_id, "attempts": locked.attempts},
        )
        transaction.on_commit(_kick_relay)
    return locked
