"""Runs one attempt of a job on this host. Pure (no Django): the caller passes callbacks
to store logs, report progress, renew the lease and ask whether to cancel.

The job gets exactly its GPUs through ``CUDA_VISIBLE_DEVICES``, MLflow tracking through
its environment, and its device layout in documented variables:

- ``MODELGATE_JOB_ID``, ``MODELGATE_ATTEMPT``, ``MODELGATE_PARAMS`` (JSON),
  ``MODELGATE_RESULT_PATH`` (write a JSON object there to record a result),
- ``MODELGATE_PARALLELISM`` (none, data, model, pipeline, hybrid),
  ``MODELGATE_NNODES``, ``MODELGATE_NODE_RANK``, ``MODELGATE_GPUS_PER_NODE``,
- ``MODELGATE_DEVICE_LAYOUT`` (JSON): for ``model`` one process sharding over all local
  GPUs; for ``pipeline`` one stage per local GPU in order; for ``hybrid`` one list of
  local GPUs per data-parallel replica (``processes_per_node`` replicas).

``data`` and ``hybrid`` jobs start through torchrun (``--standalone`` on one node;
c10d rendezvous on the gang's first host for several). A line ``MODELGATE_PROGRESS 0.42``
on the job's output reports progress. The job dies with the worker (PR_SET_PDEATHSIG), so
a killed worker never leaves an orphan holding the GPUs, and what is left of the job's
process group is killed when the attempt ends.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.jobs.spec import JobSpec

_PROGRESS = re.compile(r"^MODELGATE_PROGRESS\s+([0-9]*\.?[0-9]+)\s*$", re.M)
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Launch:
    job_id: int
    attempt: int
    spec: JobSpec
    gpu_indices: tuple[int, ...]
    workdir: Path
    node_rank: int = 0
    nnodes: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    state: str  # succeeded, failed, cancelled
    exit_code: int | None
    result: dict[str, Any]
    error: str = ""
    duration_s: float = 0.0


def device_layout(spec: JobSpec, local_gpus: int) -> list[Any]:
    mode = spec.parallelism.mode
    devices = list(range(local_gpus))
    if mode == "model":
        return [devices]
    if mode == "pipeline":
        return [[d] for d in devices]
    if mode == "hybrid":
        replicas = max(spec.parallelism.processes_per_node, 1)
        per = max(local_gpus // replicas, 1) if local_gpus else 0
        return [devices[i * per : (i + 1) * per] for i in range(replicas)]
    if mode == "data":
        return [[d] for d in devices] or [[] for _ in range(spec.parallelism.processes_per_node)]
    return [devices]


def command_for(launch: Launch) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of the job's process."""
    spec = launch.spec
    result_path = launch.workdir / f"result-{launch.attempt}.json"
    env = {
        **os.environ,
        **launch.environment,
        **spec.env,
        "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in launch.gpu_indices),
        "MODELGATE_JOB_ID": str(launch.job_id),
        "MODELGATE_ATTEMPT": str(launch.attempt),
        "MODELGATE_PARAMS": json.dumps(spec.params),
        "MODELGATE_RESULT_PATH": str(result_path),
        "MODELGATE_PARALLELISM": spec.parallelism.mode,
        "MODELGATE_NNODES": str(launch.nnodes),
        "MODELGATE_NODE_RANK": str(launch.node_rank),
        "MODELGATE_GPUS_PER_NODE": str(len(launch.gpu_indices)),
        "MODELGATE_DEVICE_LAYOUT": json.dumps(device_layout(spec, len(launch.gpu_indices))),
        "PYTHONUNBUFFERED": "1",
    }
    argv = list(spec.entrypoint)
    if argv[0] in {"python", "python3"}:
        # "python" means this worker's interpreter, whatever the submitting host runs.
        argv[0] = sys.executable
    if spec.parallelism.mode in {"data", "hybrid"}:
        script = argv[1:] if Path(argv[0]).name.startswith("python") else argv
        torchrun = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={spec.parallelism.processes_per_node}",
        ]
        if launch.nnodes > 1:
            torchrun += [
                f"--nnodes={launch.nnodes}",
                f"--node-rank={launch.node_rank}",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={launch.master_addr}:{launch.master_port}",
                f"--rdzv-id=modelgate-job-{launch.job_id}-{launch.attempt}",
            ]
        else:
            torchrun += ["--standalone"]
        argv = torchrun + script
    return argv, env


