"""``Idempotency-Key`` bookkeeping: the first response to a creating call is kept for
24 hours and replayed to a retry with the same key and body."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.errors import Conflict, InvalidInput
from registry.models import IdempotencyRecord


def idempotency_begin(
    *, user: AbstractBaseUser, key: str, method: str, path: str, request_hash: str
) -> tuple[IdempotencyRecord, bool]:
    """Claim the key. Returns ``(record, True)`` for a new claim, or ``(record, False)``
    with the stored response of an earlier identical request."""
    if not key or len(key) > 255 or not key.isprintable():
        raise InvalidInput("Idempotency-Key must be 1-255 printable characters", details={"Idempotency-Key": "invalid"})
    for _ in range(2):
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=user, key=key, method=method, path=path, request_hash=request_hash
                )
            return record, True
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
            if existing is None:
                continue
            if existing.created_at < timezone.now() - settings.MODELGATE_IDEMPOTENCY_TTL:
                existing.delete()
                continue
            if existing.path != path or existing.method != method or existing.request_hash != request_hash:
                raise Conflict(
                    "this Idempotency-Key was already used with a different request",
                    code="idempotency_key_reused",
                ) from None
            if existing.status_code is None:
                raise Conflict(
                    "a request with this Idempotency-Key is still in progress", code="idempotency_in_progress"
                ) from None
            return existing, False
    raise Conflict("could not claim the Idempotency-Key", code="idempotency_in_progress")


def idempotency_finish(*, record: IdempotencyRecord, status_code: int, response: Any) -> None:
    """Keep a successful response for replay; forget the claim otherwise, so that a
    retry after a failure (a 503, say) runs again."""
    if 200 <= status_code < 300:
        IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=status_code, response=response)
    else:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()


def idempotency_purge() -> int:
    cutoff = timezone.now() - settings.MODELGATE_IDEMPOTENCY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
