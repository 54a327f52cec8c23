"""Compaction and retention of the prediction log's Parquet files: closed partitions are
merged into one file each, partitions past the retention go, and no row is lost or
doubled, including when a compaction stops mid-way and the next one finishes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from lifecycle.monitoring.prediction_log import PiiMasker
from lifecycle.monitoring.prediction_store import PredictionStore
from lifecycle.monitoring.prediction_upkeep import MANIFEST, PredictionLogUpkeep
from tests.lifecycle.monitoring.logged_calls import logged_calls

MODEL = "fraud/detector"
NOW = datetime(2026, 12, 3, 15, 20, tzinfo=UTC)
HOURS = [NOW - timedelta(hours=h) for h in (5, 4, 0)]  # two closed hours and the open one
OLD = NOW - timedelta(days=40)


@pytest.fixture
def store(tmp_path: Path) -> PredictionStore:
    """A log as a busy gateway leaves it: many small files per partition."""
    store = PredictionStore(str(tmp_path / "log"), masker=PiiMasker(b"k"))
    for h, moment in enumerate([*HOURS, OLD]):
        for batch in range(6):
            store.write_calls(
                logged_calls(model=MODEL, start=moment + timedelta(minutes=batch), count=7, prefix=f"h{h}b{batch}")
            )
    for day, received in enumerate([NOW - timedelta(days=2), NOW, OLD]):
        for batch in range(3):
            labels = [{"request_id": f"h0b{batch}-{i}", "label": 1} for i in range(4)]
            store.write_labels(model=MODEL, labels=labels, received_at=received + timedelta(minutes=day * 10 + batch))
    return store


def _files(root: Path) -> dict[str, int]:
    counted: dict[str, int] = {}
    for path in root.rglob("*.parquet"):
        key = str(path.parent.relative_to(root))
        counted[key] = counted.get(key, 0) + 1
    return counted


def _request_ids(store: PredictionStore, start: datetime, end: datetime) -> list[str]:
    return sorted(store.prediction_rows(model=MODEL, start=start, end=end).column("request_id").to_pylist())


def test_closed_partitions_become_one_file_each_and_no_row_is_lost(store, tmp_path):
    upkeep = PredictionLogUpkeep(store)
    before_rows = upkeep.row_count()
    before_ids = _request_ids(store, OLD - timedelta(hours=1), NOW + timedelta(hours=1))
    assert before_rows == 4 * 6 * 7 + 3 * 3 * 4 and len(before_ids) == 4 * 6 * 7

    report = upkeep.compact(closed_before=NOW - timedelta(hours=1))

    files = _files(tmp_path / "log")
    open_hour = f"predictions/model=fraud%2Fdetector/version=1/date={NOW.date()}/hour={NOW.hour:02d}"
    assert files.pop(open_hour) == 6  # the open hour is left alone
    assert files.pop(f"labels/model=fraud%2Fdetector/date={NOW.date()}") == 3  # today's labels too
    assert set(files.values()) == {1}  # every closed partition: one file
    assert report.partitions_compacted == 5 and report.files_merged == 3 * 6 + 2 * 3
    assert upkeep.row_count() == before_rows
    assert _request_ids(store, OLD - timedelta(hours=1), NOW + timedelta(hours=1)) == before_ids
    # The labels still join: the newest label of each row, as before.
    assert len(store.label_rows(model=MODEL)) == 12
    # Nothing left to merge.
    assert upkeep.compact(closed_before=NOW - timedelta(hours=1)).partitions_compacted == 0


def test_retention_deletes_only_the_partitions_past_it(store):
    upkeep = PredictionLogUpkeep(store)
    before = upkeep.row_count()

    report = upkeep.expire(older_than=(NOW - timedelta(days=30)).date())

    assert report.partitions_deleted == 2  # the old day of predictions and of labels
    assert report.rows_deleted == 6 * 7 + 3 * 4
    assert upkeep.row_count() == before - report.rows_deleted
    assert _request_ids(store, OLD - timedelta(hours=1), OLD + timedelta(hours=1)) == []
    assert len(_request_ids(store, HOURS[0], NOW + timedelta(hours=1))) == 3 * 6 * 7


class StopsBeforeRename(pafs.LocalFileSystem):
    """The local filesystem as a worker killed after deleting the merged files' sources,
    before giving the merged file its name, sees it."""

    def move(self, src: str, dest: str) -> None:
        raise OSError("worker killed")


def test_a_compaction_stopped_mid_way_is_finished_by_the_next_one(store):
    upkeep = PredictionLogUpkeep(store)
    before_rows = upkeep.row_count()
    before_ids = _request_ids(store, OLD - timedelta(hours=1), NOW + timedelta(hours=1))
    stopping = PredictionLogUpkeep(store)
    stopping.fs = StopsBeforeRename()
    with pytest.raises(OSError, match="worker killed"):
        stopping.compact(closed_before=NOW - timedelta(hours=1))
    # One partition is half done: its rows are in the merged file, under its manifest.
    manifests = list(Path(store.base).rglob(MANIFEST))
    assert len(manifests) == 1

    report = upkeep.compact(closed_before=NOW - timedelta(hours=1))

    assert report.partitions_recovered == 1 and not list(Path(store.base).rglob(MANIFEST))
    assert upkeep.row_count() == before_rows
    assert _request_ids(store, OLD - timedelta(hours=1), NOW + timedelta(hours=1)) == before_ids


def test_a_merged_file_written_without_its_manifest_is_dropped_and_the_sources_stay(store):
    upkeep = PredictionLogUpkeep(store)
    before_rows = upkeep.row_count()
    directory = next(Path(store.base).rglob("hour=*"))
    sources = sorted(directory.glob("*.parquet"))
    (directory / "_compacting-stray.parquet").write_bytes(sources[0].read_bytes())
    assert upkeep.row_count() == before_rows  # readers do not see it

    report = upkeep.compact(closed_before=NOW - timedelta(hours=1))

    assert report.partitions_recovered == 1 and not (directory / "_compacting-stray.parquet").exists()
    assert upkeep.row_count() == before_rows


@pytest.mark.django_db
def test_the_periodic_task_compacts_and_applies_the_retention_setting(settings, tmp_path):
    from lifecycle.monitoring.store import prediction_store
    from lifecycle.monitoring.tasks import compact_prediction_log

    settings.MODELGATE_PREDICTION_LOG_ROOT = str(tmp_path / "periodic")
    settings.MODELGATE_PREDICTION_RETENTION_DAYS = 30
    now = datetime.now(UTC)
    store = prediction_store()
    for batch in range(4):
        store.write_calls(logged_calls(model=MODEL, start=now - timedelta(hours=6), count=5, prefix=f"recent{batch}"))
        store.write_calls(logged_calls(model=MODEL, start=now - timedelta(days=31), count=5, prefix=f"old{batch}"))
    before = PredictionLogUpkeep(store).row_count()

    report = compact_prediction_log()

    assert report["partitions_compacted"] == 1 and report["files_merged"] == 4
    assert report["partitions_deleted"] == 1 and report["rows_deleted"] == 20
    assert PredictionLogUpkeep(store).row_count() == before - 20 == 20
