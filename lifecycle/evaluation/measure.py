"""What a version costs to serve, besides its scores: stored size, p50/p95 latency of one
row and of a batch, and peak memory of loading the model and scoring a batch. Pure (no
Django). The evaluation job measures every evaluated version with it, the derivation job
a parent and its child, so the ``max_latency_ms`` gate reads figures measured one way.

Latency is wall time of the model's own predict call (onnxruntime and PyTorch on one
thread), after warm-up. Peak memory is measured in a fresh process so one model's
allocations never count towards another's: the growth of the resident set's high-water
mark (reset once its libraries are imported) over what it held then.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lifecycle.evaluation.artifacts import Artifact, as_matrix, deserialized, predict_fn, serialized

# The figures recorded as a version's metrics, so gates (``max_latency_ms``) and people
# read them like any other metric.
RECORDED: tuple[str, ...] = (
    "latency_p50_ms",
    "latency_p95_ms",
    "batch_latency_p50_ms",
    "batch_latency_p95_ms",
    "peak_memory_mb",
)
SINGLE_CALLS = 300
BATCH_ROWS = 1000
BATCH_CALLS = 20


@dataclass(frozen=True)
class Measurement:
    """Figures of one model on one machine."""

    model_bytes: int
    latency_p50_ms: float
    latency_p95_ms: float
    batch_rows: int
    batch_latency_p50_ms: float
    batch_latency_p95_ms: float
    peak_memory_mb: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def _limit_torch_threads() -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def latency(
    artifact: Artifact,
    rows: Any,
    *,
    single_calls: int = SINGLE_CALLS,
    batch_rows: int = BATCH_ROWS,
    batch_calls: int = BATCH_CALLS,
) -> dict[str, float]:
    """p50/p95 milliseconds of scoring one row, and of a batch of ``batch_rows`` rows."""
    if artifact.flavor == "pytorch":
        _limit_torch_threads()
    matrix = as_matrix(rows, np.float64 if artifact.flavor == "sklearn" else np.float32)
    batch = np.resize(matrix, (batch_rows, matrix.shape[1]))  # repeats rows when there are fewer
    call = predict_fn(artifact)
    for i in range(5):
        call(matrix[i % len(matrix) : i % len(matrix) + 1])
    call(batch)
    single = []
    for i in range(single_calls):
        row = matrix[i % len(matrix) : i % len(matrix) + 1]
        started = time.perf_counter()
        call(row)
        single.append(time.perf_counter() - started)
    batched = []
    for _ in range(batch_calls):
        started = time.perf_counter()
        call(batch)
        batched.append(time.perf_counter() - started)
    p50, p95 = _percentiles(single)
    b50, b95 = _percentiles(batched)
    return {"latency_p50_ms": p50, "latency_p95_ms": p95, "batch_latency_p50_ms": b50, "batch_latency_p95_ms": b95}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _memory_child(flavor: str, task: str, labels: tuple, payload: bytes, rows: np.ndarray, queue: Any) -> None:
    # Import what loading and scoring will import, so the figure is the model's own.
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    if flavor == "pytorch":
        _limit_torch_threads()
    baseline = _status_kb("VmRSS")
    # Writing 5 to clear_refs resets the high-water mark (VmHWM) to the current RSS, so
    # the peak the imports reached does not count.
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    artifact = Artifact(flavor, deserialized(flavor, payload), task, labels)
    predict_fn(artifact)(rows)
    queue.put(max(_status_kb("VmHWM") - baseline, 0) / 1024.0)


def peak_memory_mb(
    artifact: Artifact, rows: Any, *, batch_rows: int = BATCH_ROWS, timeout_s: float = 120
) -> float | None:
    """MB by which loading the model and scoring a batch raise a fresh process's peak RSS
    (None where it cannot be measured: no /proc, or the process failed)."""
    matrix = as_matrix(rows, np.float64 if artifact.flavor == "sklearn" else np.float32)
    batch = np.resize(matrix, (batch_rows, matrix.shape[1]))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_memory_child,
        args=(artifact.flavor, artifact.task, tuple(artifact.labels), serialized(artifact), batch, queue),
    )
    process.start()
    try:
        return float(queue.get(timeout=timeout_s))
    except Exception:  # the child died or timed out: no figure rather than a wrong one
        return None
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def measure(artifact: Artifact, rows: Any, *, memory: bool = True, **options: Any) -> Measurement:
    """All figures of one model, scored on ``rows``."""
    times = latency(artifact, rows, **options)
    return Measurement(
        model_bytes=len(serialized(artifact)),
        batch_rows=int(options.get("batch_rows", BATCH_ROWS)),
        peak_memory_mb=peak_memory_mb(artifact, rows) if memory else None,
        **times,
    )


def comparison(parent: Measurement, derived: Measurement) -> dict[str, Any]:
    """Derived vs parent: each figure, its ratio, and the single-row speed-up."""
    out: dict[str, Any] = {"parent": parent.to_dict(), "derived": derived.to_dict()}
    ratios = {}
    for name in (
        "model_bytes",
        "latency_p50_ms",
        "latency_p95_ms",
        "batch_latency_p50_ms",
        "batch_latency_p95_ms",
        "peak_memory_mb",
    ):
        before, after = getattr(parent, name), getattr(derived, name)
        if before and after is not None:
            ratios[name] = after / before
    out["ratios"] = ratios
    if derived.latency_p50_ms:
        out["single_row_speedup"] = parent.latency_p50_ms / derived.latency_p50_ms
    return out
