"""The two systems ``registry_vs_mlflow.py`` compares: how it starts them and calls them.

``start_systems`` brings up, on 127.0.0.1 on a harness ``Stack``: moto's S3 server with
the model directory both systems register, ``mlflow server`` on a fresh PostgreSQL
database, and ModelGate under gunicorn on another (twice: once as configured, once
keeping no rendered version). ``Mlflow`` and ``ModelGate`` are the REST calls the
benchmark makes to each; ``MlflowClients`` runs MLflow's own client
(``mlflow.register_model``) in processes of its own.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3

from bench.harness.client import Response, Session, expect, status_of
from bench.harness.processes import BIN, HOST, ISOLATED_ENV, PG_HOST_PORT, REPO, Stack, child_env, free_port
from registry import quickack  # no Django in it

ARTIFACT_BUCKET = "modelgate-bench"
MLFLOW_BUCKET = "mlflow-artifacts"
ARTIFACT_PREFIX = "sources/model-small"
TEAM = "bench"


@dataclass
class Mlflow:
    """The MLflow tracking server's REST API."""

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
    """ModelGate's REST API, with the benchmark's token."""

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

    def version(self, session: Session, name: str, number: int) -> dict[str, Any]:
        url = self.api(f"models/{name}/versions/{number}/")
        return expect(session.get(url, headers=self.headers, timeout=30), 200).json()

    def versions(
        self,
        session: Session,
        name: str,
        page_size: int,
        tag: str | None = None,
        *,
        cursor: str | None = None,
        metric: str | None = None,
    ) -> Response:
        params: dict[str, Any] = {"page_size": page_size}
        if tag:
            params["tag"] = tag
        if metric:
            params["metric"] = metric
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


@dataclass
class Systems:
    """What ``start_systems`` brought up."""

    s3_url: str
    mlflow: Mlflow
    modelgate: ModelGate
    modelgate_nothing_kept: ModelGate  # the same database, MODELGATE_RENDERED_VERSIONS=0
    modelgate_env: dict[str, str]
    mlflow_db: str
    modelgate_db: str
    source: str  # the model directory on S3


def start_systems(stack: Stack, *, workers: int, threads: int, model_files: dict[str, bytes]) -> Systems:
    """moto's S3 holding ``model_files``, ``mlflow server`` and ModelGate's gunicorns, ready."""
    s3_port = free_port()
    moto = stack.start(
        "moto", [str(BIN / "moto_server"), "-H", HOST, "-p", str(s3_port)], child_env({"MOTO_CALL_RESET_API": "false"})
    )
    s3_url = f"http://{HOST}:{s3_port}"
    stack.wait_ready("moto", moto, lambda: status_of(s3_url, timeout=2) < 500, 30)
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    for bucket in (ARTIFACT_BUCKET, MLFLOW_BUCKET):
        s3.create_bucket(Bucket=bucket)
    for relative, data in model_files.items():
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=f"{ARTIFACT_PREFIX}/{relative}", Body=data)
    source = f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_PREFIX}"
    print(f"  moto S3 on {s3_url}; model directory uploaded to {source}", flush=True)

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
            str(workers),
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
    with stack.log("migrate").open("w") as log:
        subprocess.run(
            [python, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO,
            env=modelgate_env,
            check=True,
            stdout=log,
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

    def start_gunicorn(name: str, port: int, extra_env: dict[str, str]) -> subprocess.Popen:
        return stack.start(
            name,
            [
                str(BIN / "gunicorn"),
                "config.wsgi:application",
                "--bind",
                f"{HOST}:{port}",
                "--workers",
                str(workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(threads),
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
            ],
            {**modelgate_env, **extra_env},
        )

    modelgate_port = free_port()
    gunicorn = start_gunicorn("gunicorn", modelgate_port, {})
    # The same service keeping no rendered versions: what reads cost when nothing kept helps.
    uncached_port = free_port()
    uncached = start_gunicorn("gunicorn-nothing-kept", uncached_port, {"MODELGATE_RENDERED_VERSIONS": "0"})
    modelgate_url = f"http://{HOST}:{modelgate_port}"
    uncached_url = f"http://{HOST}:{uncached_port}"

    stack.wait_ready("mlflow", mlflow_proc, lambda: status_of(f"{mlflow_url}/health", timeout=2) < 400, 180)
    print(f"  mlflow server {mlflow_url} ({workers} workers, database {mlflow_db})", flush=True)
    stack.wait_ready("gunicorn", gunicorn, lambda: status_of(f"{modelgate_url}/api/v1/health", timeout=5) < 400, 240)
    stack.wait_ready(
        "gunicorn-nothing-kept", uncached, lambda: status_of(f"{uncached_url}/api/v1/health", timeout=5) < 400, 240
    )
    print(
        f"  ModelGate {modelgate_url} (gunicorn, {workers} gthread workers x {threads} threads, "
        f"database {modelgate_db})",
        flush=True,
    )
    return Systems(
        s3_url,
        Mlflow(mlflow_url),
        ModelGate(modelgate_url, token),
        ModelGate(uncached_url, token),
        modelgate_env,
        mlflow_db,
        modelgate_db,
        source,
    )


# --- MLflow's client, a process per client -------------------------------------------


def _mlflow_client_start(tracking_uri: str, s3_url: str) -> None:
    os.environ.update(ISOLATED_ENV)
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

    def register(self, run_id: str, name: str, tags: dict[str, str]) -> int:
        return self.pool.submit(_mlflow_register, run_id, name, tags).result(timeout=300)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
