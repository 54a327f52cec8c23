"""Reads that run as server-side prepared statements on PostgreSQL, and ORM queries
compiled to SQL once per process.

Every API read makes a few lookups of the same shape (the caller's token, the version a
model name and number or alias point to, a page of versions), changing only in their
values. PostgreSQL plans such a join with its subqueries for longer (1 to 2 ms) than it
runs it (0.1 ms); prepared once per connection, it is planned once. Django, for the sake
of connection poolers, prepares nothing, and its own cursors bind parameters on the
client and never prepare; the statements here use a server-binding cursor on the same
connection and transaction. ``MODELGATE_PREPARED_STATEMENTS=false`` turns this off for a
pooler that cannot keep prepared statements (PgBouncer before 1.21 in transaction mode).

``PreparedQuery`` also compiles its queryset to SQL once: Django compiles a queryset every
time it runs it, most of a millisecond for such a join.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet
from django.db.models.query import ValuesIterable
from django.db.models.sql.compiler import SQLCompiler

# psycopg prepares a statement after this many runs unless asked to at once (as here).
_ONLY_WHEN_ASKED = 1_000_000_000


def _execute(using: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one statement, prepared on PostgreSQL, on the current transaction."""
    connection = connections[using]
    with connection.cursor() as cursor:  # connects (and health-checks) as Django does
        if connection.vendor != "postgresql" or not settings.MODELGATE_PREPARED_STATEMENTS:
            cursor.execute(sql, params)
            return cursor.fetchall()
        raw = connection.connection
        if raw.prepare_threshold is None:
            raw.prepare_threshold = _ONLY_WHEN_ASKED
        started = time.monotonic()
        with connection.wrap_database_errors, psycopg.Cursor(raw) as server:
            server.execute(sql, params, prepare=True)
            rows = server.fetchall()
        if connection.queries_logged:
            connection.queries_log.append(
                {"sql": f"{sql} -- prepared; {list(params)!r}", "time": f"{time.monotonic() - started:.3f}"}
            )
        return rows


class PreparedValuesIterable(ValuesIterable):
    """``values()`` rows of a queryset, run as a prepared statement (``prepared``)."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        query = self.queryset.query
        compiler = query.get_compiler(self.queryset.db)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return  # a filter no row can match (an empty IN list): Django's answer too
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        for row in compiler.results_iter([_execute(self.queryset.db, sql, params)]):
            yield dict(zip(names, row, strict=True))


def prepared(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """A ``values()`` queryset whose later filters, orderings and slices run prepared."""
    if not issubclass(queryset._iterable_class, ValuesIterable):
        raise TypeError("only a values() queryset can run prepared")
    queryset._iterable_class = PreparedValuesIterable
    return queryset


@dataclass(frozen=True)
class _Slot:
    name: str


@dataclass
class _Compiled:
    sql: str
    params: list[Any]  # constants, and a _Slot where an argument goes
    names: list[str]
    compiler: SQLCompiler
    # What ``compiler.results_iter`` would look up again on every run (a fifth of a
    # lookup's time): the database-to-Python converters of the selected columns.
    converters: dict[int, Any]


class PreparedQuery:
    """A fixed-shape ``values()`` query compiled once, run prepared with new values.

    ``build(**arguments)`` returns the queryset; ``arguments`` name the type (``int`` or
    ``str``) of each argument, which may be used anywhere as a plain comparison value.
    ``rows(**values)`` gives what ``list(queryset)`` would.
    """

    def __init__(
        self, build: Callable[..., QuerySet[Any]], *, using: str = DEFAULT_DB_ALIAS, **arguments: type
    ) -> None:
        self.build = build
        self.using = using
        self.arguments = arguments
        self._compiled: _Compiled | None = None
        self._lock = threading.Lock()

    def _placeholders(self) -> dict[str, Any]:
        # Values no caller passes, each found again among the compiled parameters.
        values: dict[str, Any] = {}
        for index, (name, kind) in enumerate(self.arguments.items()):
            if kind is int:
                # In range for any integer column: Django answers an out-of-range
                # comparison without asking the database (no SQL to prepare).
                values[name] = 2_147_000_017 + index
            elif kind is str:
                values[name] = f"\x1fprepared:{name}\x1f"
            else:
                raise TypeError(f"argument {name!r}: only int and str arguments can be prepared, not {kind!r}")
        return values

    def compile(self) -> _Compiled:
        if self._compiled is not None:
            return self._compiled
        with self._lock:
            if self._compiled is None:
                placeholders = self._placeholders()
                queryset = self.build(**placeholders)
                if not issubclass(queryset._iterable_class, ValuesIterable):
                    raise TypeError("a prepared query must be a values() queryset")
                query = queryset.query
                compiler = query.get_compiler(using=self.using)
                sql, params = compiler.as_sql()
                slots = {value: _Slot(name) for name, value in placeholders.items()}
                compiled = [slots.get(param, param) if isinstance(param, int | str) else param for param in params]
                for param in compiled:
                    if isinstance(param, str) and "\x1fprepared:" in param:
                        raise ValueError(f"an argument is transformed in the query ({param!r}); only plain values work")
                unused = set(placeholders) - {param.name for param in compiled if isinstance(param, _Slot)}
                if unused:
                    raise ValueError(f"arguments not used by the query: {sorted(unused)}")
                names = [*query.extra_select, *query.values_select, *query.annotation_select]
                columns = [select[0] for select in compiler.select[0 : compiler.col_count]]
                converters = compiler.get_converters(columns)
                self._compiled = _Compiled(sql, compiled, names, compiler, converters)
        assert self._compiled is not None
        return self._compiled

    def rows(self, **values: Any) -> list[dict[str, Any]]:
        compiled = self.compile()
        params = [values[param.name] if isinstance(param, _Slot) else param for param in compiled.params]
        fetched: Iterable[Any] = _execute(self.using, compiled.sql, params)
        if compiled.converters:
            fetched = compiled.compiler.apply_converters(map(list, fetched), compiled.converters)
        names = compiled.names
        return [dict(zip(names, row, strict=True)) for row in fetched]

    def first(self, **values: Any) -> dict[str, Any] | None:
        found = self.rows(**values)
        return found[0] if found else None
