"""Settings every gunicorn started in the repository root reads (``deploy/``'s web
service, ``make``, the benchmarks): Prometheus' multiprocess mode.

Each gunicorn worker counts its own requests; for ``/metrics`` to answer the sum whichever
worker Prometheus reaches, the workers write their counters to a directory they share
(``PROMETHEUS_MULTIPROC_DIR``: a fresh one per gunicorn start unless set) and a worker's
files are marked dead when it exits. This file runs in the gunicorn master before any
worker is forked, so the workers inherit the variable.
"""

import os
import tempfile
from typing import Any


def _fresh_directory() -> str:
    return tempfile.mkdtemp(prefix="modelgate-prometheus-")


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _fresh_directory()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
