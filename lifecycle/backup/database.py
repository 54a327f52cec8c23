"""The database half of a backup: every row of every installed app, serialized by
Django as JSON lines inside one read-only snapshot, and loaded back into an empty
database of the same schema.

The dump is Django's own serialization (not ``pg_dump``) so that one format serves the
PostgreSQL deployments and the SQLite embedded default, and so that encrypted columns
leave the database only as ciphertext (``config/encryption.py``). Primary keys are
kept, so foreign keys, the audit chain and the outbox refer to the same rows after a
restore.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.core import serializers
from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.migrations.recorder import MigrationRecorder

# Login sessions are not data: a restored installation starts with everyone logged out.
EXCLUDED = frozenset({"sessions.session"})
# Rows that ``migrate`` creates in every installation; the backup's own replace them so
# that their ids (which other rows refer to) are the backup's.
MIGRATE_CREATED = ("auth.permission", "contenttypes.contenttype")
BATCH = 1000


def dumped_models() -> list[type[models.Model]]:
    """Every concrete model, in an order where a row's foreign keys point to rows of
    models listed before it (as far as cycles allow)."""
    app_list = [
        (config, [m for m in config.get_models() if m._meta.label_lower not in EXCLUDED and not m._meta.proxy])
        for config in apps.get_app_configs()
    ]
    return [m for m in serializers.sort_dependencies(app_list, allow_cycles=True) if m._meta.managed]


def applied_migrations() -> list[list[str]]:
    return sorted([app, name] for app, name in MigrationRecorder(connection).applied_migrations())


@contextmanager
def read_snapshot() -> Iterator[None]:
    """One transaction whose reads all see the same committed state: REPEATABLE READ
    on PostgreSQL; on SQLite a transaction is a snapshot by itself. Inside a caller's
    transaction, that transaction's view is used."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


class ExactJSONEncoder(DjangoJSONEncoder):
    """Django's encoder, but times keep their microseconds (Django's cuts them to
    milliseconds, which would change every timestamp and break the audit chain)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime | datetime.time):
            return o.isoformat()
        return super().default(o)


@dataclass
class DumpReport:
    counts: dict[str, int] = field(default_factory=dict)
    sha256: str = ""
    size: int = 0


class _HashingWriter:
    """A text stream that hashes and counts what passes through it."""

    def __init__(self, sink: IO[str]) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, text: str) -> int:
        data = text.encode()
        self.digest.update(data)
        self.size += len(data)
        return self.sink.write(text)

    def flush(self) -> None:
        self.sink.flush()


def database_dump(path: Path) -> DumpReport:
    """Write every row as one JSON line, model after model, in primary key order.
    Call inside ``read_snapshot()`` so that the rows are one consistent state."""
    report = DumpReport()
    with path.open("w", encoding="utf-8") as raw:
        stream = _HashingWriter(raw)
        for model in dumped_models():
            queryset = model._base_manager.order_by(model._meta.pk.name)
            count = 0

            def rows(queryset: models.QuerySet = queryset) -> Iterator[models.Model]:
                nonlocal count
                for row in queryset.iterator(chunk_size=2000):
                    count += 1
                    yield row

            serializers.serialize("jsonl", rows(), stream=stream, cls=ExactJSONEncoder)
            report.counts[model._meta.label_lower] = count
    report.sha256 = stream.digest.hexdigest()
    report.size = stream.size
    return report


def nonempty_tables() -> list[str]:
    """Labels of the models that already hold rows (``migrate``'s own rows aside)."""
    existing = set(connection.introspection.table_names())
    found = []
    for model in dumped_models():
        label = model._meta.label_lower
        if label in MIGRATE_CREATED or model._meta.db_table not in existing:
            continue
        if model._base_manager.exists():
            found.append(label)
    return found


def _insert(model: type[models.Model], objects: list[models.Model]) -> None:
    # ``raw`` keeps every value as dumped: auto_now fields are not set to "now".
    fields = list(model._meta.local_concrete_fields)
    model._base_manager._insert(objects, fields=fields, using=connection.alias, raw=True)


def _m2m_rows(model: type[models.Model], pk: Any, m2m: dict[str, list[Any]]) -> dict[type, list[models.Model]]:
    rows: dict[type, list[models.Model]] = {}
    for name, targets in m2m.items():
        relation = model._meta.get_field(name)
        through = relation.remote_field.through
        source, target = relation.m2m_field_name(), relation.m2m_reverse_field_name()
        rows.setdefault(through, []).extend(through(**{f"{source}_id": pk, f"{target}_id": other}) for other in targets)
    return rows


def database_load(path: Path) -> dict[str, int]:
    """Insert every dumped row into the current (empty, migrated) database, inside the
    caller's transaction; sequences then continue after the highest id."""
    with connection.cursor() as cursor:
        for label in MIGRATE_CREATED:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(apps.get_model(label)._meta.db_table)}")
    counts: dict[str, int] = {}
    pending: dict[type[models.Model], list[models.Model]] = {}
    touched: set[type[models.Model]] = set()

    def flush(model: type[models.Model]) -> None:
        batch = pending.pop(model, [])
        if batch:
            _insert(model, batch)

    with path.open(encoding="utf-8") as stream, connection.constraint_checks_disabled():
        m2m_later: dict[type, list[models.Model]] = {}
        for item in serializers.deserialize("jsonl", stream):
            obj = item.object
            model = type(obj)
            counts[model._meta.label_lower] = counts.get(model._meta.label_lower, 0) + 1
            pending.setdefault(model, []).append(obj)
            touched.add(model)
            for through, rows in _m2m_rows(model, obj.pk, item.m2m_data or {}).items():
                m2m_later.setdefault(through, []).extend(rows)
            if len(pending[model]) >= BATCH:
                flush(model)
        for model in list(pending):
            flush(model)
        for through, rows in m2m_later.items():
            for start in range(0, len(rows), BATCH):
                through._base_manager.bulk_create(rows[start : start + BATCH])
            touched.add(through)
        if connection.vendor == "sqlite":
            connection.check_constraints(table_names=[m._meta.db_table for m in touched])
    statements = connection.ops.sequence_reset_sql(no_style(), list(touched))
    if statements:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    return counts
