"""One compaction of a prediction log at a time, on PostgreSQL and on SQLite: two runs
started together over the same partition leave every row exactly once (the second finds
the log's lease held and does nothing); a lease whose run died is taken over once it has
expired; a run whose lease was taken over meanwhile stops before its next partition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from lifecycle.monitoring.prediction_upkeep import PredictionLogUpkeep, UpkeepReport
from tests.lifecycle.monitoring.logged_calls import logged_calls

MODEL = "fraud-detector"
REPO = Path(__file__).resolve().parents[3]
FIRST = "first-compaction"


def _hour_ago(days: int) -> datetime:
    """Five minutes into an hour ``days`` back: a closed partition, past the monitored span."""
    return (datetime.now(UTC) - timedelta(days=days)).replace(minute=5, second=0, microsecond=0)


def _written(store: Any, moment: datetime, batches: int, prefix: str) -> None:
    """``batches`` small files in the partition of ``moment``, as a busy gateway leaves them."""
    for batch in range(batches):
        store.write_calls(
            logged_calls(model=MODEL, start=moment + timedelta(minutes=batch), count=4, prefix=f"{prefix}{batch}")
        )


def _request_ids(store: Any, moment: datetime) -> list[str]:
    table = store.prediction_rows(
        model=MODEL, start=moment - timedelta(hours=1), end=moment + timedelta(hours=1), columns=["request_id"]
    )
    return sorted(table.column("request_id").to_pylist())


def _outcome(result: Any) -> Any:
    if isinstance(result, UpkeepReport):
        return dict(vars(result))
    return None if result is None else repr(result)


def overlapping_compactions() -> dict[str, Any]:
    """Two upkeep runs of the configured log at once: the first is held inside its
    compaction of a partition, its sources read and its merged file not written yet, while
    the second runs to its end; then the first finishes, and a third run finishes whatever
    they left. What each returned, the partition's request ids and files afterwards, and
    the lease's holder.

    Were both runs let in, the second would merge the partition first; the first would
    then store its own merged file and manifest, fail on sources already gone, and the
    third run would finish its compaction: every row twice."""
    import pyarrow.parquet as pq
    from django.db import connections

    from lifecycle.monitoring.models import PredictionLogLease
    from lifecycle.monitoring.services.upkeep import prediction_log_upkeep
    from lifecycle.monitoring.store import prediction_store

    store = prediction_store()
    moment = _hour_ago(1)
    _written(store, moment, 5, "b")
    expected = _request_ids(store, moment)

    entered, go = threading.Event(), threading.Event()
    write_table = pq.write_table

    def held_write(*args: Any, **kwargs: Any) -> None:
        # The first run's only write is its merged file, after it read the sources.
        if threading.current_thread().name == FIRST:
            entered.set()
            go.wait(120)
        write_table(*args, **kwargs)

    results: dict[str, Any] = {}

    def run(label: str) -> None:
        try:
            results[label] = _outcome(prediction_log_upkeep())
        except Exception as exc:  # reported to the test, which says what it expected
            results[label] = repr(exc)

    def first() -> None:
        try:
            run("first")
        finally:
            connections.close_all()

    pq.write_table = held_write
    try:
        thread = threading.Thread(target=first, name=FIRST)
        thread.start()
        results["first_entered"] = entered.wait(120)
        run("second")
        go.set()
        thread.join(180)
    finally:
        go.set()
        pq.write_table = write_table
    run("third")
    directory = Path(store.base) / "predictions" / f"model={MODEL}" / "version=1"
    return {
        **results,
        "expected": expected,
        "ids": _request_ids(store, moment),
        "files": len([p for p in directory.rglob("*.parquet") if not p.name.startswith("_")]),
        "holders": list(PredictionLogLease.objects.values_list("holder", flat=True)),
    }


def _check(outcome: dict[str, Any]) -> None:
    assert outcome["first_entered"]
    assert len(outcome["expected"]) == 20
    # The second run found the lease held; the first compacted the partition alone.
    assert outcome["second"] is None, outcome
    assert isinstance(outcome["first"], dict), outcome
    assert (outcome["first"]["partitions_compacted"], outcome["first"]["files_merged"]) == (1, 5)
    assert outcome["first"]["rows_compacted"] == 20
    # Nothing was left for a third run; every row is there once, in one file; the lease is free.
    assert isinstance(outcome["third"], dict) and outcome["third"]["partitions_compacted"] == 0, outcome
    assert outcome["third"]["partitions_recovered"] == 0, outcome
    assert outcome["ids"] == outcome["expected"]
    assert outcome["files"] == 1
    assert outcome["holders"] == [""]


@pytest.fixture
def log_root(settings, tmp_path: Path) -> Path:
    settings.MODELGATE_PREDICTION_LOG_ROOT = str(tmp_path / "log")
    settings.MODELGATE_PREDICTION_RETENTION_DAYS = 90
    return tmp_path / "log"


@pytest.mark.django_db(transaction=True)
def test_two_compactions_of_one_partition_at_once_leave_every_row_exactly_once(log_root):
    _check(overlapping_compactions())


_SQLITE_SCRIPT = """
import json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from tests.lifecycle.monitoring.test_prediction_log_compaction_lease import overlapping_compactions
print(json.dumps(overlapping_compactions()))
"""


def test_on_sqlite_too_two_compactions_at_once_leave_every_row_exactly_once(tmp_path: Path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "MODELGATE_", "PYTEST_", "DJANGO_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "MODELGATE_ENV": "test",
            "MODELGATE_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'modelgate.sqlite3'}",
            "MODELGATE_PREDICTION_LOG_ROOT": str(tmp_path / "log"),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", _SQLITE_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _check(json.loads(done.stdout.strip().splitlines()[-1]))


# --- the lease itself ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_lease_held_by_a_live_run_makes_another_run_do_nothing(log_root):
    from lifecycle.monitoring.services.upkeep import prediction_log_lease_claim, prediction_log_upkeep
    from lifecycle.monitoring.store import prediction_store

    store = prediction_store()
    moment = _hour_ago(1)
    _written(store, moment, 3, "held")
    assert prediction_log_lease_claim(name=store.root, holder="another-worker")

    assert prediction_log_upkeep() is None
    assert len(list(log_root.rglob("*.parquet"))) == 3  # nothing merged


@pytest.mark.django_db
def test_the_lease_of_a_run_that_died_is_taken_over_once_it_expired(log_root, settings):
    from lifecycle.monitoring.models import PredictionLogLease
    from lifecycle.monitoring.services.upkeep import prediction_log_lease_claim, prediction_log_upkeep
    from lifecycle.monitoring.store import prediction_store

    store = prediction_store()
    moment = _hour_ago(1)
    _written(store, moment, 3, "dead")
    assert prediction_log_lease_claim(name=store.root, holder="died-mid-way")
    assert not prediction_log_lease_claim(name=store.root, holder="too-early")
    PredictionLogLease.objects.filter(name=store.root).update(expires_at=timezone.now() - timedelta(seconds=1))

    report = prediction_log_upkeep()

    assert report is not None and report.partitions_compacted == 1 and report.rows_compacted == 12
    assert _request_ids(store, moment) == sorted(f"dead{b}-{i}" for b in range(3) for i in range(4))
    assert PredictionLogLease.objects.get(name=store.root).holder == ""


@pytest.mark.django_db
def test_a_run_whose_lease_was_taken_over_stops_before_its_next_partition(log_root, monkeypatch):
    from lifecycle.monitoring.models import PredictionLogLease
    from lifecycle.monitoring.services.upkeep import prediction_log_upkeep
    from lifecycle.monitoring.store import prediction_store

    store = prediction_store()
    hours = [_hour_ago(2), _hour_ago(1)]
    for number, moment in enumerate(hours):
        _written(store, moment, 3, f"h{number}-")
    merge = PredictionLogUpkeep._compact

    def merge_then_lose_the_lease(self, directory, sources, schema):
        rows = merge(self, directory, sources, schema)
        # The run stalled past its lease, and another run claimed the log.
        PredictionLogLease.objects.filter(name=store.root).update(
            holder="the-run-that-took-over", expires_at=timezone.now() + timedelta(minutes=10)
        )
        return rows

    monkeypatch.setattr(PredictionLogUpkeep, "_compact", merge_then_lose_the_lease)

    report = prediction_log_upkeep()

    assert report is not None and report.partitions_compacted == 1
    # The second partition is left to the run that holds the lease now, and so is the lease.
    assert sorted(len(list(d.glob("*.parquet"))) for d in log_root.rglob("hour=*")) == [1, 3]
    assert PredictionLogLease.objects.get(name=store.root).holder == "the-run-that-took-over"
    assert len(_request_ids(store, hours[0])) + len(_request_ids(store, hours[1])) == 24
