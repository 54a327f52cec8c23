"""ModelGate's API against a bare MLflow tracking server, end to end, on this machine.

Run from the repository root::

    .venv/bin/python bench/registry_vs_mlflow.py            # 20,000 versions (a few minutes)
    .venv/bin/python bench/registry_vs_mlflow.py --quick    # 2,000 versions, fewer requests

It starts, all on 127.0.0.1 and all stopped again at the end (also on Ctrl-C or an
error): moto's S3 server, an ``mlflow server`` (backend store on a fresh PostgreSQL
database, artifacts on the moto S3, ``--no-serve-artifacts``) and ModelGate's API under
gunicorn (``config.wsgi:application``, its own fresh PostgreSQL database, pointed at
that MLflow server and S3). Both fresh databases are dropped at the end.

Then it measures, for both systems, with a fixed number of requests per measurement
spread over client threads (one ``Session`` each) and bounded in time:

1. registration from a source: MLflow ``model-versions/create`` with a source on S3
   (it records the pointer), against ModelGate ``POST /api/v1/models/{name}/versions/``
   with the same source, which reads and digests the artifact and makes that same
   MLflow call itself; for information, no target (ModelGate does all MLflow does here
   and more);
2. registration from a run, the way each system's users register one: runs logged with
   ``mlflow.sklearn.log_model`` (MLflow 3 logged models on S3), then
   ``mlflow.register_model("runs:/<run>/model", name)`` (MLflow's client: the
   registered model ensured, the run's logged model found, the version created and
   awaited, the logged model tagged with it) against ModelGate ``POST`` with
   ``run_id`` (the run's logged model found, its artifact read and digested, run
   metrics copied, the MLflow version created);
3. version search at ``--versions`` versions, by model name and by tag, first page of
   ``--page-size`` (MLflow ``max_results`` = ModelGate ``page_size``, both newest
   version first);
4. alias resolution.

and prints a table, the ratios ModelGate/MLflow and PASS/FAIL against the targets:
search and alias throughput >= 3x MLflow's, registration from a run within 1.5x
MLflow's latency (p50 and p95).

Every client connection, to either system and in MLflow's client, acknowledges each
response at once (``registry.quickack``): ``mlflow server`` holds a response's body
until its headers are acknowledged, which a Linux client on a kept-alive connection
delays by up to 40 ms, so that plain connections would time that wait, not MLflow.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import multiprocessing
import os
import pickle
import platform
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import psycopg

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from registry import quickack  # noqa: E402 (no Django in it)

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PG_HOST_PORT = "127.0.0.1:5432"
PG_ADMIN = f"postgresql://postgres@{PG_HOST_PORT}/postgres"

_json_dumps = json.dumps  # ``Session.request`` takes a ``json`` argument, as requests does

ARTIFACT_BUCKET = "modelgate-bench"
MLFLOW_BUCKET = "mlflow-artifacts"
ARTIFACT_PREFIX = "sources/model-small"
REG_MODEL_MLFLOW = "bench-register-mlflow"
REG_MODEL_MODELGATE = "bench-register-modelgate"
RUN_MODEL_MLFLOW = "bench-run-mlflow"
RUN_MODEL_MODELGATE = "bench-run-modelgate"
RUN_EXPERIMENT = "bench-runs"
SEARCH_MODEL = "bench-search"
ALIAS = "bench"
TEAM = "bench"
TAG_KEY = "team"

TARGET_READ_SPEEDUP = 3.0
TARGET_REGISTRATION_LATENCY = 1.5

# Fake credentials for the moto S3 server; nothing here may reach a real endpoint.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "modelgate-bench",
    "AWS_SECRET_ACCESS_KEY": "modelgate-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
# Nothing from the caller's environment may point a service elsewhere: these are set here.
_INHERITED_DROP = (*_PROXY_VARS, "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG")
_INHERITED_DROP_PREFIXES = ("AWS_", "MLFLOW_", "MODELGATE_", "CELERY_", "BOTO")


# --- the plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much to do: versions to seed and requests per measurement."""

    versions: int
    workers: int
    clients: int
    page_size: int
    register_requests: tuple[int, int]  # (1 client, --clients clients)
    runs: int  # MLflow runs logged for registration from a run
    search_requests: tuple[int, int]
    alias_requests: tuple[int, int]
    time_limit: float
    seed_threads: int
    threads: int
    teams: int = 10


def plan_from(args: argparse.Namespace) -> Plan:
    quick = args.quick
    versions = args.versions if args.versions is not None else (2000 if quick else 20000)
    return Plan(
        versions=versions,
        workers=args.workers,
        clients=args.clients,
        page_size=args.page_size,
        register_requests=(45, 90) if quick else (60, 150),
        runs=16 if quick else 32,
        search_requests=(45, 120) if quick else (90, 240),
        alias_requests=(150, 450) if quick else (300, 900),
        time_limit=30.0 if quick else 60.0,
        seed_threads=args.seed_threads,
        threads=args.threads,
    )


# --- processes, databases, clean-up -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in _INHERITED_DROP and not k.startswith(_INHERITED_DROP_PREFIXES)
    }
    env.update(FAKE_AWS)
    env.update(extra)
    return env


