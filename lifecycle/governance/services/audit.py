"""The audit trail: append-only records chained by hash, so that a changed, removed or
inserted row is detected by ``audit_verify``.

Each record stores the previous record's hash and its own hash over a canonical JSON
form of its content. Appends are serialised (a transaction-scoped advisory lock on
PostgreSQL; SQLite serialises writers by itself) so that two concurrent changes cannot
chain onto the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from lifecycle.governance.models import AuditRecord
from registry import request_context

GENESIS = "0" * 64
# Arbitrary constant naming the audit chain's advisory lock.
_CHAIN_LOCK_KEY = 0x4D47_4155


def _json_ready(value: Any) -> Any:
    """What the value looks like after a round trip through a JSON column."""
    return None if value is None else json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def record_hash(prev_hash: str, content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def _content(record: AuditRecord) -> dict[str, Any]:
    return {
        "at": record.at.isoformat(),
        "actor": record.actor_name,
        "action": record.action,
        "object_type": record.object_type,
        "object_id": record.object_id,
        "model": record.model_name,
        "before": record.before,
        "after": record.after,
        "reason": record.reason,
        "request_id": record.request_id,
        "token": record.token_prefix,
    }


def _chain_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def audit_append(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    object_type: str,
    object_id: Any,
    model_name: str = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> AuditRecord:
    """Append one record to the chain, inside the caller's transaction."""
    context = request_context.current()
    with transaction.atomic():
        _chain_lock()
        prev_hash = AuditRecord.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS
        record = AuditRecord(
            at=timezone.now(),
            actor=actor if actor is not None and actor.is_authenticated else None,
            actor_name=actor.get_username() if actor is not None and actor.is_authenticated else "system",
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            model_name=model_name,
            before=_json_ready(before),
            after=_json_ready(after),
            reason=reason or "",
            request_id=context.request_id,
            token_prefix=context.token_prefix,
            prev_hash=prev_hash,
        )
        record.hash = record_hash(prev_hash, _content(record))
        record.save(force_insert=True)
    return record


@dataclass(frozen=True)
class ChainReport:
    valid: bool
    records: int
    first_bad: int | None
    problem: str = ""


def audit_chain_check(records: Iterable[AuditRecord], *, total: int) -> ChainReport:
    """Walk records in chain order (from the database or from a backup's dump) and
    report the first one that does not fit."""
    expected_prev = GENESIS
    for record in records:
        if record.prev_hash != expected_prev:
            return ChainReport(False, total, record.pk, "its previous-hash does not match the record before it")
        if record_hash(record.prev_hash, _content(record)) != record.hash:
            return ChainReport(False, total, record.pk, "its content does not match its hash")
        expected_prev = record.hash
    return ChainReport(True, total, None)


def audit_verify() -> ChainReport:
    """Walk the chain in order and report the first record that does not fit."""
    total = AuditRecord.objects.count()
    return audit_chain_check(AuditRecord.objects.order_by("id").iterator(chunk_size=2000), total=total)
