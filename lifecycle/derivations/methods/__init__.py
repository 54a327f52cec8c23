"""How a version is turned into a derived one: the methods of the update stage. Pure (no Django).

``derive(method, parent, params, data)`` returns the derived model and what the method
did; ``params_check(method, params)`` validates the parameters before a job is queued,
naming every bad field. One module per method (``onnx_export``, ``quantize``, ``prune``,
``distill``, ``incremental``), models and predictions in ``lifecycle.evaluation.artifacts``,
the figures in ``lifecycle.evaluation.measure`` (shared with the evaluation job). The job that runs them on a worker is ``lifecycle.derivations.deriver``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lifecycle.derivations.methods import distill, incremental, onnx_export, prune, quantize
from lifecycle.evaluation.artifacts import Artifact

METHODS: tuple[str, ...] = ("onnx", "quantize", "prune", "distill", "incremental")
DEFAULTS: dict[str, dict[str, Any]] = {
    "onnx": onnx_export.DEFAULTS,
    "quantize": quantize.DEFAULTS,
    "prune": prune.DEFAULTS,
    "distill": distill.DEFAULTS,
    "incremental": {**incremental.DEFAULTS, "dataset": None, "data": None},
}
# Where an incremental update's new rows may come from besides a registered dataset.
DATA_SOURCES: tuple[str, ...] = ("predictions",)
MAX_PREDICTION_DAYS = 365
# Fewer labelled rows than this and the update fails rather than fit on a handful.
PREDICTION_MIN_ROWS = 20


class MethodParamsError(ValueError):
    """Bad parameters of a method: ``errors`` maps ``params.<field>`` to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class Data:
    """The rows a method may use: training and validation splits of the model's dataset,
    and the new rows of an incremental update."""

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    x_new: Any = None
    y_new: Any = None


def _number(value: Any, *, low: float, high: float | None = None, integer: bool = False) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "must be a number"
    if integer and not float(value).is_integer():
        return "must be a whole number"
    if value < low or (high is not None and value > high):
        return f"must be between {low:g} and {high:g}" if high is not None else f"must be at least {low:g}"
    return None


def _data_source(value: Any) -> str | None:
    """``{"source": "predictions", "days": 7, "min_rows": 50}``: the labelled rows of the
    model's prediction log over the last ``days`` days."""
    if not isinstance(value, dict):
        return 'must be an object such as {"source": "predictions", "days": 7}'
    if value.get("source") not in DATA_SOURCES:
        return f"source must be one of {', '.join(DATA_SOURCES)}"
    unknown = sorted(set(value) - {"source", "days", "min_rows"})
    if unknown:
        return f"unknown key {unknown[0]!r}; allowed: source, days, min_rows"
    if "days" not in value:
        return "days is required (how far back to read labelled predictions)"
    problem = _number(value["days"], low=1, high=MAX_PREDICTION_DAYS, integer=True)
    if problem:
        return f"days {problem}"
    if "min_rows" in value:
        problem = _number(value["min_rows"], low=1, high=10_000_000, integer=True)
        if problem:
            return f"min_rows {problem}"
    return None


_CHECKS: dict[str, dict[str, Any]] = {
    "onnx": {"opset": lambda v: _number(v, low=9, high=21, integer=True)},
    "quantize": {
        "backend": lambda v: None if v in quantize.BACKENDS else f"must be one of {', '.join(quantize.BACKENDS)}",
        "per_channel": lambda v: None if isinstance(v, bool) else "must be true or false",
        "opset": lambda v: _number(v, low=9, high=21, integer=True),
    },
    "prune": {"sparsity": lambda v: _number(v, low=0.0, high=0.99)},
    "distill": {
        "student": lambda v: None if v in distill.STUDENTS else f"must be one of {', '.join(distill.STUDENTS)}",
        "max_depth": lambda v: _number(v, low=1, high=64, integer=True),
        "hidden_layer_sizes": lambda v: (
            None
            if isinstance(v, list) and v and all(_number(n, low=1, high=4096, integer=True) is None for n in v)
            else "must be a non-empty list of layer widths (1 to 4096)"
        ),
        "temperature": lambda v: _number(v, low=0.05, high=100),
        "max_iter": lambda v: _number(v, low=1, high=10_000, integer=True),
        "seed": lambda v: _number(v, low=0, integer=True),
    },
    "incremental": {
        "epochs": lambda v: _number(v, low=1, high=1000, integer=True),
        "add_estimators": lambda v: _number(v, low=1, high=10_000, integer=True),
        "lr": lambda v: _number(v, low=1e-8, high=10),
        "batch_size": lambda v: _number(v, low=1, high=1_000_000, integer=True),
        "seed": lambda v: _number(v, low=0, integer=True),
        "dataset": lambda v: None if v is None or (isinstance(v, str) and v.strip()) else "must be a dataset name",
        "data": lambda v: None if v is None else _data_source(v),
    },
}


def params_check(method: str, params: Any) -> dict[str, Any]:
    """The method's parameters with defaults filled in, or ``MethodParamsError``."""
    if method not in METHODS:
        raise MethodParamsError({"method": f"unknown method {method!r}; expected one of {', '.join(METHODS)}"})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise MethodParamsError({"params": "must be an object"})
    errors = {}
    checks = _CHECKS[method]
    for key, value in params.items():
        if key not in checks:
            errors[f"params.{key}"] = f"unknown parameter for {method}; allowed: {', '.join(checks)}"
            continue
        problem = checks[key](value)
        if problem:
            errors[f"params.{key}"] = problem
    if method == "incremental" and params.get("dataset") and params.get("data"):
        errors.setdefault("params.data", "give either a dataset or a data source, not both")
    if errors:
        raise MethodParamsError(errors)
    clean = {**DEFAULTS[method], **params}
    if method == "incremental" and clean.get("data"):
        clean["data"] = {"min_rows": PREDICTION_MIN_ROWS, **clean["data"]}
    return clean


def params_problems(method: str, params: Any) -> dict[str, str]:
    """What ``params_check`` would refuse, as ``{field: problem}`` (empty when fine): for
    validators that report every problem of a document at once (a policy's monitors)."""
    try:
        params_check(method, params)
    except MethodParamsError as exc:
        return exc.errors
    return {}


def derive(method: str, parent: Artifact, params: dict[str, Any], data: Data) -> tuple[Artifact, dict[str, Any]]:
    """Run one method on the parent: the derived model and what the method did."""
    if method == "onnx":
        return onnx_export.derive(parent, params, data.x_val), {}
    if method == "quantize":
        return quantize.derive(parent, params, data.x_val), {}
    if method == "prune":
        return prune.derive(parent, params, data.x_val, data.y_val)
    if method == "distill":
        return distill.derive(parent, params, data.x_train)
    if method == "incremental":
        if data.x_new is None:
            raise ValueError("an incremental update needs new rows")
        return incremental.derive(parent, params, data.x_new, data.y_new)
    raise ValueError(f"unknown method {method!r}")
