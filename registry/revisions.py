"""Row revisions kept by the database: every insert or update of a row in
``REVISIONED_TABLES`` gives it a new random ``revision``, whichever code writes it (a
service, the admin, a raw ``update()``). The revisions read together with a version tell
whether a rendering of it made earlier is still current (``registry/api/documents.py``).

Revisions are random below 2**40: a change is told apart from the state before it with
certainty but for 2**-40, and sums over a version's rows cannot overflow 64 bits.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

REVISIONED_TABLES = (
    "registry_dataset",
    "registry_modelversion",
    "registry_versiontag",
    "registry_versionmetric",
    "registry_alias",
)

_POSTGRESQL_FUNCTION = """
CREATE OR REPLACE FUNCTION registry_revise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := floor(random() * 1099511627776)::bigint;
    RETURN NEW;
END
$$
"""


def _install_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [_POSTGRESQL_FUNCTION] + [
            f"CREATE OR REPLACE TRIGGER {table}_revise BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION registry_revise()"
            for table in REVISIONED_TABLES
        ]
    if vendor == "sqlite":
        # SQLite triggers cannot assign NEW: an AFTER trigger sets the row instead (it
        # does not fire itself again, recursive triggers being off).
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_revise_{event.lower()} AFTER {event} ON {table} BEGIN "
            f"UPDATE {table} SET revision = random() & 1099511627775 WHERE rowid = NEW.rowid; END"
            for table in REVISIONED_TABLES
            for event in ("INSERT", "UPDATE")
        ]
    raise RuntimeError(f"ModelGate keeps row revisions on PostgreSQL and SQLite, not on {vendor}")


def _remove_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_revise ON {table}" for table in REVISIONED_TABLES] + [
            "DROP FUNCTION IF EXISTS registry_revise()"
        ]
    return [
        f"DROP TRIGGER IF EXISTS {table}_revise_{event.lower()}"
        for table in REVISIONED_TABLES
        for event in ("INSERT", "UPDATE")
    ]


def revision_triggers_install(connection: BaseDatabaseWrapper) -> None:
    """Create the triggers, or leave them as they are; safe to run any number of times.

    Run by migration 0002 and again after every ``migrate``: SQLite drops a table's
    triggers when a later migration rebuilds the table.
    """
    with connection.cursor() as cursor:
        for statement in _install_statements(connection.vendor):
            cursor.execute(statement)


def revision_triggers_remove(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for statement in _remove_statements(connection.vendor):
            cursor.execute(statement)
