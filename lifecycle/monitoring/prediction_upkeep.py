"""Upkeep of the prediction log's files: compaction and retention. Pure (no Django).

The gateway writes a file per partition every few seconds, so a busy hour holds hundreds
of small files. Compaction merges the files of each closed partition (an hour of
predictions, a day of labels) into one; retention deletes whole date partitions older
than the retention. Neither loses a row:

1. the merged file is written under a name readers ignore (``_compacting-….parquet``:
   DuckDB and pyarrow skip names starting with ``_``) and its row count is checked
   against the sum of the files it replaces;
2. a manifest (``_compacting.json``) names the merged file, its final name and the files
   it replaces, before any of them is deleted;
3. the replaced files are deleted, the merged file takes its final name, the manifest
   goes.

On S3 the merged file and the manifest are uploaded by the store (with its server-side
encryption arguments), the rename is a copy that carries them too, and deletes go through
the store (so no directory marker is left behind).

A compaction stopped anywhere is finished by the next one (``_recover``): with a
manifest, the merged file is complete, so the rest of the steps are repeated; a merged
file without a manifest never replaced anything and is deleted. Files written into a
partition while it is compacted are not in the manifest and stay as they are. Two
compactions of one partition at once would each merge the same sources: the caller
keeps them apart (``lifecycle.monitoring.services.upkeep``: a lease renewed through
``before_partition``).
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lifecycle.monitoring.prediction_store import LABEL_SCHEMA, PREDICTION_SCHEMA, PredictionStore

MANIFEST = "_compacting.json"
MERGING_PREFIX = "_compacting-"


@dataclass
class UpkeepReport:
    partitions_compacted: int = 0
    files_merged: int = 0
    rows_compacted: int = 0
    partitions_recovered: int = 0
    partitions_deleted: int = 0
    rows_deleted: int = 0


def _values(directory: str) -> dict[str, str]:
    """The Hive partition values of a directory path (``date=…``, ``hour=…``)."""
    parts = {}
    for segment in directory.split("/"):
        key, sep, value = segment.partition("=")
        if sep:
            parts[key] = value
    return parts


def _partition_end(kind: str, directory: str) -> datetime | None:
    """When a partition closed: the end of its hour (predictions) or day (labels)."""
    values = _values(directory)
    try:
        day = date.fromisoformat(values["date"])
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if kind == "predictions":
            return start + timedelta(hours=int(values["hour"]) + 1)
        return start + timedelta(days=1)
    except (KeyError, ValueError):
        return None


class PredictionLogUpkeep:
    """Compaction and retention of one store's files."""

    def __init__(self, store: PredictionStore) -> None:
        self.store = store
        self.fs = store.filesystem
        self.base = store.base

    # --- listing ---------------------------------------------------------------------

    def _files(self, kind: str) -> dict[str, list[pafs.FileInfo]]:
        """Every file under ``kind`` (``predictions`` or ``labels``), by directory."""
        root = f"{self.base}/{kind}"
        if self.fs.get_file_info(root).type == pafs.FileType.NotFound:
            return {}
        found: dict[str, list[pafs.FileInfo]] = {}
        for info in self.fs.get_file_info(pafs.FileSelector(root, recursive=True)):
            if info.type == pafs.FileType.File:
                found.setdefault(posixpath.dirname(info.path), []).append(info)
        return found

    def row_count(self) -> int:
        """Rows of every visible file (predictions and labels): what readers see."""
        total = 0
        for kind in ("predictions", "labels"):
            for files in self._files(kind).values():
                total += sum(pq.read_metadata(f.path, filesystem=self.fs).num_rows for f in files if _visible(f))
        return total

    # --- compaction ------------------------------------------------------------------

    def _recover(self, directory: str, files: list[pafs.FileInfo]) -> bool:
        """Finish (or undo) a compaction of ``directory`` that stopped; whether there was one."""
        names = {posixpath.basename(f.path) for f in files}
        if MANIFEST in names:
            with self.fs.open_input_stream(f"{directory}/{MANIFEST}") as stream:
                manifest = json.loads(stream.read())
            merged = f"{directory}/{manifest['merged']}"
            if manifest["merged"] in names:
                for source in manifest["sources"]:
                    if source in names:
                        self._delete(f"{directory}/{source}")
                self._move(merged, f"{directory}/{manifest['target']}")
            self._delete(f"{directory}/{MANIFEST}")
            return True
        stray = [f for f in files if posixpath.basename(f.path).startswith(MERGING_PREFIX)]
        for info in stray:
            self._delete(info.path)
        return bool(stray)

    def _compact(self, directory: str, sources: list[pafs.FileInfo], schema: pa.Schema) -> int:
        """Merge ``sources`` into one file; the rows merged."""
        tables = [pq.read_table(f.path, filesystem=self.fs, schema=schema) for f in sources]
        merged = pa.concat_tables(tables)
        expected = sum(t.num_rows for t in tables)
        merging = f"{MERGING_PREFIX}{uuid.uuid4().hex}.parquet"
        if self.store.on_s3:
            self.store.put_table(f"{directory}/{merging}", merged)
        else:
            pq.write_table(merged, f"{directory}/{merging}", filesystem=self.fs, compression="zstd")
        written = pq.read_metadata(f"{directory}/{merging}", filesystem=self.fs).num_rows
        if written != expected:
            self._delete(f"{directory}/{merging}")
            raise OSError(f"compacting {directory}: wrote {written} rows of {expected}; nothing replaced")
        manifest = {
            "merged": merging,
            "target": f"compacted-{uuid.uuid4().hex}.parquet",
            "sources": [posixpath.basename(f.path) for f in sources],
        }
        if self.store.on_s3:
            self.store.put_bytes(f"{directory}/{MANIFEST}", json.dumps(manifest).encode())
        else:
            with self.fs.open_output_stream(f"{directory}/{MANIFEST}") as stream:
                stream.write(json.dumps(manifest).encode())
        for info in sources:
            self._delete(info.path)
        self._move(f"{directory}/{merging}", f"{directory}/{manifest['target']}")
        self._delete(f"{directory}/{MANIFEST}")
        return expected

    def _move(self, source: str, target: str) -> None:
        """Rename a file; on S3 a copy with the store's encryption arguments, then a delete."""
        if self.store.on_s3:
            self.store.copy(source, target)
            self.store.delete(source)
        else:
            self.fs.move(source, target)

    def _delete(self, path: str) -> None:
        if self.store.on_s3:
            self.store.delete(path)
        else:
            self.fs.delete_file(path)

    def _delete_dir(self, directory: str) -> None:
        if self.store.on_s3:
            self.store.delete_tree(directory)
        else:
            self.fs.delete_dir(directory)

    def compact(
        self,
        *,
        closed_before: datetime,
        report: UpkeepReport | None = None,
        before_partition: Callable[[str], None] | None = None,
    ) -> UpkeepReport:
        """Merge the files of every partition that closed by ``closed_before``.

        ``before_partition(directory)`` is called before each partition is touched (the
        caller renews its claim on the log there, and raises to stop the run): the files
        of one partition must not be merged by two runs at once."""
        report = report or UpkeepReport()
        for kind, schema in (("predictions", PREDICTION_SCHEMA), ("labels", LABEL_SCHEMA)):
            for directory, files in sorted(self._files(kind).items()):
                end = _partition_end(kind, directory)
                if end is None:
                    continue
                names = [posixpath.basename(f.path) for f in files]
                unfinished = any(name == MANIFEST or name.startswith(MERGING_PREFIX) for name in names)
                mergeable = end <= closed_before and sum(1 for f in files if _visible(f)) >= 2
                if not (unfinished or mergeable):
                    continue
                if before_partition is not None:
                    before_partition(directory)
                if self._recover(directory, files):
                    report.partitions_recovered += 1
                    files = self._files_in(directory)
                if end > closed_before:
                    continue
                sources = sorted((f for f in files if _visible(f)), key=lambda f: f.path)
                if len(sources) < 2:
                    continue
                report.rows_compacted += self._compact(directory, sources, schema)
                report.partitions_compacted += 1
                report.files_merged += len(sources)
        return report

    def _files_in(self, directory: str) -> list[pafs.FileInfo]:
        return [info for info in self.fs.get_file_info(pafs.FileSelector(directory)) if info.type == pafs.FileType.File]

    # --- retention -------------------------------------------------------------------

    def expire(self, *, older_than: date, report: UpkeepReport | None = None) -> UpkeepReport:
        """Delete the date partitions (predictions and labels) before ``older_than``."""
        report = report or UpkeepReport()
        for kind in ("predictions", "labels"):
            expired: dict[str, list[pafs.FileInfo]] = {}
            for directory, files in self._files(kind).items():
                day = _values(directory).get("date")
                if day is None or day >= older_than.isoformat():
                    continue
                # The date directory itself (with its hours under it).
                date_dir = directory[: directory.index(f"date={day}") + len(f"date={day}")]
                expired.setdefault(date_dir, []).extend(files)
            for date_dir, files in sorted(expired.items()):
                report.rows_deleted += sum(
                    pq.read_metadata(f.path, filesystem=self.fs).num_rows for f in files if _visible(f)
                )
                self._delete_dir(date_dir)
                report.partitions_deleted += 1
        return report


def _visible(info: pafs.FileInfo) -> bool:
    """A file readers see: a Parquet file whose name starts with neither ``_`` nor ``.``."""
    name = posixpath.basename(info.path)
    return name.endswith(".parquet") and not name.startswith(("_", "."))