class Response:
    """What a call answered: the parts of ``requests.Response`` the benchmark reads."""

    def __init__(self, method: str, url: str, status_code: int, body: bytes) -> None:
        self.method = method
        self.url = url
        self.status_code = status_code
        self.content = body

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Session:
    """A kept-alive HTTP/1.1 client on loopback, for either system.

    Built on ``http.client`` rather than ``requests``: the clients run in this process on
    the same two cores as the servers, and ``requests`` spends about 0.5 ms of CPU per
    call, a third of what a ModelGate alias lookup costs, which would cap the throughput
    measured for the faster server. Each response is read with quick acknowledgement:
    ``mlflow server`` sends a response's body only after its headers are acknowledged,
    which a Linux client on a kept-alive connection delays by up to 40 ms, so that a
    plain connection would time that delay instead of MLflow's work
    (``registry.quickack``; ModelGate's own MLflow client does the same)."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def get(self, url: str, *, params: dict[str, Any] | None = None, **kwargs: Any) -> Response:
        if params:
            url = f"{url}?{urlencode(params)}"
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        return self.request("PUT", url, **kwargs)

    def request(
        self, method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None, timeout: float = 60
    ) -> Response:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        send_headers = {"Accept": "application/json", **(headers or {})}
        body = None
        if json is not None:
            body = _json_dumps(json).encode()
            send_headers["Content-Type"] = "application/json"
        key = (parts.hostname or HOST, parts.port or 80)
        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and _closed_by_peer(connection.sock):
            # The server closed the kept-alive connection while it sat idle (gunicorn after
            # 2 s): reconnect before sending, as urllib3 does; a request is never resent.
            connection.close()
        if connection is None:
            connection = self._connections[key] = http.client.HTTPConnection(*key, timeout=timeout)
        try:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            connection.request(method, target, body=body, headers=send_headers)
            quickack.acknowledge_at_once(connection.sock)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            # Whatever state the exchange was left in, the next call starts afresh.
            connection.close()
            del self._connections[key]
            raise
        if response.will_close:
            connection.close()
            del self._connections[key]
        return Response(method, url, response.status, data)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether an idle connection's peer has closed it (readable with nothing to read)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def loopback_session() -> Session:
    return Session()


@dataclass
class Stack:
    """Everything this run started, to stop and drop at the end."""

    workdir: Path
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
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

    def create_database(self, label: str) -> str:
        name = f"mgbench_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def stop(self) -> None:
        for close in self.closers:
            with contextlib.suppress(Exception):
                close()
        for name, process in reversed(self.processes):
            if process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"  {name} ignored SIGTERM; killing it", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Workers that outlived their parent are still in the group.
            with contextlib.suppress(ProcessLookupError):
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


# --- CPU accounting -------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> tuple[int, float] | None:
    """``(process group, user + system CPU seconds)`` of a process, from /proc."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class CpuMeter:
    """CPU seconds used by everything this run started (servers and their workers) and
    by the PostgreSQL backends serving its databases: the work a request costs, which a
    busy neighbour on a shared machine does not change the way it changes wall time."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.conn = psycopg.connect(PG_ADMIN, autocommit=True)

    def snapshot(self) -> dict[int, float]:
        groups = {process.pid for _, process in self.stack.processes}
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", [self.stack.databases]
        ).fetchall()
        backends = {pid for (pid,) in rows}
        usage: dict[int, float] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            found = _process_cpu(pid)
            if found is not None and (found[0] in groups or pid in backends):
                usage[pid] = found[1]
        return usage

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

    def used_by_service(self, before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
        """CPU seconds per service this run started (its process group), the rest as
        ``postgresql`` (the database backends)."""
        names = {process.pid: name for name, process in self.stack.processes}
        parts: dict[str, float] = {}
        for pid, cpu in after.items():
            found = _process_cpu(pid)
            name = names.get(found[0], "postgresql") if found else "postgresql"
            parts[name] = parts.get(name, 0.0) + cpu - before.get(pid, 0.0)
        return parts

    def close(self) -> None:
        self.conn.close()


# --- the artifact ---------------------------------------------------------------------


def small_model_files() -> dict[str, bytes]:
    """A small MLflow-style model directory (about 20 kB), the same bytes every run."""
    rng = random.Random(7)
    weights = {"coef": [[rng.gauss(0, 1) for _ in range(32)] for _ in range(40)], "intercept": [0.1, -0.2]}
    mlmodel = """artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.11.9
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.0
mlflow_version: 3.1.0
model_size_bytes: 20000
signature:
  inputs: '[{"type": "double", "name": "amount", "required": true}, {"type": "double",
    "name": "age_days", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
"""
    return {
        "MLmodel": mlmodel.encode(),
        "model.pkl": pickle.dumps(weights, protocol=5),
        "conda.yaml": b"channels: [conda-forge]\ndependencies: [python=3.11.9, pip, {pip: [mlflow==3.1.0, scikit-learn==1.5.0]}]\n",
        "python_env.yaml": b"python: 3.11.9\nbuild_dependencies: [pip]\ndependencies: [-r requirements.txt]\n",
        "requirements.txt": b"mlflow==3.1.0\nscikit-learn==1.5.0\n",
    }


# --- measuring ------------------------------------------------------------------------


@dataclass
class Result:
    system: str
    what: str
    clients: int
    planned: int
    latencies: list[float]
    errors: int
    wall: float
    timed_out: bool
    first_error: str | None
    cpu: float = float("nan")  # CPU seconds of the services and their database backends
    cpu_parts: dict[str, float] = field(default_factory=dict)  # the same, per service
    client_cpu: float = 0.0  # CPU seconds of this process (the clients) during the rounds

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def cpu_per_request(self) -> float:
        """Milliseconds of CPU per successful request, all services included."""
        return self.cpu / self.ok * 1000 if self.ok else float("nan")

    @property
    def rate(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    def pct(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1
        return ordered[index] * 1000


Call = Callable[[Session, int], None]


def measure(
    system: str, what: str, clients: int, total: int, call: Call, *, time_limit: float, meter: CpuMeter | None = None
) -> Result:
    """``total`` calls over ``clients`` threads (a session each), stopping at ``time_limit``."""
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + time_limit

    def client() -> None:
        nonlocal issued
        session = loopback_session()
        mine: list[float] = []
        try:
            while True:
                with lock:
                    if issued >= total or time.monotonic() > deadline:
                        break
                    index = issued
                    issued += 1
                started = time.perf_counter()
                try:
                    call(session, index)
                except Exception as exc:  # counted and reported, never hidden
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:300])
                else:
                    mine.append(time.perf_counter() - started)
        finally:
            session.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    cpu_before = meter.snapshot() if meter else {}
    client_cpu_before = client_cpu()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    client_cpu_used = client_cpu() - client_cpu_before
    cpu_after = meter.snapshot() if meter else {}
    return Result(
        system,
        what,
        clients,
        total,
        latencies,
        len(errors),
        wall,
        timed_out=issued < total,
        first_error=errors[0] if errors else None,
        cpu=meter.used(cpu_before, cpu_after) if meter else float("nan"),
        cpu_parts=meter.used_by_service(cpu_before, cpu_after) if meter else {},
        client_cpu=client_cpu_used,
    )


def merge(parts: list[Result]) -> Result:
    """One result from the rounds of the same measurement."""
    first = parts[0]
    errors = [p.first_error for p in parts if p.first_error]
    return Result(
        first.system,
        first.what,
        first.clients,
        sum(p.planned for p in parts),
        [latency for p in parts for latency in p.latencies],
        sum(p.errors for p in parts),
        sum(p.wall for p in parts),
        timed_out=any(p.timed_out for p in parts),
        first_error=errors[0] if errors else None,
        cpu=sum(p.cpu for p in parts),
        cpu_parts={name: sum(p.cpu_parts.get(name, 0.0) for p in parts) for part in parts for name in part.cpu_parts},
        client_cpu=sum(p.client_cpu for p in parts),
    )


def compare(
    what: str,
    clients: int,
    total: int,
    calls: dict[str, Call],
    *,
    time_limit: float,
    meter: CpuMeter,
    server_threads: int,
    rounds: int = 3,
) -> list[Result]:
    """Measure each system in ``rounds`` alternating rounds (A B, B A, A B ...) of
    ``total / rounds`` calls, so that a change in the machine's background load during
    the measurement falls on both systems alike; each round is preceded by a warm-up
    that is not counted: two calls on each of ``server_threads`` concurrent clients at
    least (every server worker and thread has served one before any is measured, as
    in a server that has been up for a while)."""
    parts: dict[str, list[Result]] = {system: [] for system in calls}
    order = list(calls)
    for index in range(rounds):
        share = total // rounds + (1 if index < total % rounds else 0)
        for system in order if index % 2 == 0 else reversed(order):
            call = calls[system]
            warm = max(clients, server_threads)
            measure(system, "warm-up", warm, 2 * warm, call, time_limit=time_limit)
            parts[system].append(
                measure(system, what, clients, share, call, time_limit=time_limit / rounds, meter=meter)
            )
    return [merge(parts[system]) for system in calls]


def expect(response: Response, *codes: int) -> Response:
    if response.status_code not in codes:
        raise RuntimeError(f"{response.method} {response.url} -> {response.status_code}: {response.text[:300]}")
    return response


# --- MLflow's client, a process per client -------------------------------------------

_CLIENT_PIDS: set[int] = set()  # processes that run clients, besides this one


def client_cpu() -> float:
    """CPU seconds the clients have used so far: this process and MLflow's client processes."""
    total = time.process_time()
    for pid in list(_CLIENT_PIDS):
        found = _process_cpu(pid)
        if found is not None:
            total += found[1]
    return total


