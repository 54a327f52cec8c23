"""Real replicas for the gateway: MLflow's own scoring servers, started once for the run.

Two versions of an iris classifier are saved with ``mlflow.sklearn.save_model`` (v1 a
logistic regression, v2 a one-split decision stump, so their answers differ on
virginica flowers) and served by MLflow's scoring server (the uvicorn app that
``mlflow models serve --env-manager local`` starts; run directly, it is one process to
kill and starts without the CLI's second interpreter). The gateway runs under a real
uvicorn on a free port, in a thread of the test process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from serving.app import create_app
from serving.route_table import RouteTableSource, StaticSource, static_source
from serving.settings import GatewaySettings
from serving.tokens import Principal, TokenAuthenticator, TokenRefused
from tests.conftest import free_port, wait_until

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.3, 3.3, 6.0, 2.5]
# v1 (logistic regression) tells virginica apart; v2 (a stump on one petal split) cannot.
V1_ANSWER_FOR_VIRGINICA = 2
V2_ANSWER_FOR_VIRGINICA = 1

PR_SET_PDEATHSIG = 1

SERVE_TOKEN = "serve-token"
READ_TOKEN = "read-token"


def split_payload(rows: list[list[float]]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": COLUMNS, "data": rows}}


@dataclass
class Replica:
    """One MLflow scoring server process."""

    name: str
    version: int
    url: str
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL, as a crashed host would: no graceful shutdown, connections dropped."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Replicas:
    """MLflow scoring servers by name, started when a test first asks for them (those
    asked for together start at once) and kept for the rest of the run."""

    PLAN: dict[str, int] = {"v1a": 1, "v1b": 1, "v1-doomed": 1, "v2": 2}

    def __init__(self, root: Path) -> None:
        self._root = root
        self._models: dict[int, Path] = {}
        self._signature: dict[str, Any] = {}
        self.by_name: dict[str, Replica] = {}
        self.start_seconds: list[float] = []

    @property
    def signature(self) -> dict[str, Any]:
        """The models' input signature, as a route of the table carries it."""
        self._save()
        return self._signature

    def _save(self) -> None:
        if not self._models:
            v1, v2, self._signature = _save_models(self._root)
            self._models = {1: v1, 2: v2}

    def require(self, *names: str) -> list[Replica]:
        missing = [name for name in names if name not in self.by_name]
        if missing:
            self._save()
            started = time.monotonic()
            fresh = [
                _start_replica(name, self.PLAN[name], self._models[self.PLAN[name]], self._root) for name in missing
            ]
            self.by_name.update((replica.name, replica) for replica in fresh)
            for replica in fresh:
                wait_until(
                    lambda r=replica: requests.get(f"{r.url}/ping", timeout=2).ok,
                    timeout=120,
                    what=f"MLflow scoring server {replica.name}",
                    process=replica.process,
                    log=replica.log,
                )
            self.start_seconds.append(time.monotonic() - started)
        return [self.by_name[name] for name in names]

    def __getitem__(self, name: str) -> Replica:
        return self.require(name)[0]

    def stop(self) -> None:
        for replica in self.by_name.values():
            replica.stop()


