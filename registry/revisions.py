"""Row revisions kept by the database: every insert or update of a row in
``REVISIONED_TABLES`` gives it a new random ``revision``, whichever code writes it (a
service, the admin, a raw ``update()``). The revisions read together with a version tell
whether a rendering of it made earlier is still current (``registry/api/documents.py``).

A version's own revision also changes whenever a row of ``VERSION_CHILD_TABLES`` (its
tags, metric values, aliases) is inserted, updated or deleted: an alias moved from one
version to another revises both. So the version row's revision alone stands for all of
them, and a page of versions reads one column per version instead of summing the rows
of three tables (about half of a cold page query's time).

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

# Rows shown with a version: each change to one revises the version it belongs to.
VERSION_CHILD_TABLES = ("registry_versiontag", "registry_versionmetric", "registry_alias")

# Statement-level, over the transition tables: a bulk insert of 20,000 tags revises each
# version once, in one UPDATE. The version's own trigger then draws its new revision.
_POSTGRESQL_VERSION_FUNCTION = """
CREATE OR REPLACE FUNCTION registry_revise_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE registry_modelversion SET revision = 0 WHERE id IN (SELECT version_id FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE registry_modelversion SET revision = 0 WHERE id IN (SELECT version_id FROM old_rows);
    ELSE
        UPDATE registry_modelversion SET revision = 0
        WHERE id IN (SELECT version_id FROM old_rows UNION SELECT version_id FROM new_rows);
    END IF;
    RETURN NULL;
END
$$
"""
_POSTGRESQL_TRANSITIONS = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
}
_SQLITE_VERSIONS = {"INSERT": "NEW.version_id", "UPDATE": "OLD.version_id, NEW.version_id", "DELETE": "OLD.version_id"}

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
        return (
            [_POSTGRESQL_FUNCTION, _POSTGRESQL_VERSION_FUNCTION]
            + [
                f"CREATE OR REPLACE TRIGGER {table}_revise BEFORE INSERT OR UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION registry_revise()"
                for table in REVISIONED_TABLES
            ]
            + [
                f"CREATE OR REPLACE TRIGGER {table}_revise_version_{event.lower()} AFTER {event} ON {table} "
                f"{transitions} FOR EACH STATEMENT EXECUTE FUNCTION registry_revise_versions()"
                for table in VERSION_CHILD_TABLES
                for event, transitions in _POSTGRESQL_TRANSITIONS.items()
            ]
        )
    if vendor == "sqlite":
        # SQLite triggers cannot assign NEW: an AFTER trigger sets the row instead (it
        # does not fire itself again, recursive triggers being off).
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_revise_{event.lower()} AFTER {event} ON {table} BEGIN "
            f"UPDATE {table} SET revision = random() & 1099511627775 WHERE rowid = NEW.rowid; END"
            for table in REVISIONED_TABLES
            for event in ("INSERT", "UPDATE")
        ] + [
            f"CREATE TRIGGER IF NOT EXISTS {table}_revise_version_{event.lower()} AFTER {event} ON {table} BEGIN "
            f"UPDATE registry_modelversion SET revision = random() & 1099511627775 WHERE id IN ({versions}); END"
            for table in VERSION_CHILD_TABLES
            for event, versions in _SQLITE_VERSIONS.items()
        ]
    raise RuntimeError(f"ModelGate keeps row revisions on PostgreSQL and SQLite, not on {vendor}")


def _version_remove_statements(vendor: str) -> list[str]:
    names = [
        (table, f"{table}_revise_version_{event.lower()}")
        for table in VERSION_CHILD_TABLES
        for event in _SQLITE_VERSIONS
    ]
    if vendor == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, name in names] + [
            "DROP FUNCTION IF EXISTS registry_revise_versions()"
        ]
    return [f"DROP TRIGGER IF EXISTS {name}" for _, name in names]


def _remove_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return (
            _version_remove_statements(vendor)
            + [f"DROP TRIGGER IF EXISTS {table}_revise ON {table}" for table in REVISIONED_TABLES]
            + ["DROP FUNCTION IF EXISTS registry_revise()"]
        )
    return _version_remove_statements(vendor) + [
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


def version_revision_triggers_remove(connection: BaseDatabaseWrapper) -> None:
    """Only the triggers that revise a version for its tags, metric values and aliases."""
    with connection.cursor() as cursor:
        for statement in _version_remove_statements(connection.vendor):
            cursor.execute(statement)