def _mlflow_client_start(tracking_uri: str, s3_url: str) -> None:
    os.environ.update(FAKE_AWS)
    os.environ["MLFLOW_S3_ENDPOINT_URL"] = s3_url
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # a failure is an error, not a silent retry
    import mlflow
    from mlflow.utils.logging_utils import disable_logging

    quickack.install_for_mlflow()  # as in ModelGate's processes: no delayed-acknowledgement waits
    mlflow.set_tracking_uri(tracking_uri)
    disable_logging()  # MLflow's client prints lines per registration


def _mlflow_register(run_id: str, name: str, tags: dict[str, str]) -> int:
    """``mlflow.register_model("runs:/<run>/model", name)``: how MLflow's own client
    registers a version from a run (the registered model ensured, the run's logged model
    found, the version created and awaited, the logged model tagged with it)."""
    import mlflow

    return int(mlflow.register_model(f"runs:/{run_id}/model", name, tags=tags).version)


def _own_pid(pause: float) -> int:
    time.sleep(pause)  # held long enough that each of the first calls starts a process
    return os.getpid()


class MlflowClients:
    """``count`` processes running MLflow's client, one per client thread: like clients on
    machines of their own, none shares an interpreter lock with another, nor with this
    process's threads. All are started (MLflow imported) before any measurement."""

    def __init__(self, count: int, tracking_uri: str, s3_url: str) -> None:
        self.pool = ProcessPoolExecutor(
            max_workers=count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_mlflow_client_start,
            initargs=(tracking_uri, s3_url),
        )
        started = [self.pool.submit(_own_pid, 1.0) for _ in range(count)]
        self.pids = {future.result(timeout=180) for future in started}
        _CLIENT_PIDS.update(self.pids)

    def register(self, run_id: str, name: str, tags: dict[str, str]) -> int:
        return self.pool.submit(_mlflow_register, run_id, name, tags).result(timeout=300)

    def close(self) -> None:
        _CLIENT_PIDS.difference_update(self.pids)
        self.pool.shutdown(wait=True, cancel_futures=True)


# --- the two systems ------------------------------------------------------------------


