"""The job page's reading of a spec: plain Python, no database."""

from __future__ import annotations

from frontend.job_specs import spec_summary
from lifecycle.jobs.spec import parse_spec


def test_a_data_parallel_gpu_spec_reads_as_words() -> None:
    spec = parse_spec(
        {
            "entrypoint": ["python", "train.py", "--name", "two words"],
            "params": {"lr": 0.001},
            "resources": {"gpus": 2, "gpu_type": "A100", "gpu_memory_mb": 40000, "cpus": 8, "memory_mb": 32000},
            "parallelism": {"mode": "data", "processes_per_node": 2, "nodes": 2},
            "timeout_s": 7200,
            "estimated_duration_s": 1800,
            "labels": {"zone": "eu"},
        }
    ).to_dict()
    assert dict(spec_summary(spec)) == {
        "Command": "python train.py --name 'two words'",
        "Resources": "2 GPUs (A100, ≥ 40000 MiB each) · 8 CPUs · 32000 MiB memory",
        "Parallelism": "data: 2 processes per node × 2 nodes",
        "Parameters": '{"lr": 0.001}',
        "Needs labels": "zone=eu",
        "Timeout": "2h 00m",
        "Expected duration": "30m 00s",
        "Attempts allowed": "3",
    }


def test_a_cpu_spec_with_defaults() -> None:
    rows = dict(spec_summary(parse_spec({"entrypoint": ["python", "score.py"]}).to_dict()))
    assert rows["Resources"] == "no GPU · 1 CPU · 1024 MiB memory"
    assert rows["Parallelism"] == "none (one process)"
    assert "Parameters" not in rows and "Needs labels" not in rows and "Expected duration" not in rows


def test_a_malformed_spec_leaves_out_what_it_cannot_read() -> None:
    assert spec_summary(None) == [] and spec_summary(["x"]) == []
    assert spec_summary({"entrypoint": "python x.py", "resources": "lots", "timeout_s": "soon"}) == []
