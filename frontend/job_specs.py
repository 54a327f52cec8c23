"""A job's spec in words for the job page: the command, the resources, the parallelism
and the limits. Plain Python over the stored spec (``JobSpec.to_dict()``); a part that
is missing or malformed is left out, never an error (the full JSON is on the page too).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from frontend.templatetags.modelgate_ui import duration


def _plural(count: float, word: str, plural: str = "") -> str:
    shown = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{shown} {word if count == 1 else plural or word + 's'}"


def _resources(resources: dict[str, Any]) -> str:
    parts = []
    gpus = resources.get("gpus") or 0
    if gpus:
        extra = [str(resources["gpu_type"])] if resources.get("gpu_type") else []
        if resources.get("gpu_memory_mb"):
            extra.append(f"≥ {resources['gpu_memory_mb']} MiB each")
        parts.append(_plural(gpus, "GPU") + (f" ({', '.join(extra)})" if extra else ""))
    else:
        parts.append("no GPU")
    if isinstance(resources.get("cpus"), int | float):
        parts.append(_plural(float(resources["cpus"]), "CPU"))
    if isinstance(resources.get("memory_mb"), int):
        parts.append(f"{resources['memory_mb']} MiB memory")
    return " · ".join(parts)


def _parallelism(parallelism: dict[str, Any]) -> str:
    mode = parallelism.get("mode") or "none"
    if mode == "none":
        return "none (one process)"
    nodes = parallelism.get("nodes") or 1
    per_node = parallelism.get("processes_per_node") or 1
    return f"{mode}: {_plural(per_node, 'process', 'processes')} per node × {_plural(nodes, 'node')}"


def _seconds(value: Any) -> str:
    return duration(float(value)) if isinstance(value, int | float) else ""


def spec_summary(spec: Any) -> list[tuple[str, str]]:
    """``[(label, text)]``: Command, Resources, Parallelism, Parameters, Labels, Timeout,
    Expected duration and Attempts, as far as the spec has them."""
    if not isinstance(spec, dict):
        return []
    rows: list[tuple[str, str]] = []
    entrypoint = spec.get("entrypoint")
    if isinstance(entrypoint, list) and entrypoint:
        rows.append(("Command", shlex.join(str(part) for part in entrypoint)))
    if isinstance(spec.get("resources"), dict):
        rows.append(("Resources", _resources(spec["resources"])))
    if isinstance(spec.get("parallelism"), dict):
        rows.append(("Parallelism", _parallelism(spec["parallelism"])))
    if spec.get("params"):
        text = json.dumps(spec["params"], sort_keys=True, ensure_ascii=False)
        rows.append(("Parameters", text if len(text) <= 300 else text[:299] + "…"))
    if isinstance(spec.get("labels"), dict) and spec["labels"]:
        rows.append(("Needs labels", ", ".join(f"{k}={v}" for k, v in sorted(spec["labels"].items()))))
    if timeout := _seconds(spec.get("timeout_s")):
        rows.append(("Timeout", timeout))
    if expected := _seconds(spec.get("estimated_duration_s")):
        rows.append(("Expected duration", expected))
    if isinstance(spec.get("max_attempts"), int):
        rows.append(("Attempts allowed", str(spec["max_attempts"])))
    return rows
