"""The processes and databases a benchmark starts on this machine, stopped and dropped
again whatever ends the run: its end, an error, Ctrl-C, SIGTERM or SIGHUP.

Every service listens on 127.0.0.1 on a free port, runs in its own process group (so
that stopping it stops its workers too) and writes its output to a log in the run's
working directory, kept after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtualenv's scripts: mlflow, gunicorn, moto_server
HOST = "127.0.0.1"
PG_HOST_PORT = "127.0.0.1:5432"
PG_ADMIN = f"postgresql://postgres@{PG_HOST_PORT}/postgres"

# Fake credentials for a moto S3 server, telemetry off, no proxy: nothing a benchmark
# starts may reach a real endpoint.
ISOLATED_ENV = {
    "AWS_ACCESS_KEY_ID": "modelgate-bench",
    "AWS_SECRET_ACCESS_KEY": "modelgate-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
# Nothing from the caller's environment may point a service elsewhere: the benchmark sets these.
_INHERITED_DROP = (*PROXY_VARS, "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG")
_INHERITED_DROP_PREFIXES = ("AWS_", "MLFLOW_", "MODELGATE_", "CELERY_", "BOTO")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int, *, host: str = HOST, timeout: float = 1.0) -> bool:
    """Whether something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, *, host: str = HOST, timeout: float) -> None:
    """Return once ``host:port`` accepts connections; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not port_open(port, host=host, timeout=min(1.0, timeout)):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:g} s")
        time.sleep(0.05)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a started service: this one without anything that could point it
    elsewhere (proxies, databases, AWS, MLflow, ModelGate or Celery settings), the isolated
    settings, then ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if k not in _INHERITED_DROP and not k.startswith(_INHERITED_DROP_PREFIXES)
    }
    env.update(ISOLATED_ENV)
    env.update(extra)
    return env


def isolate_this_process() -> None:
    """The isolated settings for this process too (its own MLflow and S3 clients)."""
    os.environ.update(ISOLATED_ENV)
    for name in PROXY_VARS:
        os.environ.pop(name, None)


@dataclass
class Stack:
    """Everything a run started, to stop and drop at the end: processes (each in its own
    process group), temporary PostgreSQL databases, and closers for what talks to them."""

    workdir: Path
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log_tails(self, chars: int = 1500) -> str:
        """The end of every started process's log, for an error message."""
        return "\n".join(
            f"--- {name}\n" + self.log(name).read_text(errors="replace")[-chars:] for name, _ in self.processes
        )

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start ``argv`` in the repository root, its output to ``<workdir>/<name>.log``."""
        with self.log(name).open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(REPO),
                start_new_session=True,  # its own process group: stopped with its workers
            )
        self.processes.append((name, process))
        return process

    def wait_ready(self, name: str, process: subprocess.Popen, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check`` (a failing check counts as not ready: the service may not listen
        yet) until it holds; raise with the end of its log if ``process`` exits first or
        ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.3)
        tail = self.log(name).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name} did not come up within {timeout:.0f}s (exit {process.poll()}):\n{tail}")

    def wait_for(self, check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
        """Poll ``check`` until it holds; raise with the ends of the logs if ``timeout``
        passes first or any process of this stack exits meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            dead = [name for name, process in self.processes if process.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0]} exited:\n{self.log_tails()}")
            time.sleep(interval)
        raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}\n{self.log_tails()}")

    def create_database(self, label: str) -> str:
        """A fresh, empty PostgreSQL database, dropped by ``stop``."""
        name = f"mgbench_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def stop(self) -> None:
        """Close, stop and drop everything; never raises."""
        for close in self.closers:
            with contextlib.suppress(Exception):
                close()
        self.closers.clear()
        running = [(name, process) for name, process in reversed(self.processes) if process.poll() is None]
        for _, process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"  {name} ignored SIGTERM; killing it", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for _, process in self.processes:
            # Workers that outlived their parent are still in the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()
        for database in reversed(self.databases):
            try:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            except psycopg.Error as exc:
                print(f"  could not drop database {database}: {exc}", flush=True)
        self.databases.clear()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_with_stack(body: Callable[[Stack], bool], *, keep_logs: bool) -> int:
    """Run ``body`` on a fresh stack and stop everything it started, however it ends.

    SIGTERM and SIGHUP interrupt it as Ctrl-C does. Returns the exit status: 0 when
    ``body`` returned true (every target met), 1 when false, 130 when interrupted; an
    error propagates after the clean-up. The services' logs are kept after a failure,
    an interruption or with ``keep_logs``, and their folder printed.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    stack = Stack(Path(tempfile.mkdtemp(prefix="modelgate-bench-")))
    started = time.perf_counter()
    failed = True
    try:
        passed = body(stack)
        failed = False
        return 0 if passed else 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", flush=True)
        return 130
    finally:
        # The clean-up itself must not be cut short by a second signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        if failed or keep_logs:
            print(f"service logs kept in {stack.workdir}", flush=True)
        else:
            shutil.rmtree(stack.workdir, ignore_errors=True)
        print(f"stopped everything started, dropped its databases ({time.perf_counter() - started:.0f}s in all)")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
