"""A replica: MLflow's own scoring server for one version, run by a ``deploy`` job on a
worker host (``python -m lifecycle.deployments.replica``).

It downloads the version's artifact, verifying every file against the manifest recorded
at registration (a mismatch fails the replica with that reason, nothing is served),
starts ``mlflow models serve --env-manager local`` on a free port, reports the address
once ``/ping`` answers, then checks its health every few seconds: a scoring server that
dies is restarted (up to ``MODELGATE_REPLICA_MAX_RESTARTS`` times), and the replica stops
when it is drained. SIGTERM (the job cancelled) reaches the scoring server too, and
uvicorn finishes the requests in flight before it exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lifecycle.jobs import program

HEALTH_INTERVAL_S = float(os.environ.get("MODELGATE_REPLICA_HEALTH_SECONDS", "2"))
START_TIMEOUT_S = float(os.environ.get("MODELGATE_REPLICA_START_TIMEOUT_SECONDS", "180"))
MAX_RESTARTS = int(os.environ.get("MODELGATE_REPLICA_MAX_RESTARTS", "3"))
_PR_SET_PDEATHSIG = 1


def _host() -> str:
    return os.environ.get("MODELGATE_REPLICA_HOST") or os.environ.get("MODELGATE_WORKER_ADDRESS") or "127.0.0.1"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> None:
    """In the scoring server's process: get SIGTERM when the replica program dies, even
    by SIGKILL (its worker killed), so no server outlives its replica (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the runner's process-group kill still reaches it
        pass


def _serve(model_dir: Path, host: str, port: int, log: Path) -> subprocess.Popen:
    # MLflow starts its uvicorn by name: the interpreter's own scripts come first.
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "-h",
            host,
            "-p",
            str(port),
            "-w",
            "1",
        ],
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=_die_with_parent,
    )


def _wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the scoring server exited ({process.returncode}): {log.read_text()[-1500:]}")
        if _healthy(url):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the scoring server did not answer /ping within {START_TIMEOUT_S:.0f}s")


def main() -> None:
    program.setup()
    from django.db import close_old_connections

    from lifecycle.deployments import services
    from lifecycle.deployments.models import Replica
    from registry import storage
    from registry.errors import DomainError

    replica_id = int(program.params()["replica"])
    replica = Replica.objects.select_related("version", "version__model").get(pk=replica_id)
    version = replica.version
    workdir = Path.cwd()
    try:
        model_dir = storage.artifact_download(version.artifact_uri, version.manifest, workdir / "model")
    except DomainError as exc:
        services.replica_failed(replica_id=replica_id, detail=f"v{version.version}: {exc.message}")
        raise SystemExit(f"replica {replica_id}: {exc.message}") from exc
    if not (model_dir / "MLmodel").exists():
        detail = f"v{version.version}'s artifact has no MLmodel file: MLflow's scoring server cannot serve it"
        services.replica_failed(replica_id=replica_id, detail=detail)
        raise SystemExit(detail)

    host = _host()
    port = _free_port(host)
    url = f"http://{host}:{port}"
    log = workdir / "scoring-server.log"
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    process = _serve(model_dir, host, port, log)
    try:
        _wait_ready(process, url, log)
    except RuntimeError as exc:
        process.kill()
        services.replica_failed(replica_id=replica_id, detail=str(exc))
        raise SystemExit(str(exc)) from exc
    services.replica_ready(replica_id=replica_id, url=url, host=host)
    print(f"replica {replica_id} serves {version.model.name} v{version.version} at {url}", flush=True)
    program.progress(1.0)

    restarts = 0
    while not stopping:
        time.sleep(HEALTH_INTERVAL_S)
        if stopping:
            break
        detail = ""
        if process.poll() is not None:
            restarts += 1
            if restarts > MAX_RESTARTS:
                services.replica_failed(
                    replica_id=replica_id,
                    detail=f"the scoring server died {restarts} times; last exit {process.returncode}",
                )
                raise SystemExit("the scoring server keeps dying")
            detail = f"scoring server exited ({process.returncode}); restart {restarts}"
            print(detail, flush=True)
            process = _serve(model_dir, host, port, log)
            try:
                _wait_ready(process, url, log)
            except RuntimeError as exc:
                detail = str(exc)
        close_old_connections()
        try:
            keep = services.replica_heartbeat(
                replica_id=replica_id, healthy=_healthy(url), detail=detail, restarts=restarts
            )
        except Exception as exc:  # a database blip: keep serving, report next time
            print(f"heartbeat failed: {exc}", flush=True)
            continue
        if not keep:
            break
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    program.result_write({"replica": replica_id, "url": url, "restarts": restarts})


if __name__ == "__main__":
    main()
