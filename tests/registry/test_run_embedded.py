"""``make run`` (``manage.py run_embedded``) on the embedded default, started for real in a
directory of its own: it migrates, seeds, starts MLflow, the web server, a worker, the
gateway and the demo loop, answers, and a SIGTERM to it alone stops every one of them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from bench.harness.processes import child_env
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.services


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not reaped yet is no longer running.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(") ", 1)[-1][:1] != "Z"


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def test_make_run_starts_the_platform_and_a_sigterm_stops_all_of_it_demo_included(tmp_path):
    ports = {"--port": free_port(), "--mlflow-port": free_port(), "--gateway-port": free_port()}
    env = child_env({"MODELGATE_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"})
    command = [sys.executable, "manage.py", "run_embedded", *(f"{k}={v}" for k, v in ports.items())]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("Press Ctrl-C to stop." in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "no banner in 300 s:\n" + "".join(lines)
            time.sleep(0.5)
        assert _get(f"http://127.0.0.1:{ports['--port']}/api/v1/health") == 200
        assert _get(f"http://127.0.0.1:{ports['--gateway-port']}/serve/-/health") == 200
        started = {m[1]: int(m[2]) for m in (re.search(r"started (\w+) \(pid (\d+)\)", x) for x in lines) if m}
        assert set(started) == {"mlflow", "worker", "web", "gateway"}, lines
        deadline = time.monotonic() + 30
        while not (demo := [pid for pid in _children_of(process.pid) if pid not in started.values()]):
            assert time.monotonic() < deadline, "the demo loop did not start"
            time.sleep(0.2)

        os.kill(process.pid, signal.SIGTERM)  # to run_embedded alone, not its group
        assert process.wait(timeout=60) == 0, "".join(lines)

        still = [name for name, pid in {**started, "demo_loop": demo[0]}.items() if _alive(pid)]
        assert still == [], f"still running after the stop: {still}"
        assert "stopping…" in "".join(lines)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in _children_of(process.pid):
            os.kill(pid, signal.SIGKILL)