@dataclass
class Mlflow:
    url: str

    def api(self, path: str) -> str:
        return f"{self.url}/api/2.0/mlflow/{path}"

    def create_model(self, session: Session, name: str) -> None:
        expect(session.post(self.api("registered-models/create"), json={"name": name}, timeout=30), 200)

    def create_version(self, session: Session, name: str, source: str, tags: dict[str, str]) -> int:
        body = {"name": name, "source": source, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        response = expect(session.post(self.api("model-versions/create"), json=body, timeout=60), 200)
        return int(response.json()["model_version"]["version"])

    def search(self, session: Session, filter_string: str, max_results: int, page_token: str | None = None) -> Response:
        params = {"filter": filter_string, "max_results": max_results, "order_by": "version_number DESC"}
        if page_token:
            params["page_token"] = page_token
        return expect(session.get(self.api("model-versions/search"), params=params, timeout=60), 200)

    def set_alias(self, session: Session, name: str, alias: str, version: int) -> None:
        body = {"name": name, "alias": alias, "version": str(version)}
        expect(session.post(self.api("registered-models/alias"), json=body, timeout=30), 200)

    def alias(self, session: Session, name: str, alias: str) -> Response:
        params = {"name": name, "alias": alias}
        return expect(session.get(self.api("registered-models/alias"), params=params, timeout=30), 200)


@dataclass
class ModelGate:
    url: str
    token: str

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1/{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def create_model(self, session: Session, name: str) -> None:
        body = {"name": name, "team": TEAM, "primary_metric": "f1"}
        expect(session.post(self.api("models/"), json=body, headers=self.headers, timeout=30), 201)

    def register(self, session: Session, name: str, source: str, tags: dict[str, str]) -> int:
        return self._register(session, name, {"source": source, "tags": tags})

    def register_run(self, session: Session, name: str, run_id: str, tags: dict[str, str]) -> int:
        return self._register(session, name, {"run_id": run_id, "tags": tags})

    def _register(self, session: Session, name: str, body: dict[str, Any]) -> int:
        url = self.api(f"models/{name}/versions/")
        response = expect(session.post(url, json=body, headers=self.headers, timeout=120), 201)
        return int(response.json()["version"])

    def versions(
        self, session: Session, name: str, page_size: int, tag: str | None = None, *, cursor: str | None = None
    ) -> Response:
        params: dict[str, Any] = {"page_size": page_size}
        if tag:
            params["tag"] = tag
        if cursor:
            params["cursor"] = cursor
        url = self.api(f"models/{name}/versions/")
        return expect(session.get(url, params=params, headers=self.headers, timeout=60), 200)

    def set_alias(self, session: Session, name: str, alias: str, version: int) -> None:
        url = self.api(f"models/{name}/aliases/{alias}/")
        expect(session.put(url, json={"version": version}, headers=self.headers, timeout=30), 200)

    def alias(self, session: Session, name: str, alias: str) -> Response:
        url = self.api(f"models/{name}/aliases/{alias}/")
        return expect(session.get(url, headers=self.headers, timeout=30), 200)


# --- bringing it up -------------------------------------------------------------------


@dataclass
class Environment:
    s3_url: str
    mlflow: Mlflow
    modelgate: ModelGate
    modelgate_nothing_kept: ModelGate  # the same database, MODELGATE_RENDERED_VERSIONS=0
    modelgate_env: dict[str, str]
    mlflow_db: str
    modelgate_db: str
    source: str


def start_everything(stack: Stack, plan: Plan) -> Environment:
    # moto's S3 server
    s3_port = free_port()
    moto = stack.start(
        "moto", [str(BIN / "moto_server"), "-H", HOST, "-p", str(s3_port)], child_env({"MOTO_CALL_RESET_API": "false"})
    )
    s3_url = f"http://{HOST}:{s3_port}"
    stack.wait_ready("moto", moto, lambda: loopback_session().get(s3_url, timeout=2).status_code < 500, 30)
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    for bucket in (ARTIFACT_BUCKET, MLFLOW_BUCKET):
        s3.create_bucket(Bucket=bucket)
    for relative, data in small_model_files().items():
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"{ARTIFACT_PREFIX}/{relative}", Body=data)
    source = f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_PREFIX}"
    print(f"  moto S3 on {s3_url}; model directory uploaded to {source}", flush=True)

    # mlflow server on its own database
    mlflow_db = stack.create_database("mlflow")
    mlflow_port = free_port()
    mlflow_proc = stack.start(
        "mlflow",
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"postgresql+psycopg://postgres@{PG_HOST_PORT}/{mlflow_db}",
            "--default-artifact-root",
            f"s3://{MLFLOW_BUCKET}/",
            "--no-serve-artifacts",
            "--host",
            HOST,
            "--port",
            str(mlflow_port),
            "--workers",
            str(plan.workers),
            # gunicorn logs no access lines here either: neither server writes one per request.
            "--uvicorn-opts",
            "--no-access-log",
        ],
        # Job execution (huey consumers for GenAI jobs) is not part of the model registry.
        child_env(
            {
                "MLFLOW_S3_ENDPOINT_URL": s3_url,
                "AWS_ENDPOINT_URL": s3_url,
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                # The PostgreSQL server may be shared (max_connections): a bounded pool per
                # worker, enough that 8 clients of MLflow's register_model (which nests
                # a second store session in a request) never wait for a connection.
                "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "4",
                "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "4",
            }
        ),
    )
    mlflow_url = f"http://{HOST}:{mlflow_port}"

    # ModelGate: migrate, token, gunicorn (started while MLflow initialises its schema)
    modelgate_db = stack.create_database("modelgate")
    var_dir = stack.workdir / "modelgate-var"
    var_dir.mkdir()
    modelgate_env = child_env(
        {
            "DATABASE_URL": f"postgres://postgres@{PG_HOST_PORT}/{modelgate_db}",
            "MLFLOW_TRACKING_URI": mlflow_url,
            "AWS_ENDPOINT_URL": s3_url,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "MODELGATE_ARTIFACT_ROOT": f"s3://{ARTIFACT_BUCKET}/artifacts",
            "MODELGATE_VAR_DIR": str(var_dir),
            "MODELGATE_ENV": "development",
            # A failing MLflow call is an error in the results, never a silent retry.
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    python = str(BIN / "python")
    subprocess.run(
        [python, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=modelgate_env,
        check=True,
        stdout=stack.log("migrate").open("w"),
        stderr=subprocess.STDOUT,
    )
    issued = subprocess.run(
        [python, "manage.py", "issue_token", "bench", "--team", TEAM, "--role", "admin"],
        cwd=REPO,
        env=modelgate_env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = issued.stdout.strip().splitlines()[-1].strip()
    modelgate_port = free_port()

    def start_gunicorn(name: str, port: int, extra_env: dict[str, str]) -> subprocess.Popen:
        return stack.start(
            name,
            [
                str(BIN / "gunicorn"),
                "config.wsgi:application",
                "--bind",
                f"{HOST}:{port}",
                "--workers",
                str(plan.workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(plan.threads),
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
            ],
            {**modelgate_env, **extra_env},
        )

    gunicorn = start_gunicorn("gunicorn", modelgate_port, {})
    # The same service keeping no rendered versions: what reads cost when nothing kept helps.
    uncached_port = free_port()
    uncached = start_gunicorn("gunicorn-nothing-kept", uncached_port, {"MODELGATE_RENDERED_VERSIONS": "0"})
    modelgate_url = f"http://{HOST}:{modelgate_port}"

    stack.wait_ready("mlflow", mlflow_proc, lambda: loopback_session().get(f"{mlflow_url}/health", timeout=2).ok, 180)
    print(f"  mlflow server {mlflow_url} ({plan.workers} workers, database {mlflow_db})", flush=True)
    stack.wait_ready(
        "gunicorn", gunicorn, lambda: loopback_session().get(f"{modelgate_url}/api/v1/health", timeout=5).ok, 60
    )
    uncached_url = f"http://{HOST}:{uncached_port}"
    stack.wait_ready(
        "gunicorn-nothing-kept",
        uncached,
        lambda: loopback_session().get(f"{uncached_url}/api/v1/health", timeout=5).ok,
        60,
    )
    print(
        f"  ModelGate {modelgate_url} (gunicorn, {plan.workers} gthread workers x {plan.threads} threads, "
        f"database {modelgate_db})",
        flush=True,
    )
    return Environment(
        s3_url,
        Mlflow(mlflow_url),
        ModelGate(modelgate_url, token),
        ModelGate(uncached_url, token),
        modelgate_env,
        mlflow_db,
        modelgate_db,
        source,
    )


# --- seeding --------------------------------------------------------------------------


def log_runs(env: Environment, count: int) -> list[str]:
    """``count`` MLflow runs as a data scientist logs them: a scikit-learn classifier
    trained on the breast cancer dataset, its metrics, and the model logged with
    ``mlflow.sklearn.log_model`` (an MLflow 3 logged model, artifacts on the moto S3)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from mlflow.utils.logging_utils import disable_logging
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, roc_auc_score

    os.environ["MLFLOW_S3_ENDPOINT_URL"] = env.s3_url
    mlflow.set_tracking_uri(env.mlflow.url)
    quickack.install_for_mlflow()  # as in ModelGate's processes: no delayed-acknowledgement waits
    mlflow.set_experiment(RUN_EXPERIMENT)
    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    started = time.perf_counter()
    run_ids = []
    for index in range(count):
        classifier = LogisticRegression(C=0.5 + index / count, max_iter=5000).fit(features, labels)
        predicted = classifier.predict(features)
        with mlflow.start_run() as run:
            mlflow.log_metrics(
                {
                    "f1": f1_score(labels, predicted),
                    "roc_auc": roc_auc_score(labels, classifier.predict_proba(features)[:, 1]),
                }
            )
            mlflow.sklearn.log_model(
                classifier,
                name="model",
                signature=infer_signature(features.head(5), predicted[:5]),
                pip_requirements=["scikit-learn", "mlflow"],
            )
        run_ids.append(run.info.run_id)
    disable_logging()  # MLflow's client prints lines per registration (log_model re-enables them)
    print(f"  {count} runs logged with mlflow.sklearn.log_model in {time.perf_counter() - started:.0f}s", flush=True)
    return run_ids


def seed_mlflow(env: Environment, plan: Plan) -> dict[int, str]:
    """``plan.versions`` versions of SEARCH_MODEL through MLflow's REST API, in threads.

    Returns ``{version number: team tag}`` so that ModelGate's rows carry the same tags.
    """
    with loopback_session() as session:
        env.mlflow.create_model(session, SEARCH_MODEL)
    lock = threading.Lock()
    next_index = 0
    tags_by_version: dict[int, str] = {}
    failures: list[str] = []
    started = time.perf_counter()
    step = max(1, plan.versions // 10)

    def worker() -> None:
        nonlocal next_index
        with loopback_session() as session:
            while True:
                with lock:
                    if next_index >= plan.versions or len(failures) > 20:
                        return
                    index = next_index
                    next_index += 1
                team = f"team-{index % plan.teams}"
                for attempt in range(5):
                    try:
                        number = env.mlflow.create_version(
                            session, SEARCH_MODEL, env.source, {TAG_KEY: team, "framework": "sklearn"}
                        )
                        break
                    except (RuntimeError, OSError, http.client.HTTPException) as exc:
                        # Concurrent creates can collide on the next version number.
                        if attempt == 4:
                            with lock:
                                failures.append(str(exc))
                            return
                        time.sleep(0.05 * (attempt + 1))
                with lock:
                    tags_by_version[number] = team
                    done = len(tags_by_version)
                if done % step == 0:
                    rate = done / (time.perf_counter() - started)
                    print(f"    MLflow: {done:,}/{plan.versions:,} versions ({rate:,.0f}/s)", flush=True)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(plan.seed_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"seeding MLflow failed {len(failures)} times; first: {failures[0]}")
    elapsed = time.perf_counter() - started
    print(
        f"  MLflow: {len(tags_by_version):,} versions created through its REST API in {elapsed:.0f}s "
        f"({len(tags_by_version) / elapsed:,.0f}/s, {plan.seed_threads} threads)",
        flush=True,
    )
    return tags_by_version


def seed_modelgate(env: Environment, tags_by_version: dict[int, str]) -> dict[str, Any]:
    """ModelGate's rows for the same versions, inserted in bulk with the ORM.

    Each row is what ``POST /models/{name}/versions/`` writes for this source: the
    artifact's manifest, digest, size and signature computed by the same code
    (``registry.services._artifact_facts``), the same tags, created_by; plus two metric
    values with source ``run``, as a version registered from a run carries them.
    """
    os.environ.update({k: v for k, v in env.modelgate_env.items() if k not in _PROXY_VARS})
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections, transaction
    from django.utils import timezone

    from registry.choices import MetricSource
    from registry.models import ModelVersion, RegisteredModel, VersionMetric, VersionTag
    from registry.services import _artifact_facts

    started = time.perf_counter()
    facts = _artifact_facts(env.source)
    model = RegisteredModel.objects.get(name=SEARCH_MODEL)
    user = get_user_model().objects.get(username="bench")
    rng = random.Random(11)
    numbers = sorted(tags_by_version)
    batch = 2000
    try:
        for offset in range(0, len(numbers), batch):
            chunk = numbers[offset : offset + batch]
            with transaction.atomic():
                now = timezone.now()
                rows = ModelVersion.objects.bulk_create(
                    ModelVersion(
                        model=model,
                        version=number,
                        source=env.source,
                        run_id="",
                        artifact_uri=facts.uri,
                        digest=facts.digest,
                        size_bytes=facts.size,
                        manifest=facts.manifest,
                        signature=facts.signature,
                        description="",
                        created_by=user,
                    )
                    for number in chunk
                )
                VersionTag.objects.bulk_create(
                    VersionTag(version=row, key=key, value=value)
                    for row in rows
                    for key, value in ((TAG_KEY, tags_by_version[row.version]), ("framework", "sklearn"))
                )
                VersionMetric.objects.bulk_create(
                    VersionMetric(
                        version=row,
                        name=name,
                        value=round(rng.uniform(0.7, 0.99), 4),
                        source=MetricSource.RUN,
                        recorded_at=now,
                    )
                    for row in rows
                    for name in ("f1", "roc_auc")
                )
    finally:
        connections.close_all()
    elapsed = time.perf_counter() - started
    print(f"  ModelGate: {len(numbers):,} version rows (+ tags, metrics) bulk-inserted in {elapsed:.1f}s", flush=True)
    return {"digest": facts.digest, "files": len(facts.manifest), "size": facts.size}


def analyze(*databases: str) -> None:
    """Fresh planner statistics on both databases after the bulk load (same for both)."""
    for database in databases:
        with psycopg.connect(f"postgresql://postgres@{PG_HOST_PORT}/{database}", autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


# --- checks that both sides answer the same question -------------------------------------


def tag_search(team: str) -> str:
    """MLflow's filter for the versions of the search model with that team tag (the same
    question as ModelGate's ``/models/{name}/versions/?tag=``)."""
    return f"name='{SEARCH_MODEL}' AND tag.{TAG_KEY}='{team}'"


@dataclass
class Pages:
    """How each system names the first ``SEARCHED_PAGES`` pages of the search by name:
    ``None`` for the first, then MLflow's ``page_token`` / ModelGate's ``cursor``."""

    mlflow: list[str | None]
    modelgate: list[str | None]


SEARCHED_PAGES = 10


def check_same_answers(env: Environment, plan: Plan, alias_version: int) -> tuple[list[str], Pages]:
    """Both systems answer every question the reads ask with the same versions in the same
    order: each of the first pages by name, the first page of each tag value, the alias."""
    notes = []
    pages = Pages([None], [None])
    with loopback_session() as session:
        seen: list[int] = []
        for index in range(SEARCHED_PAGES):
            ml_body = env.mlflow.search(session, f"name='{SEARCH_MODEL}'", plan.page_size, pages.mlflow[-1]).json()
            mg_body = env.modelgate.versions(session, SEARCH_MODEL, plan.page_size, cursor=pages.modelgate[-1]).json()
            ml_numbers = [int(v["version"]) for v in ml_body["model_versions"]]
            mg_numbers = [v["version"] for v in mg_body["results"]]
            if ml_numbers != mg_numbers or len(ml_numbers) != plan.page_size:
                raise RuntimeError(
                    f"by name, page {index + 1}: MLflow {ml_numbers[:5]}... vs ModelGate {mg_numbers[:5]}..."
                )
            seen.extend(ml_numbers)
            if index + 1 < SEARCHED_PAGES:
                if not ml_body.get("next_page_token") or not mg_body.get("next"):
                    break
                pages.mlflow.append(ml_body["next_page_token"])
                pages.modelgate.append(parse_qs(urlsplit(mg_body["next"]).query)["cursor"][0])
        if seen != sorted(seen, reverse=True) or len(set(seen)) != len(seen):
            raise RuntimeError("by name: the pages overlap or are out of order")
        notes.append(
            f"by name: both return the same {len(pages.mlflow)} pages of {plan.page_size}, versions {seen[0]}..{seen[-1]}"
        )

        for team in (f"team-{n}" for n in range(plan.teams)):
            ml_page = env.mlflow.search(session, tag_search(team), plan.page_size).json()["model_versions"]
            mg_page = env.modelgate.versions(session, SEARCH_MODEL, plan.page_size, f"{TAG_KEY}:{team}").json()
            ml_numbers = [int(v["version"]) for v in ml_page]
            mg_numbers = [v["version"] for v in mg_page["results"]]
            if ml_numbers != mg_numbers or len(ml_numbers) != plan.page_size:
                raise RuntimeError(f"by tag {team}: MLflow {ml_numbers[:5]}... vs ModelGate {mg_numbers[:5]}...")
            if any(v["tags"].get(TAG_KEY) != team for v in mg_page["results"]):
                raise RuntimeError(f"by tag {team}: ModelGate returned a version without the tag")
        notes.append(f"by tag: both return the same first page of {plan.page_size} for each of {plan.teams} values")

        ml_alias = int(env.mlflow.alias(session, SEARCH_MODEL, ALIAS).json()["model_version"]["version"])
        mg_alias = env.modelgate.alias(session, SEARCH_MODEL, ALIAS).json()["version"]
        if not ml_alias == mg_alias == alias_version:
            raise RuntimeError(f"alias: MLflow {ml_alias}, ModelGate {mg_alias}, expected {alias_version}")
        notes.append(f"alias {ALIAS!r}: both resolve to version {alias_version}")
    return notes, pages


# --- reporting ------------------------------------------------------------------------


def machine_lines(plan: Plan, env: Environment | None, load_at_start: float) -> list[str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    with psycopg.connect(PG_ADMIN) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        shared_buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
    import django
    import mlflow.version

    return [
        f"machine   : {os.cpu_count()} cores ({cpu}), {memory} RAM, {platform.system()} {platform.release()}; "
        f"load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        f"database  : PostgreSQL {pg_version} on {PG_HOST_PORT} (shared_buffers {shared_buffers}); "
        f"fresh databases {env.mlflow_db if env else '?'} (MLflow) and {env.modelgate_db if env else '?'} (ModelGate)",
        f"software  : Python {platform.python_version()}, MLflow {mlflow.version.VERSION} (mlflow server, uvicorn, "
        f"{plan.workers} workers, job execution off, SQLAlchemy pool 4+4 per store), Django {django.get_version()} under gunicorn "
        f"({plan.workers} gthread workers x {plan.threads} threads; for the 'nothing kept' rows a second one "
        "like it with MODELGATE_RENDERED_VERSIONS=0)",
        f"versions  : {plan.versions:,} of one model, tag {TAG_KEY} over {plan.teams} values "
        f"({plan.versions // plan.teams:,} versions each); page size {plan.page_size}; request i asks for page "
        f"i mod {SEARCHED_PAGES} by name, and for the first page of value i mod {plan.teams} by tag",
        f"clients   : 1 and {plan.clients} client threads in this process (a kept-alive http.client connection each); "
        f"MLflow's client (mlflow.register_model) in {plan.clients} processes of its own; "
        f"at most {plan.time_limit:.0f}s per measurement",
    ]


def table(results: list[Result]) -> list[str]:
    header = (
        f"{'measurement':<30} {'system':<10} {'clients':>7} {'done':>9} {'errors':>6} "
        f"{'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        done = f"{r.ok}/{r.planned}" + ("*" if r.timed_out else "")
        lines.append(
            f"{r.what:<30} {r.system:<10} {r.clients:>7} {done:>9} {r.errors:>6} "
            f"{r.rate:>9.1f} {r.pct(50):>8.1f} {r.pct(95):>8.1f} {r.pct(99):>8.1f} {r.cpu_per_request:>10.1f}"
        )
    return lines


# What each measurement is held to: (kind, factor, clients it applies to); None = shown
# for information only.
TARGETS: dict[str, tuple[str, float] | None] = {
    # MLflow's own registration of a version from a run (mlflow.register_model) against
    # ModelGate's: the same input, a registered version as the result.
    "register from run": ("latency", TARGET_REGISTRATION_LATENCY),
    # MLflow's create call records a pointer and reads nothing; ModelGate's registration
    # makes that same call and reads and digests the artifact besides. Judged against the
    # same bound and shown, apart from OVERALL: no registration that makes this call and
    # reads the artifact can meet it (README, "Registration from a source").
    "register from source": ("latency, reference", TARGET_REGISTRATION_LATENCY),
    "search by name": ("throughput", TARGET_READ_SPEEDUP),
    "search by tag": ("throughput", TARGET_READ_SPEEDUP),
    # The same reads from ModelGate processes that keep no rendered version (every page
    # built anew), for information: what the reads cost before anything is kept.
    "by name, nothing kept": None,
    "by tag, nothing kept": None,
    "alias, nothing kept": None,
    "resolve alias": ("throughput", TARGET_READ_SPEEDUP),
}


def verdicts(results: list[Result], plan: Plan) -> tuple[list[str], bool]:
    by_key = {(r.system, r.what, r.clients): r for r in results}
    lines = [
        f"{'ratio ModelGate/MLflow':<24} {'clients':>7} {'throughput':>11} {'p50':>7} {'p95':>7} {'CPU/req':>8}   target",
        "-" * 100,
    ]
    all_pass = True
    for what, target_of in TARGETS.items():
        for clients in (1, plan.clients):
            mg = by_key.get(("ModelGate", what, clients))
            ml = by_key.get(("MLflow", what, clients))
            if mg is None or ml is None:
                continue
            tput = mg.rate / ml.rate if ml.rate else float("nan")
            p50 = mg.pct(50) / ml.pct(50)
            p95 = mg.pct(95) / ml.pct(95)
            # An error or a measurement cut short on either side makes the comparison void:
            # the figures of the other side would then be set against a partial run.
            broken = mg.errors > 0 or ml.errors > 0 or mg.timed_out or ml.timed_out or ml.ok == 0
            passed: bool | None = None
            target = "(for information)"
            if target_of is not None and target_of[0].startswith("latency"):
                passed = p50 <= target_of[1] and p95 <= target_of[1] and not broken
                target = f"latency p50 and p95 <= {target_of[1]}x"
                if target_of[0].endswith("reference"):
                    lines.append(
                        f"{what:<24} {clients:>7} {tput:>10.2f}x {p50:>6.2f}x {p95:>6.2f}x "
                        f"{mg.cpu_per_request / ml.cpu_per_request:>7.2f}x   {target + ' (reference)':<34} "
                        f"{'PASS' if passed else 'FAIL'} (not in OVERALL)"
                    )
                    continue
            elif target_of is not None and clients == plan.clients:
                passed = tput >= target_of[1] and not broken
                target = f"throughput >= {target_of[1]:.0f}x"
            mark = "" if passed is None else ("PASS" if passed else "FAIL")
            if passed is False:
                all_pass = False
            cpu = mg.cpu_per_request / ml.cpu_per_request if ml.cpu_per_request else float("nan")
            lines.append(
                f"{what:<24} {clients:>7} {tput:>10.2f}x {p50:>6.2f}x {p95:>6.2f}x {cpu:>7.2f}x   {target:<34} {mark}"
            )
    return lines, all_pass


# --- the run --------------------------------------------------------------------------


def run(plan: Plan, stack: Stack) -> bool:
    load_at_start = os.getloadavg()[0]
    print(f"starting services (all on 127.0.0.1; load average {load_at_start:.1f}) ...", flush=True)
    env = start_everything(stack, plan)
    meter = CpuMeter(stack)
    stack.closers.append(meter.close)
    results: list[Result] = []
    source = env.source
    reg_tags = {"framework": "sklearn", "purpose": "bench"}

    with loopback_session() as session:
        env.mlflow.create_model(session, REG_MODEL_MLFLOW)
        env.modelgate.create_model(session, REG_MODEL_MODELGATE)
        env.modelgate.create_model(session, SEARCH_MODEL)
        # One of each first: server workers import lazily, the first call is not typical.
        env.mlflow.create_version(session, REG_MODEL_MLFLOW, source, reg_tags)
        registered = env.modelgate.register(session, REG_MODEL_MODELGATE, source, reg_tags)
        registered_digest = (
            expect(
                session.get(
                    env.modelgate.api(f"models/{REG_MODEL_MODELGATE}/versions/{registered}/"),
                    headers=env.modelgate.headers,
                    timeout=30,
                ),
                200,
            )
            .json()
            .get("digest")
        )

    print("\n[1] registration from a source on S3", flush=True)
    registration_calls: dict[str, Call] = {
        "MLflow": lambda s, i: env.mlflow.create_version(s, REG_MODEL_MLFLOW, source, reg_tags),
        "ModelGate": lambda s, i: env.modelgate.register(s, REG_MODEL_MODELGATE, source, reg_tags),
    }

    def measured(what: str, totals: tuple[int, int], calls: dict[str, Call]) -> None:
        """Both systems at 1 and at ``plan.clients`` clients, printed as they finish."""
        for clients, total in zip((1, plan.clients), totals, strict=True):
            for result in compare(
                what,
                clients,
                total,
                calls,
                time_limit=plan.time_limit,
                meter=meter,
                server_threads=plan.workers * plan.threads,
            ):
                results.append(result)
                print("   ", table([result])[-1], flush=True)

    measured("register from source", plan.register_requests, registration_calls)

    print("\n[2] registration from a run", flush=True)
    run_ids = log_runs(env, plan.runs)
    with loopback_session() as session:
        env.modelgate.create_model(session, RUN_MODEL_MODELGATE)
    run_tags = {"framework": "sklearn", "purpose": "bench"}
    mlflow_clients = MlflowClients(plan.clients, env.mlflow.url, env.s3_url)
    stack.closers.append(mlflow_clients.close)
    print(f"  MLflow's client started in {len(mlflow_clients.pids)} processes", flush=True)
    measured(
        "register from run",
        plan.register_requests,
        {
            "MLflow": lambda s, i: mlflow_clients.register(run_ids[i % len(run_ids)], RUN_MODEL_MLFLOW, run_tags),
            "ModelGate": lambda s, i: env.modelgate.register_run(
                s, RUN_MODEL_MODELGATE, run_ids[i % len(run_ids)], run_tags
            ),
        },
    )

    print(f"\n[3] seeding {plan.versions:,} versions of {SEARCH_MODEL!r}", flush=True)
    tags_by_version = seed_mlflow(env, plan)
    seeded = seed_modelgate(env, tags_by_version)
    if seeded["digest"] != registered_digest:
        raise RuntimeError(f"bulk rows digest {seeded['digest']} != registered digest {registered_digest}")
    print(
        f"  the bulk rows carry the digest that registration through the API recorded for the same source "
        f"({seeded['digest'][:16]}..., {seeded['files']} files, {seeded['size']:,} bytes)",
        flush=True,
    )
    alias_version = max(tags_by_version) // 2 or 1
    with loopback_session() as session:
        # ModelGate sets the alias in its own table and in MLflow (the same registered model).
        env.modelgate.set_alias(session, SEARCH_MODEL, ALIAS, alias_version)
    analyze(env.mlflow_db, env.modelgate_db)
    print("  VACUUM ANALYZE on both databases", flush=True)
    notes, pages = check_same_answers(env, plan, alias_version)
    for note in notes:
        print(f"  same answer - {note}", flush=True)

    name_filter = f"name='{SEARCH_MODEL}'"
    teams = [f"team-{n}" for n in range(plan.teams)]

    def reads_of(modelgate: ModelGate, names: tuple[str, str, str]) -> list[tuple[str, tuple[int, int], Call, Call]]:
        """The three reads against ``modelgate``: by name (page i mod 10), by tag (value i
        mod 10), the alias; MLflow asked the same each time."""
        by_name, by_tag, alias = names
        return [
            (
                by_name,
                plan.search_requests,
                lambda s, i: env.mlflow.search(s, name_filter, plan.page_size, pages.mlflow[i % len(pages.mlflow)]),
                lambda s, i: modelgate.versions(
                    s, SEARCH_MODEL, plan.page_size, cursor=pages.modelgate[i % len(pages.modelgate)]
                ),
            ),
            (
                by_tag,
                plan.search_requests,
                lambda s, i: env.mlflow.search(s, tag_search(teams[i % len(teams)]), plan.page_size),
                lambda s, i: modelgate.versions(s, SEARCH_MODEL, plan.page_size, f"{TAG_KEY}:{teams[i % len(teams)]}"),
            ),
            (
                alias,
                plan.alias_requests,
                lambda s, i: env.mlflow.alias(s, SEARCH_MODEL, ALIAS),
                lambda s, i: modelgate.alias(s, SEARCH_MODEL, ALIAS),
            ),
        ]

    reads = reads_of(env.modelgate, ("search by name", "search by tag", "resolve alias")) + reads_of(
        env.modelgate_nothing_kept, ("by name, nothing kept", "by tag, nothing kept", "alias, nothing kept")
    )
    print(f"\n[4] reads at {plan.versions:,} versions", flush=True)
    for what, totals, mlflow_call, modelgate_call in reads:
        measured(what, totals, {"MLflow": mlflow_call, "ModelGate": modelgate_call})

    print("\n" + "=" * 100)
    print("ModelGate vs MLflow - registry benchmark")
    print("=" * 100)
    for line in machine_lines(plan, env, load_at_start):
        print(line)
    print(
        f"seeding   : MLflow versions created through its REST API ({plan.seed_threads} threads); ModelGate's rows "
        "for the same versions bulk-inserted with the ORM, as registration writes them (manifest, digest, "
        "signature, tags; plus 2 run metrics each)"
    )
    print(
        "compared  : registration from a source: MLflow model-versions/create vs ModelGate POST "
        "/models/{name}/versions/ {source}; from a run: mlflow.register_model('runs:/<run>/model') vs ModelGate POST "
        "{run_id}; search: MLflow model-versions/search max_results=page size, order_by version_number DESC vs ModelGate "
        "GET /models/{name}/versions/?page_size= (newest first); MLflow registered-models/alias vs "
        "ModelGate GET /models/{name}/aliases/{alias}/"
    )
    print(
        "method    : each measurement = its requests in 3 alternating rounds (MLflow then ModelGate, then the other "
        "way round, ...), each after an uncounted warm-up (2 calls on each of workers x threads concurrent clients); latency = request sent to body read; req/s = requests / "
        "summed wall time of the rounds; CPU ms/req = user+system CPU of every process this run started (moto, "
        "mlflow server, gunicorn) and of the PostgreSQL backends of both databases during the rounds, per request "
        "(ModelGate's registration includes the MLflow and S3 work it causes)"
    )
    print()
    for line in table(results):
        print(line)
    print("(* = stopped by the time limit before all requests were made)")
    print()
    print(
        "CPU ms per request, by process (where the work of a request is done), and the clients' own (not in the table):"
    )
    for r in results:
        if r.ok:
            parts = ", ".join(f"{name} {cpu / r.ok * 1000:.1f}" for name, cpu in sorted(r.cpu_parts.items()) if cpu > 0)
            print(
                f"  {r.what:<20} {r.system:<10} {r.clients} client(s): {parts}; clients {r.client_cpu / r.ok * 1000:.1f}"
            )
    print()
    lines, all_pass = verdicts(results, plan)
    for line in lines:
        print(line)
    for r in results:
        if r.first_error:
            print(f"first error, {r.system} {r.what} ({r.clients} clients): {r.first_error}")
    print()
    print(
        f"OVERALL: {'PASS' if all_pass else 'FAIL'} (registration judged against MLflow's registration from a run, "
        "mlflow.register_model; against MLflow's bare create call see the reference rows above)"
    )
    return all_pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=None, help="versions to seed (default 20,000; 2,000 --quick)")
    parser.add_argument("--quick", action="store_true", help="2,000 versions and fewer requests, for a fast check")
    parser.add_argument("--workers", type=int, default=4, help="server processes for each system (default 4)")
    parser.add_argument(
        "--threads", type=int, default=2, help="threads per gunicorn worker, a database connection each (default 2)"
    )
    parser.add_argument("--clients", type=int, default=8, help="client threads of the concurrent runs (default 8)")
    parser.add_argument("--page-size", type=int, default=100, help="search page size (default 100)")
    parser.add_argument("--seed-threads", type=int, default=8, help="threads creating MLflow versions (default 8)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs (path printed at the end)")
    args = parser.parse_args()
    plan = plan_from(args)
    if plan.versions < plan.page_size * plan.teams:
        parser.error(f"--versions must be at least {plan.page_size * plan.teams} (a full page for the tag search)")
    os.environ.update(FAKE_AWS)
    for name in _PROXY_VARS:
        os.environ.pop(name, None)

    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))
    stack = Stack(workdir)
    started = time.perf_counter()
    failed = True
    try:
        passed = run(plan, stack)
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
        if failed or args.keep_logs:
            print(f"service logs kept in {workdir}", flush=True)
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        print(f"stopped everything started, dropped its databases ({time.perf_counter() - started:.0f}s in all)")


if __name__ == "__main__":
    sys.exit(main())
