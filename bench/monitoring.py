"""The monitoring stage's benchmarks, one section per part, each a script of its own:

    ingest   bench/monitoring_ingest.py  the prediction log: the latency a logged prediction
                                         adds at the gateway, rows/s through the gateway and
                                         the batch API, Parquet against PostgreSQL storage
    drift    bench/monitoring_drift.py   drift of one window against Evidently's
    upkeep   bench/monitoring_upkeep.py  compaction of the log's small files: time, and
                                         the read time of a window before and after

Run from the repository root::

    .venv/bin/python bench/monitoring.py                      every section, default sizes
    .venv/bin/python bench/monitoring.py ingest [ARGS...]     one section, with its own arguments
    .venv/bin/python bench/monitoring.py drift [ARGS...]
    .venv/bin/python bench/monitoring.py upkeep [ARGS...]

A section's arguments are those of its script (``--help`` lists them).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECTIONS = {"ingest": "bench.monitoring_ingest", "drift": "bench.monitoring_drift", "upkeep": "bench.monitoring_upkeep"}


def run_section(name: str, argv: list[str]) -> int:
    module = importlib.import_module(SECTIONS[name])
    print(f"\n######## {name} ({module.__file__}) ########", flush=True)
    saved = sys.argv
    sys.argv = [str(module.__file__), *argv]
    try:
        code = module.main()
    finally:
        sys.argv = saved
    return int(code or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SECTIONS:
        return run_section(argv[0], argv[1:])
    if argv:
        print(__doc__)
        return 2
    return max(run_section(name, []) for name in SECTIONS)


if __name__ == "__main__":
    sys.exit(main())