def _save_models(root: Path) -> tuple[Path, Path, dict[str, Any]]:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    features, target = load_iris(return_X_y=True, as_frame=True)
    signature = infer_signature(features, target)
    paths = []
    for name, estimator in (
        ("v1", LogisticRegression(max_iter=1000)),
        ("v2", DecisionTreeClassifier(max_depth=1, random_state=0)),
    ):
        path = root / name
        # Requirements given and cloudpickle chosen: inferring requirements and importing
        # skops (which imports torch) would add seconds to the save and to each replica's
        # start without changing what is served.
        mlflow.sklearn.save_model(
            estimator.fit(features, target),
            str(path),
            signature=signature,
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
        paths.append(path)
    return paths[0], paths[1], {"inputs": signature.inputs.to_dict()}


def _die_with_parent() -> None:
    """In the replica, before it runs: a test run killed before its teardown (Ctrl-C
    twice, a crashed worker) takes its replicas with it on Linux."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _start_replica(name: str, version: int, model_path: Path, logs: Path) -> Replica:
    from mlflow.pyfunc import scoring_server

    port = free_port()
    log = logs / f"replica-{name}.log"
    env = {
        **os.environ,
        scoring_server._SERVER_MODEL_PATH: str(model_path),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "mlflow.pyfunc.scoring_server.app:app",
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    return Replica(name, version, f"http://127.0.0.1:{port}", process, log)


@pytest.fixture(scope="session")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """v1 on up to three servers (``v1a``, ``v1b``, and ``v1-doomed`` for the test that
    kills one) and v2 on one; each starts when a test first needs it."""
    pool = Replicas(tmp_path_factory.mktemp("serving-models"))
    try:
        yield pool
    finally:
        pool.stop()


# --- route tables -----------------------------------------------------------------


def route(
    version: int, weight: float, mode: str, replicas: list[Replica | str], signature: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A route of the published document; a replica given as a URL is one nothing serves."""
    entries = []
    for index, replica in enumerate(replicas):
        url = replica if isinstance(replica, str) else replica.url
        entries.append({"id": version * 100 + index, "url": url, "healthy": True})
    return {"version": version, "weight": weight, "mode": mode, "signature": signature, "replicas": entries}


def table(revision: int, *routes: dict[str, Any], cache: bool = False, model: str = "iris") -> dict[str, Any]:
    return {
        "revision": revision,
        "published_at": "2026-12-03T08:00:00+00:00",
        "deployments": [
            {
                "id": 7,
                "model": model,
                "name": "production",
                "default": True,
                "state": "ready",
                "cache": cache,
                "routes": list(routes),
            }
        ],
    }


def dead_url() -> str:
    """A loopback URL on a port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


# --- the gateway under uvicorn --------------------------------------------------


async def fake_authenticator(plaintext: str) -> Principal:
    """Two known tokens; the real registry check is exercised in test_auth.py."""
    if plaintext == SERVE_TOKEN:
        return Principal("serve", 1, frozenset({"serve"}))
    if plaintext == READ_TOKEN:
        return Principal("read", 1, frozenset({"read"}))
    raise TokenRefused("invalid token")


@dataclass
class GatewayServer:
    """The gateway app under a real uvicorn, in a thread of the test process."""

    url: str
    source: StaticSource | RouteTableSource
    app: Any
    server: uvicorn.Server
    thread: threading.Thread
    predictions: list[Any] = field(default_factory=list)

    @property
    def gateway(self):
        return self.app.state.gateway

    def invocations(self, model: str = "iris") -> str:
        return f"{self.url}/serve/{model}/invocations"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "the gateway did not stop"


def start_gateway(
    document: Mapping[str, Any] | None,
    *,
    authenticator: TokenAuthenticator = fake_authenticator,
    settings: GatewaySettings | None = None,
    source: RouteTableSource | None = None,
    on_prediction: Any = None,
) -> GatewayServer:
    """A gateway serving ``document`` (a ``StaticSource`` the test may publish to), or
    following ``source`` when one is given; calls are handed to ``on_prediction`` (by
    default kept in ``predictions``)."""
    source = source or static_source(document)
    predictions: list[Any] = []
    app = create_app(
        source=source,
        authenticator=authenticator,
        settings=settings or GatewaySettings(refresh_seconds=0.2),
        on_prediction=on_prediction or predictions.append,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name=f"gateway-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    return GatewayServer(f"http://127.0.0.1:{port}", source, app, server, thread, predictions)


@pytest.fixture
def gateway_factory() -> Iterator[Any]:
    """Starts gateways for one test and stops them after it."""
    started: list[GatewayServer] = []

    def start(document: Mapping[str, Any] | None, **options: Any) -> GatewayServer:
        server = start_gateway(document, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
