"""The pure parts of jobs, without a database: the spec parser, the host inventory and
the runner (on real subprocesses). Two checks need an NVIDIA GPU and skip without one."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from lifecycle.jobs import inventory, runner
from lifecycle.jobs.inventory import Gpu, detect, gpu_type_of, parse_declared_gpus, parse_labels
from lifecycle.jobs.runner import Launch, command_for, device_layout
from lifecycle.jobs.spec import JobSpec, Parallelism, Resources, SpecError, parse_spec

ENTRY = {"entrypoint": ["python", "train.py"]}


def spec_errors(raw: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return caught.value.errors


# --- the spec ---------------------------------------------------------------------------


def test_a_minimal_spec_gets_the_documented_defaults():
    spec = parse_spec(ENTRY)

    assert spec.entrypoint == ("python", "train.py")
    assert spec.params == {} and spec.env == {} and spec.labels == {}
    assert spec.resources == Resources(gpus=0, gpu_type=None, gpu_memory_mb=None, cpus=1.0, memory_mb=1024)
    assert spec.parallelism == Parallelism(mode="none", processes_per_node=1, nodes=1)
    assert spec.timeout_s == 24 * 3600
    assert spec.estimated_duration_s is None
    assert spec.max_attempts == 3


def test_a_full_spec_is_read_as_given_and_survives_storage():
    raw = {
        "entrypoint": ["python", "train.py", "--epochs", "3"],
        "params": {"lr": 0.01, "layers": [64, 32]},
        "env": {"WANDB_MODE": "offline"},
        "resources": {"gpus": 2, "gpu_type": "A100", "gpu_memory_mb": 40960, "cpus": 8, "memory_mb": 65536},
        "parallelism": {"mode": "data", "processes_per_node": 2, "nodes": 2},
        "timeout_s": 600,
        "estimated_duration_s": 120.5,
        "labels": {"zone": "eu"},
        "max_attempts": 5,
    }

    spec = parse_spec(raw)

    assert spec.resources == Resources(gpus=2, gpu_type="A100", gpu_memory_mb=40960, cpus=8.0, memory_mb=65536)
    assert spec.parallelism == Parallelism(mode="data", processes_per_node=2, nodes=2)
    assert (spec.timeout_s, spec.estimated_duration_s, spec.max_attempts) == (600.0, 120.5, 5)
    assert parse_spec(json.loads(json.dumps(spec.to_dict()))) == spec


def test_null_sub_objects_mean_empty_ones():
    spec = parse_spec({**ENTRY, "params": None, "resources": None, "parallelism": None, "env": None})

    assert spec == parse_spec(ENTRY)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({**ENTRY, "gpus": 1}, "spec.gpus"),
        ({**ENTRY, "resources": {"gpu": 1}}, "spec.resources.gpu"),
        ({**ENTRY, "parallelism": {"ranks": 2}}, "spec.parallelism.ranks"),
    ],
)
def test_an_unknown_field_is_named(raw, field):
    assert spec_errors(raw) == {field: "unknown field"}


@pytest.mark.parametrize(
    "entrypoint",
    [None, "python train.py", [], ["python", ""], ["python", 3], [["python"]], ["python\x00", "x"]],
)
def test_a_bad_entrypoint_is_named(entrypoint):
    raw = {"entrypoint": entrypoint} if entrypoint is not None else {}

    assert set(spec_errors(raw)) == {"spec.entrypoint"}


@pytest.mark.parametrize(
    ("section", "name", "value", "message"),
    [
        ("resources", "gpus", -1, "must be at least 0"),
        ("resources", "gpus", True, "must be a whole number"),
        ("resources", "gpus", 1.5, "must be a whole number"),
        ("resources", "gpus", "2", "must be a whole number"),
        ("resources", "gpus", None, "must be a whole number"),
        ("resources", "cpus", -0.5, "must be at least 0"),
        ("resources", "cpus", math.nan, "must be a number"),
        ("resources", "cpus", math.inf, "must be a number"),
        ("resources", "cpus", False, "must be a number"),
        ("resources", "memory_mb", -1024, "must be at least 0"),
        ("resources", "gpu_memory_mb", 0, "must be at least 1"),
        ("parallelism", "nodes", 0, "must be at least 1"),
        ("parallelism", "processes_per_node", True, "must be a whole number"),
        (None, "timeout_s", 0, "must be at least 1"),
        (None, "timeout_s", -math.inf, "must be a number"),
        (None, "timeout_s", 10**400, "must be at most 1e+15"),
        (None, "estimated_duration_s", -1, "must be at least 0"),
        (None, "estimated_duration_s", math.nan, "must be a number"),
        (None, "max_attempts", 0, "must be at least 1"),
        (None, "max_attempts", 10**10, "must be at most 2147483647"),
    ],
)
def test_a_bad_number_is_named(section, name, value, message):
    raw = {**ENTRY, section: {name: value}} if section else {**ENTRY, name: value}
    field = f"spec.{section}.{name}" if section else f"spec.{name}"

    assert spec_errors(raw) == {field: message}


@pytest.mark.parametrize("mode", ["ddp", "", None, 1, ["data"], {"data": True}])
def test_a_bad_parallelism_mode_is_named(mode):
    errors = spec_errors({**ENTRY, "parallelism": {"mode": mode}})

    assert errors == {"spec.parallelism.mode": "must be one of none, data, model, pipeline, hybrid"}


@pytest.mark.parametrize("value", [[], 0, "", False, "4 GPUs"])
def test_a_section_that_is_not_an_object_is_named_even_when_empty_or_false(value):
    errors = spec_errors({**ENTRY, "params": value, "resources": value, "parallelism": value})

    assert errors == {f"spec.{name}": "must be an object" for name in ("params", "resources", "parallelism")}


@pytest.mark.parametrize("env", [{"DEBUG": 1}, {"DEBUG": None}, ["DEBUG=1"], "DEBUG=1", {"A=B": "x"}, {"X": "a\x00b"}])
def test_a_bad_env_is_named(env):
    assert set(spec_errors({**ENTRY, "env": env})) == {"spec.env"}


@pytest.mark.parametrize("gpu_type", ["", "  ", 100])
def test_a_blank_or_non_string_gpu_type_is_named(gpu_type):
    assert set(spec_errors({**ENTRY, "resources": {"gpu_type": gpu_type}})) == {"spec.resources.gpu_type"}


def test_labels_must_be_strings():
    assert spec_errors({**ENTRY, "labels": {"zone": 1}}) == {"spec.labels": "must be an object of strings"}


def test_every_problem_is_reported_at_once():
    errors = spec_errors(
        {
            "entrypoint": [],
            "bogus": 1,
            "resources": {"gpus": -2, "cpus": math.nan},
            "parallelism": {"mode": "mpi", "nodes": 0},
            "env": {"A": 1},
        }
    )

    assert set(errors) == {
        "spec.entrypoint",
        "spec.bogus",
        "spec.resources.gpus",
        "spec.resources.cpus",
        "spec.parallelism.mode",
        "spec.parallelism.nodes",
        "spec.env",
    }


@pytest.mark.parametrize("raw", [None, [], "python train.py", 3])
def test_a_spec_that_is_not_an_object_is_refused(raw):
    assert spec_errors(raw) == {"spec": "must be an object"}


# --- the inventory ----------------------------------------------------------------------


def test_declared_gpus_are_numbered_in_order_with_their_memory():
    gpus = parse_declared_gpus("A100:40960,T4:15360")

    assert gpus == (Gpu(0, "A100", "A100", 40960), Gpu(1, "T4", "T4", 15360))


@pytest.mark.parametrize("value", ["none", "NONE", " none ", "", "0"])
def test_declaring_none_means_a_cpu_only_host(value):
    assert parse_declared_gpus(value) == ()


@pytest.mark.parametrize(
    ("value", "item"),
    [
        ("A100", "A100"),
        ("A100:", "A100:"),
        (":40960", ":40960"),
        ("A100:40960,", ""),
        ("A100:40960,T4:16GB", "T4:16GB"),
        ("A100:-1", "A100:-1"),
        ("A100:²", "A100:²"),
    ],
)
def test_a_malformed_gpu_declaration_names_the_item(value, item):
    with pytest.raises(ValueError, match=f"item {item!r} must look like A100:40960"):
        parse_declared_gpus(value)


def test_labels_are_key_value_pairs():
    assert parse_labels("zone=eu, disk=nvme") == {"zone": "eu", "disk": "nvme"}
    assert parse_labels("") == {}
    assert parse_labels("expr=a=b") == {"expr": "a=b"}


@pytest.mark.parametrize("value", ["zone", "=eu", "zone=eu,ssd"])
def test_a_malformed_label_is_named(value):
    with pytest.raises(ValueError, match="MODELGATE_WORKER_LABELS item"):
        parse_labels(value)


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA GH200 480GB", "GH200"),
        ("NVIDIA H20", "H20"),
        ("Tesla T4", "T4"),
        ("Tesla V100-SXM2-16GB", "V100"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("NVIDIA RTX A6000", "A6000"),
        ("a100", "A100"),
        ("Mystery Accelerator", "Mystery Accelerator"),
        ("", "GPU"),
    ],
)
def test_vendor_names_become_short_gpu_types(name, short):
    assert gpu_type_of(name) == short


def test_a_declared_inventory_wins_and_is_read_from_the_environment():
    found = detect(
        {
            "MODELGATE_WORKER_GPUS": "A100:40960,A100:40960",
            "MODELGATE_WORKER_CPUS": "16",
            "MODELGATE_WORKER_MEMORY_MB": "131072",
            "MODELGATE_WORKER_LABELS": "zone=eu",
            "MODELGATE_WORKER_COST_PER_HOUR": "3.2",
        }
    )

    assert found.source == "declared"
    assert [(g.index, g.gpu_type, g.memory_mb) for g in found.gpus] == [(0, "A100", 40960), (1, "A100", 40960)]
    assert (found.cpus, found.memory_mb, found.labels, found.cost_per_hour) == (16, 131072, {"zone": "eu"}, 3.2)


def test_a_cpu_only_declaration_still_reports_the_hosts_cpus_and_memory():
    found = detect({"MODELGATE_WORKER_GPUS": "none"})

    assert found.gpus == () and found.source == "declared"
    assert found.cpus == (os.cpu_count() or 1)
    assert found.memory_mb > 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODELGATE_WORKER_COST_PER_HOUR", "cheap"),
        ("MODELGATE_WORKER_CPUS", "eight"),
        ("MODELGATE_WORKER_CPUS", "-2"),
        ("MODELGATE_WORKER_MEMORY_MB", "64G"),
    ],
)
def test_a_bad_inventory_variable_is_named(name, value):
    with pytest.raises(ValueError, match=name):
        detect({"MODELGATE_WORKER_GPUS": "none", name: value})


def test_without_a_declaration_or_any_gpu_tool_the_host_has_no_gpus(monkeypatch):
    monkeypatch.setattr(inventory, "_from_nvml", lambda: None)
    monkeypatch.setattr(inventory, "_from_nvidia_smi", lambda: None)

    found = detect({})

    assert (found.gpus, found.source) == ((), "none")


def _nvml_gpus() -> tuple[Gpu, ...] | None:
    try:
        return inventory._from_nvml()
    except Exception:  # a broken driver install is as good as none here
        return None


@pytest.mark.skipif(not _nvml_gpus(), reason="needs an NVIDIA GPU with NVML")
def test_on_a_gpu_host_nvml_and_nvidia_smi_report_the_same_gpus():
    from_nvml = inventory._from_nvml()
    assert from_nvml
    found = detect({})
    assert found.source == "nvml"
    assert found.gpus == from_nvml
    for gpu in found.gpus:
        assert gpu.memory_mb > 1024 and gpu.uuid.startswith("GPU-")
        assert gpu.gpu_type == gpu_type_of(gpu.name) and "NVIDIA" not in gpu.gpu_type
    if shutil.which("nvidia-smi"):
        from_smi = inventory._from_nvidia_smi()
        assert from_smi is not None
        assert [(g.index, g.name, g.gpu_type, g.uuid) for g in from_smi] == [
            (g.index, g.name, g.gpu_type, g.uuid) for g in from_nvml
        ]
        # nvidia-smi rounds to MiB the same way; allow a MiB either side.
        assert all(abs(a.memory_mb - b.memory_mb) <= 1 for a, b in zip(from_smi, from_nvml, strict=True))


# --- the runner: layout and command -----------------------------------------------------


def spec_with(mode: str = "none", processes_per_node: int = 1, nodes: int = 1, **extra: Any) -> JobSpec:
    raw = {
        "entrypoint": ["python", "train.py", "--epochs", "1"],
        "parallelism": {"mode": mode, "processes_per_node": processes_per_node, "nodes": nodes},
        **extra,
    }
    return parse_spec(raw)


def launch_of(spec: JobSpec, tmp_path: Path, gpus: tuple[int, ...] = (), **extra: Any) -> Launch:
    return Launch(job_id=7, attempt=2, spec=spec, gpu_indices=gpus, workdir=tmp_path, **extra)


@pytest.mark.parametrize(
    ("mode", "processes", "gpus", "layout"),
    [
        ("none", 1, 2, [[0, 1]]),
        ("none", 1, 0, [[]]),
        ("model", 1, 4, [[0, 1, 2, 3]]),
        ("pipeline", 1, 3, [[0], [1], [2]]),
        ("hybrid", 2, 4, [[0, 1], [2, 3]]),
        ("hybrid", 4, 8, [[0, 1], [2, 3], [4, 5], [6, 7]]),
        ("data", 2, 2, [[0], [1]]),
        ("data", 3, 0, [[], [], []]),
    ],
)
def test_the_device_layout_follows_the_parallelism_mode(mode, processes, gpus, layout):
    assert device_layout(spec_with(mode, processes), gpus) == layout


def test_the_job_sees_exactly_its_gpus_and_its_documented_variables(tmp_path):
    spec = spec_with("pipeline", params={"lr": 0.1}, env={"CUDA_VISIBLE_DEVICES": "0,1,2,3", "EXTRA": "yes"})

    argv, env = command_for(launch_of(spec, tmp_path, gpus=(1, 3), environment={"MLFLOW_TRACKING_URI": "http://m"}))

    assert argv == [sys.executable, "train.py", "--epochs", "1"]  # "python" is the worker's interpreter
    assert env["CUDA_VISIBLE_DEVICES"] == "1,3"  # the spec cannot widen it
    assert env["EXTRA"] == "yes"
    assert env["MLFLOW_TRACKING_URI"] == "http://m"
    assert env["MODELGATE_JOB_ID"] == "7"
    assert env["MODELGATE_ATTEMPT"] == "2"
    assert json.loads(env["MODELGATE_PARAMS"]) == {"lr": 0.1}
    assert env["MODELGATE_RESULT_PATH"] == str(tmp_path / "result-2.json")
    assert env["MODELGATE_PARALLELISM"] == "pipeline"
    assert (env["MODELGATE_NNODES"], env["MODELGATE_NODE_RANK"], env["MODELGATE_GPUS_PER_NODE"]) == ("1", "0", "2")
    assert json.loads(env["MODELGATE_DEVICE_LAYOUT"]) == [[0], [1]]


def test_a_cpu_job_gets_an_empty_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")

    _, env = command_for(launch_of(spec_with(), tmp_path))

    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["MODELGATE_GPUS_PER_NODE"] == "0"


def test_a_single_node_data_parallel_job_starts_through_torchrun_standalone(tmp_path):
    argv, _ = command_for(launch_of(spec_with("data", processes_per_node=2), tmp_path, gpus=(0, 1)))

    assert argv == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        "--standalone",
        "train.py",
        "--epochs",
        "1",
    ]


def test_a_gang_rank_starts_torchrun_with_c10d_rendezvous_on_the_first_host(tmp_path):
    spec = spec_with("hybrid", processes_per_node=2, nodes=3)
    launch = launch_of(
        spec, tmp_path, gpus=(0, 1, 2, 3), node_rank=2, nnodes=3, master_addr="10.0.0.5", master_port=29507
    )

    argv, env = command_for(launch)

    assert argv[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2"]
    assert "--standalone" not in argv
    assert argv[4:9] == [
        "--nnodes=3",
        "--node-rank=2",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=10.0.0.5:29507",
        "--rdzv-id=modelgate-job-7-2",
    ]
    assert argv[9:] == ["train.py", "--epochs", "1"]
    assert (env["MODELGATE_NNODES"], env["MODELGATE_NODE_RANK"]) == ("3", "2")
    assert json.loads(env["MODELGATE_DEVICE_LAYOUT"]) == [[0, 1], [2, 3]]


def test_an_entrypoint_that_is_not_python_is_handed_to_torchrun_whole(tmp_path):
    spec = parse_spec({"entrypoint": ["train.py", "--fast"], "parallelism": {"mode": "data"}})

    argv, _ = command_for(launch_of(spec, tmp_path))

    assert argv[-2:] == ["train.py", "--fast"]


@pytest.mark.parametrize("mode", ["model", "pipeline", "none"])
def test_model_and_pipeline_jobs_run_their_entrypoint_directly(mode, tmp_path):
    argv, _ = command_for(launch_of(spec_with(mode, nodes=2), tmp_path, gpus=(0,), nnodes=2))

    assert argv == [sys.executable, "train.py", "--epochs", "1"]


# --- the runner on real processes -------------------------------------------------------


class Recorder:
    """The callbacks a worker passes to ``runner.run``, recording what they saw."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.logs: list[str] = []
        self.progress: list[float] = []
        self.ticks = 0
        self.cancel_after = cancel_after

    def on_log(self, text: str) -> None:
        self.logs.append(text)

    def on_progress(self, value: float) -> None:
        self.progress.append(value)

    def on_tick(self) -> bool:
        self.ticks += 1
        return self.cancel_after is not None and self.ticks > self.cancel_after

    @property
    def text(self) -> str:
        return "".join(self.logs)


