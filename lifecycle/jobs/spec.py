"""A job's spec: what to run, with which resources and parallelism. Pure (no Django).

``parse_spec`` validates a JSON spec and fills defaults; every problem is reported
with the field it concerns, all at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

JOB_KINDS = ("train", "evaluate", "compress", "convert", "deploy", "batch_infer", "retrain", "derive")
PARALLELISM_MODES = ("none", "data", "model", "pipeline", "hybrid")


class SpecError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Resources:
    gpus: int = 0
    gpu_type: str | None = None
    gpu_memory_mb: int | None = None
    cpus: float = 1.0
    memory_mb: int = 1024


@dataclass(frozen=True)
class Parallelism:
    mode: str = "none"
    processes_per_node: int = 1
    nodes: int = 1


@dataclass(frozen=True)
class JobSpec:
    """``entrypoint`` is an argv list run in the job's working directory (or, for a
    data-parallel job, the script and arguments handed to torchrun)."""

    entrypoint: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = Resources()
    parallelism: Parallelism = Parallelism()
    timeout_s: float = 24 * 3600
    estimated_duration_s: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    max_attempts: int = 3

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["entrypoint"] = list(self.entrypoint)
        return data


_TOP = {
    "entrypoint",
    "params",
    "env",
    "resources",
    "parallelism",
    "timeout_s",
    "estimated_duration_s",
    "labels",
    "max_attempts",
}


# Integers are stored in 32-bit columns (max_attempts) or compared with them; larger
# values are mistakes, and an int too big for a float would raise OverflowError.
_MAX_INTEGER = 2**31 - 1
_MAX_NUMBER = 1e15


def _number(
    raw: Any,
    path: str,
    errors: dict[str, str],
    *,
    minimum: float,
    integer: bool = False,
    maximum: float | None = None,
) -> Any:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or (isinstance(raw, float) and not math.isfinite(raw)):
        errors[path] = f"must be a {'whole ' if integer else ''}number"
        return None
    if integer and int(raw) != raw:
        errors[path] = "must be a whole number"
        return None
    if raw < minimum:
        errors[path] = f"must be at least {minimum:g}"
        return None
    maximum = maximum if maximum is not None else (_MAX_INTEGER if integer else _MAX_NUMBER)
    if raw > maximum:
        errors[path] = f"must be at most {maximum:.15g}"
        return None
    return int(raw) if integer else float(raw)


def _object(raw: dict[str, Any], key: str, errors: dict[str, str]) -> dict[str, Any] | None:
    """The sub-object at ``key`` (absent or null means empty); ``None`` when it is not an object."""
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors[f"spec.{key}"] = "must be an object"
        return None
    return value


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _string_map(raw: Any, path: str, errors: dict[str, str], *, environment: bool = False) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        errors[path] = "must be an object of strings"
        return {}
    if environment:
        # The worker's exec would refuse these only when the job starts, on every attempt.
        bad = sorted(k for k, v in raw.items() if not _ENV_NAME.fullmatch(k) or "\x00" in v)
        if bad:
            errors[path] = (
                f"{bad[0]!r} is not a valid environment variable name (letters, digits, _) or its value has a NUL"
            )
            return {}
    return dict(raw)


def parse_spec(raw: Any) -> JobSpec:
    """Validate a spec; raise ``SpecError`` naming every bad field."""
    errors: dict[str, str] = {}
    if not isinstance(raw, dict):
        raise SpecError({"spec": "must be an object"})
    for key in sorted(set(raw) - _TOP):
        errors[f"spec.{key}"] = "unknown field"
    entrypoint = raw.get("entrypoint")
    if not isinstance(entrypoint, list) or not entrypoint or not all(isinstance(a, str) and a for a in entrypoint):
        errors["spec.entrypoint"] = "must be a non-empty list of strings (an argv)"
        entrypoint = ["?"]
    elif any("\x00" in a for a in entrypoint):
        errors["spec.entrypoint"] = "must not contain NUL characters"
        entrypoint = ["?"]
    params = _object(raw, "params", errors) or {}
    resources_raw = _object(raw, "resources", errors)
    resources = Resources()
    if resources_raw is not None:
        for key in sorted(set(resources_raw) - {"gpus", "gpu_type", "gpu_memory_mb", "cpus", "memory_mb"}):
            errors[f"spec.resources.{key}"] = "unknown field"
        gpu_type = resources_raw.get("gpu_type")
        if gpu_type is not None and (not isinstance(gpu_type, str) or not gpu_type.strip()):
            errors["spec.resources.gpu_type"] = "must be a GPU type name such as A100"
            gpu_type = None
        gpu_memory = resources_raw.get("gpu_memory_mb")
        resources = Resources(
            gpus=_number(resources_raw.get("gpus", 0), "spec.resources.gpus", errors, minimum=0, integer=True) or 0,
            gpu_type=gpu_type,
            gpu_memory_mb=None
            if gpu_memory is None
            else _number(gpu_memory, "spec.resources.gpu_memory_mb", errors, minimum=1, integer=True),
            cpus=_number(resources_raw.get("cpus", 1), "spec.resources.cpus", errors, minimum=0) or 0.0,
            memory_mb=_number(
                resources_raw.get("memory_mb", 1024), "spec.resources.memory_mb", errors, minimum=0, integer=True
            )
            or 0,
        )
    parallel_raw = _object(raw, "parallelism", errors)
    parallelism = Parallelism()
    if parallel_raw is not None:
        for key in sorted(set(parallel_raw) - {"mode", "processes_per_node", "nodes"}):
            errors[f"spec.parallelism.{key}"] = "unknown field"
        mode = parallel_raw.get("mode", "none")
        if mode not in PARALLELISM_MODES:
            errors["spec.parallelism.mode"] = f"must be one of {', '.join(PARALLELISM_MODES)}"
            mode = "none"
        parallelism = Parallelism(
            mode=mode,
            processes_per_node=_number(
                parallel_raw.get("processes_per_node", 1),
                "spec.parallelism.processes_per_node",
                errors,
                minimum=1,
                integer=True,
            )
            or 1,
            nodes=_number(parallel_raw.get("nodes", 1), "spec.parallelism.nodes", errors, minimum=1, integer=True) or 1,
        )
    timeout = _number(raw.get("timeout_s", 24 * 3600), "spec.timeout_s", errors, minimum=1)
    estimate_raw = raw.get("estimated_duration_s")
    estimate = None if estimate_raw is None else _number(estimate_raw, "spec.estimated_duration_s", errors, minimum=0)
    attempts = _number(raw.get("max_attempts", 3), "spec.max_attempts", errors, minimum=1, integer=True)
    env = _string_map(raw.get("env"), "spec.env", errors, environment=True)
    labels = _string_map(raw.get("labels"), "spec.labels", errors)
    if errors:
        raise SpecError(errors)
    return JobSpec(
        entrypoint=tuple(entrypoint),
        params=params,
        env=env,
        resources=resources,
        parallelism=parallelism,
        timeout_s=timeout or 24 * 3600,
        estimated_duration_s=estimate,
        labels=labels,
        max_attempts=attempts or 3,
    )