def _executable(name: str, workdir: Path, env: dict[str, str]) -> str | None:
    """Where ``name`` resolves for the job (a path is taken from its directory)."""
    if os.sep in name:
        path = workdir / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(name, path=env.get("PATH", os.defpath))


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, when it can set the parent-death signal (2.33 and later)."""
    found = shutil.which("setpriv")
    if found is None:
        return None
    try:
        usage = subprocess.run([found, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return found if "--pdeathsig" in usage else None


def _spawn(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The job's argv and Popen options that make it die with the worker.

    ``setpriv --pdeathsig KILL`` sets the signal and execs the job, so Popen can use
    vfork; a Python ``preexec_fn`` (the fallback) forces a fork of the whole worker,
    tens of milliseconds for a Django process and holding the GIL, so every other
    thread of the worker (its consumer, other jobs starting) waits for it."""
    setpriv = _setpriv()
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "KILL", "--", *argv], {"start_new_session": True}
    return argv, {"preexec_fn": _die_with_parent}


def _die_with_parent() -> None:
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def run(
    launch: Launch,
    *,
    on_log: Callable[[str], None],
    on_progress: Callable[[float], None],
    on_tick: Callable[[], bool],
    grace_s: float = 10.0,
    poll_s: float = 0.5,
) -> Outcome:
    """Run the attempt to its end. ``on_tick`` is called every poll (renew the lease
    there) and returns True when the job should be cancelled."""
    launch.workdir.mkdir(parents=True, exist_ok=True)
    argv, env = command_for(launch)
    started = time.monotonic()
    try:
        if _executable(argv[0], launch.workdir, env) is None:
            raise FileNotFoundError(f"no executable {argv[0]!r} on PATH or in the job's directory")
        spawn_argv, spawn_options = _spawn(argv)
        process = subprocess.Popen(
            spawn_argv,
            cwd=launch.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **spawn_options,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        # A missing executable fails every attempt alike: record why instead of raising,
        # which would leave the job running until its lease expired.
        message = f"could not start {argv[0]!r}: {exc}"
        on_log(message + "\n")
        return Outcome("failed", None, {}, message, time.monotonic() - started)
    chunks: list[str] = []
    lock = threading.Lock()

    def pump() -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            with lock:
                chunks.append(raw.decode("utf-8", "replace"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def flush() -> None:
        with lock:
            text = "".join(chunks)
            chunks.clear()
        if text:
            on_log(text)
            progress = _PROGRESS.findall(text)
            if progress:
                on_progress(min(float(progress[-1]), 1.0))

    stop_reason = ""
    try:
        while process.poll() is None:
            # Wakes as soon as the job exits (a sleep would hold its slot up to poll_s).
            try:
                process.wait(timeout=poll_s)
            except subprocess.TimeoutExpired:
                pass
            flush()
            if process.poll() is not None:
                break  # it finished on its own: neither a late cancel nor the timeout applies
            if time.monotonic() - started > launch.spec.timeout_s:
                stop_reason = f"timed out after {launch.spec.timeout_s:g} s"
            elif on_tick():
                stop_reason = "cancelled"
            if stop_reason:
                _terminate(process, grace_s)
                break
    except BaseException:
        # A callback failed (say the database went away): stop the job rather than leave
        # it holding the GPUs while the attempt is retried elsewhere.
        _terminate(process, grace_s)
        raise
    finally:
        _kill_stragglers(process)
    reader.join(timeout=5)
    flush()
    duration = time.monotonic() - started
    result = _read_result(launch.workdir / f"result-{launch.attempt}.json")
    if stop_reason == "cancelled":
        return Outcome("cancelled", process.returncode, result, "cancelled on request", duration)
    if stop_reason:
        return Outcome("failed", process.returncode, result, stop_reason, duration)
    if process.returncode == 0:
        return Outcome("succeeded", 0, result, "", duration)
    return Outcome("failed", process.returncode, result, f"exited with status {process.returncode}", duration)


def _terminate(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the job's process group, then SIGKILL after the grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def _kill_stragglers(process: subprocess.Popen) -> None:
    """SIGKILL what is left of the job's process group once its leader is gone: children
    that outlived it (or ignored SIGTERM while it exited) would hold the GPUs."""
    if process.poll() is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {"value": data}