def python_job(tmp_path: Path, code: str, **spec: Any) -> Launch:
    raw = {"entrypoint": [sys.executable, "-c", textwrap.dedent(code)], **spec}
    return launch_of(parse_spec(raw), tmp_path / "work", gpus=(0,))


def run(launch: Launch, recorder: Recorder, grace_s: float = 2.0) -> runner.Outcome:
    return runner.run(
        launch,
        on_log=recorder.on_log,
        on_progress=recorder.on_progress,
        on_tick=recorder.on_tick,
        grace_s=grace_s,
        poll_s=0.05,
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie of ours still answers; it holds nothing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def test_a_job_that_succeeds_records_its_result_logs_and_progress(tmp_path):
    recorder = Recorder()
    launch = python_job(
        tmp_path,
        """
        import json, os
        print("devices", os.environ["CUDA_VISIBLE_DEVICES"], "params", os.environ["MODELGATE_PARAMS"])
        for step in (0.25, 0.5, 1.0):
            print(f"MODELGATE_PROGRESS {step}", flush=True)
        print("MODELGATE_PROGRESS 7")
        print("not progress: MODELGATE_PROGRESS 0.9")
        print("to stderr too", file=__import__("sys").stderr)
        json.dump({"f1": 0.93}, open(os.environ["MODELGATE_RESULT_PATH"], "w"))
        """,
        params={"lr": 0.5},
    )

    outcome = run(launch, recorder)

    assert (outcome.state, outcome.exit_code, outcome.error) == ("succeeded", 0, "")
    assert outcome.result == {"f1": 0.93}
    assert outcome.duration_s > 0
    assert 'devices 0 params {"lr": 0.5}' in recorder.text
    assert "to stderr too" in recorder.text
    assert recorder.progress and recorder.progress[-1] == 1.0
    assert all(0 <= value <= 1 for value in recorder.progress)
    assert 0.9 not in recorder.progress


def test_a_result_that_is_not_an_object_is_wrapped(tmp_path):
    launch = python_job(tmp_path, "import os; open(os.environ['MODELGATE_RESULT_PATH'], 'w').write('[1, 2]')")

    assert run(launch, Recorder()).result == {"value": [1, 2]}


def test_a_job_that_exits_non_zero_fails_with_its_status_and_keeps_its_output(tmp_path):
    recorder = Recorder()
    launch = python_job(tmp_path, "import sys; print('loss went nan'); sys.exit(3)")

    outcome = run(launch, recorder)

    assert (outcome.state, outcome.exit_code) == ("failed", 3)
    assert outcome.error == "exited with status 3"
    assert outcome.result == {}
    assert "loss went nan" in recorder.text


def test_a_missing_executable_fails_the_attempt_with_the_reason(tmp_path):
    recorder = Recorder()
    launch = launch_of(parse_spec({"entrypoint": ["no-such-trainer-xyz", "--go"]}), tmp_path / "work")

    outcome = run(launch, recorder)

    assert outcome.state == "failed"
    assert outcome.exit_code is None
    assert "could not start 'no-such-trainer-xyz'" in outcome.error
    assert "no-such-trainer-xyz" in recorder.text


def test_a_job_past_its_timeout_is_stopped_and_failed(tmp_path):
    launch = python_job(
        tmp_path, "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(60)", timeout_s=1
    )
    started = time.monotonic()

    outcome = run(launch, Recorder())

    assert time.monotonic() - started < 10
    assert outcome.state == "failed"
    assert outcome.error == "timed out after 1 s"
    assert outcome.exit_code == -signal.SIGTERM
    assert wait_gone(int((launch.workdir / "pid").read_text()), 1)


CHILD_AND_GRANDCHILD = """
import os, signal, subprocess, sys, time
{ignore}
child = subprocess.Popen([sys.executable, "-c", "import signal, time; {child_ignore} time.sleep(120)"])
open("pids", "w").write(f"{{os.getpid()}} {{child.pid}}")
print("MODELGATE_PROGRESS 0.1", flush=True)
time.sleep(120)
"""


def test_a_cancelled_job_and_what_it_started_are_gone_within_the_grace_period(tmp_path):
    recorder = Recorder(cancel_after=20)
    launch = python_job(tmp_path, CHILD_AND_GRANDCHILD.format(ignore="", child_ignore=""))
    started = time.monotonic()

    outcome = run(launch, recorder, grace_s=3.0)

    elapsed = time.monotonic() - started
    assert outcome.state == "cancelled"
    assert outcome.error == "cancelled on request"
    assert elapsed < 3.0 + 3.0  # cancel after ~1 s, SIGTERM honoured at once
    pids = [int(p) for p in (launch.workdir / "pids").read_text().split()]
    assert all(wait_gone(pid, 1) for pid in pids)
    assert recorder.progress == [0.1]


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    launch = python_job(tmp_path, CHILD_AND_GRANDCHILD.format(ignore=ignore, child_ignore=ignore + ";"))
    recorder = Recorder(cancel_after=20)
    started = time.monotonic()

    outcome = run(launch, recorder, grace_s=1.0)

    elapsed = time.monotonic() - started
    assert outcome.state == "cancelled"
    assert outcome.exit_code == -signal.SIGKILL
    assert 2.0 <= elapsed < 2.0 + 1.0 + 3.0
    pids = [int(p) for p in (launch.workdir / "pids").read_text().split()]
    assert all(wait_gone(pid, 1) for pid in pids)


def test_a_child_that_ignores_sigterm_dies_with_the_job_that_obeyed_it(tmp_path):
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    launch = python_job(tmp_path, CHILD_AND_GRANDCHILD.format(ignore="", child_ignore=ignore))

    outcome = run(launch, Recorder(cancel_after=20), grace_s=30.0)

    assert outcome.state == "cancelled"
    assert outcome.exit_code == -signal.SIGTERM
    _, child = (int(p) for p in (launch.workdir / "pids").read_text().split())
    assert wait_gone(child, 1)


def test_what_a_job_leaves_behind_when_it_exits_is_killed(tmp_path):
    launch = python_job(
        tmp_path,
        """
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open("child", "w").write(str(child.pid))
        """,
    )

    outcome = run(launch, Recorder())

    assert outcome.state == "succeeded"
    assert wait_gone(int((launch.workdir / "child").read_text()), 2)


WORKER_THAT_RUNS_A_JOB = """
import sys, textwrap
from pathlib import Path
from lifecycle.jobs import runner
from lifecycle.jobs.spec import parse_spec

if sys.argv[2] == "preexec":
    runner._setpriv = lambda: None  # the fallback for hosts without setpriv
job = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(120)"
launch = runner.Launch(1, 1, parse_spec({"entrypoint": [sys.executable, "-c", job]}), (), Path(sys.argv[1]))
runner.run(launch, on_log=lambda _: None, on_progress=lambda _: None, on_tick=lambda: False)
"""


@pytest.mark.parametrize("spawn", ["setpriv", "preexec"])
def test_a_job_dies_with_a_worker_that_is_killed(tmp_path, spawn):
    if spawn == "setpriv" and runner._setpriv() is None:
        pytest.skip("setpriv with --pdeathsig is not installed")
    root = Path(__file__).resolve().parents[2]
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_THAT_RUNS_A_JOB, str(tmp_path), spawn],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        job = int((tmp_path / "pid").read_text())
    finally:
        worker.kill()
        worker.wait(timeout=10)

    assert wait_gone(job, 5)


