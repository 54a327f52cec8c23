"""The prediction log's compaction (the upkeep part of ``bench/monitoring.py``).

Run from the repository root, alone or through ``bench/monitoring.py``::

    .venv/bin/python bench/monitoring_upkeep.py [--hours 6] [--files 200] [--rows 50]

Writes ``--hours`` closed hours of one model's log as a gateway leaves them: ``--files``
small Parquet files an hour (one per flush) of ``--rows`` calls each, on a local
directory. Then reads one hour back as a monitoring window does, compacts every hour
(``PredictionLogUpkeep.compact``), reads the same hour again, and checks that the log
holds the same rows. Prints the time of each step and the files before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lifecycle.monitoring.prediction_log import LoggedCall, PiiMasker  # noqa: E402
from lifecycle.monitoring.prediction_store import PredictionStore  # noqa: E402
from lifecycle.monitoring.prediction_upkeep import PredictionLogUpkeep  # noqa: E402

MODEL = "bench-model"
FEATURES = 30


def _write(store: PredictionStore, start: datetime, hours: int, files: int, rows: int) -> None:
    for hour in range(hours):
        for flush in range(files):
            moment = start + timedelta(hours=hour, seconds=flush * 3600 / files)
            store.write_calls(
                LoggedCall(
                    request_id=f"h{hour}f{flush}c{i}",
                    model=MODEL,
                    version=1,
                    ts=moment + timedelta(milliseconds=i),
                    latency_ms=3.0,
                    status=200,
                    input=json.dumps(
                        {"dataframe_records": [{f"f{k}": (i * 7 + k) % 101 / 10 for k in range(FEATURES)}]}
                    ).encode(),
                    output=b'{"predictions": [1]}',
                    deployment_id=1,
                )
                for i in range(rows)
            )


def _read_hour(store: PredictionStore, start: datetime) -> tuple[int, float]:
    began = time.perf_counter()
    frame = store.window(model=MODEL, start=start, end=start + timedelta(hours=1), version=1, labels=True)
    return len(frame), time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rows", type=int, default=50)
    args = parser.parse_args()
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="modelgate-upkeep-") as root:
        store = PredictionStore(root, masker=PiiMasker(b"bench"))
        began = time.perf_counter()
        _write(store, start, args.hours, args.files, args.rows)
        written = time.perf_counter() - began
        upkeep = PredictionLogUpkeep(store)
        rows_before = upkeep.row_count()
        files_before = sum(1 for _ in Path(root).rglob("*.parquet"))
        hour_rows, read_before = _read_hour(store, start)
        began = time.perf_counter()
        report = upkeep.compact(closed_before=start + timedelta(hours=args.hours))
        compacted = time.perf_counter() - began
        files_after = sum(1 for _ in Path(root).rglob("*.parquet"))
        hour_rows_after, read_after = _read_hour(store, start)
        rows_after = upkeep.row_count()
    print(f"log: {args.hours} h × {args.files} files × {args.rows} calls × {FEATURES} features ({rows_before} rows)")
    print(f"write (as the gateway's flushes):       {written:8.2f} s")
    print(f"files before → after:                   {files_before} → {files_after}")
    print(f"one hour as a window, before compaction: {read_before:8.3f} s ({hour_rows} rows)")
    print(f"compaction of every hour:                {compacted:8.2f} s ({report.rows_compacted} rows)")
    print(f"one hour as a window, after compaction:  {read_after:8.3f} s ({hour_rows_after} rows)")
    same = rows_before == rows_after and hour_rows == hour_rows_after
    print(f"rows before = after: {'yes' if same else 'NO'} ({rows_before} / {rows_after})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