def test_when_a_callback_fails_the_job_is_stopped_before_the_error_propagates(tmp_path):
    launch = python_job(tmp_path, "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(60)")

    def on_tick() -> bool:
        if (launch.workdir / "pid").exists():
            raise ConnectionError("database went away")
        return False

    with pytest.raises(ConnectionError):
        runner.run(launch, on_log=lambda _: None, on_progress=lambda _: None, on_tick=on_tick, grace_s=1, poll_s=0.05)

    assert wait_gone(int((launch.workdir / "pid").read_text()), 1)


def _cuda_devices() -> int:
    if not _nvml_gpus():
        return 0  # spares importing torch where no GPU could be seen anyway
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.skipif(_cuda_devices() == 0, reason="needs PyTorch with a CUDA GPU")
def test_on_a_gpu_host_the_job_sees_only_the_gpus_it_was_given(tmp_path):
    probe = """
    import json, os, torch
    json.dump({"count": torch.cuda.device_count(),
               "name": torch.cuda.get_device_name(0) if torch.cuda.device_count() else None},
              open(os.environ["MODELGATE_RESULT_PATH"], "w"))
    """
    code = [sys.executable, "-c", textwrap.dedent(probe)]
    spec = parse_spec({"entrypoint": code, "resources": {"gpus": 1}})
    last = _cuda_devices() - 1

    given = runner.run(
        launch_of(spec, tmp_path / "one", gpus=(last,)),
        on_log=lambda _: None,
        on_progress=lambda _: None,
        on_tick=lambda: False,
        poll_s=0.05,
    )
    none = runner.run(
        launch_of(spec, tmp_path / "none"),
        on_log=lambda _: None,
        on_progress=lambda _: None,
        on_tick=lambda: False,
        poll_s=0.05,
    )

    assert given.state == "succeeded", given.error
    assert given.result["count"] == 1 and given.result["name"]
    assert none.result == {"count": 0, "name": None}
