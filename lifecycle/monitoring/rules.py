"""Monitor rules: the ``"monitors"`` list of a model's policy, parsed, validated and judged.

A rule watches the windows of a deployed version and names what happens when it fires::

    {"type": "drift", "features": "*", "statistic": "psi", "op": ">", "value": 0.2,
     "windows": 3, "action": "rollback"}
    {"type": "live_metric", "metric": "f1", "op": "<", "value": 0.85, "min_labels": 200}
    {"type": "latency_p95_ms", "op": ">", "value": 250}
    {"type": "error_rate", "op": ">", "value": 0.05, "action": "alert"}
    {"type": "drift", "statistic": "psi", "action": "derive", "method": "incremental",
     "params": {"data": {"source": "predictions", "days": 7}}}

A rule fires when each of its last ``windows`` windows breaches it; a window with fewer
rows (or labels) than the rule's minimum does not count as a breach. Parsing reports every
problem at once as a ``PolicyError`` whose fields read ``monitors[1].statistic``, like the
gate rules'. Plain Python, no Django.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from lifecycle.governance.rules import OPERATORS, PolicyError
from lifecycle.monitoring.drift import STATISTICS

ACTIONS: tuple[str, ...] = ("alert", "rollback", "retrain", "derive")
# The update stage's derivation methods a ``derive`` action may name (a plain copy of
# lifecycle.derivations.choices.DerivationMethod, which sits above this stage; a test
# checks they agree). Their parameters are checked by the validator the update stage
# installs (``lifecycle.monitoring.policies``).
DERIVE_METHODS: tuple[str, ...] = ("onnx", "quantize", "prune", "distill", "incremental")
ALL_FEATURES = "*"
MAX_WINDOWS = 100
PREDICTION_FEATURE = "prediction"

# The threshold a drift rule uses when it names only its statistic. Chosen so that a
# stream drawn from the reference itself does not fire over 20 windows of a few hundred
# rows for thirty features (tests/lifecycle/test_monitoring_drift.py shows it).
DEFAULT_THRESHOLDS: dict[str, tuple[str, float]] = {
    "psi": (">", 0.2),
    "ks": (">", 0.2),
    "ks_pvalue": ("<", 1e-4),
    "chi2_pvalue": ("<", 1e-4),
    "js": (">", 0.1),
    "missing_share": (">", 0.1),
    "out_of_range_share": (">", 0.1),
}


@dataclass(frozen=True)
class WindowSummary:
    """What one window of live traffic showed, as the rules read it.

    ``statistics`` is ``{feature: {statistic: value}}`` with the prediction under
    ``"prediction"``; ``metrics`` are computed over the window's labelled rows.
    """

    rows: int
    statistics: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    labels: int = 0
    latency_p95_ms: float | None = None
    error_rate: float | None = None


@dataclass(frozen=True)
class Verdict:
    """A rule judged over the latest windows: firing or not, and why, in a sentence."""

    firing: bool
    detail: str
    observed: float | None = None
    features: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class MonitorRule:
    """Fields every monitor shares: how many windows in a row, and the action."""

    type: ClassVar[str]
    op: str
    value: float
    windows: int = 3
    action: str = "alert"
    # Only for ``action: derive``: the update the alert asks for, by method and parameters.
    method: str | None = None
    params: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _DERIVE_FIELDS and self.action != "derive":
                continue
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, float) and value.is_integer() and f.name != "value":
                value = int(value)
            out[f.name] = value
        return out

    def breach(self, window: WindowSummary) -> tuple[float | None, tuple[str, ...]]:
        """The observed value when ``window`` breaches this rule (and the features that
        did, for drift), or ``(None, ())``."""
        raise TypeError(f"{type(self).__name__} does not judge windows")

    def describe(self) -> str:
        raise TypeError(f"{type(self).__name__} cannot describe itself")

    def evaluate(self, windows: Sequence[WindowSummary]) -> Verdict:
        """Judge the latest windows, oldest first; fires when the last ``self.windows`` all breach."""
        recent = list(windows)[-self.windows :]
        if len(recent) < self.windows:
            return Verdict(False, f"{self.describe()}: {len(recent)} of {self.windows} windows so far")
        breaches = [self.breach(w) for w in recent]
        observed, features = breaches[-1]
        if all(value is not None for value, _ in breaches):
            return Verdict(
                True,
                f"{self.describe()}: breached in {self.windows} windows in a row, latest {observed:.4g}",
                observed,
                features,
            )
        streak = 0
        for value, _ in reversed(breaches):
            if value is None:
                break
            streak += 1
        return Verdict(False, f"{self.describe()}: breached in {streak} of the last {self.windows} windows", observed)


def _compare(op: str, observed: float | None, value: float) -> bool:
    return observed is not None and math.isfinite(observed) and OPERATORS[op](observed, value)


@dataclass(frozen=True, kw_only=True)
class DriftMonitor(MonitorRule):
    """A drift statistic of any of the chosen features (``"*"``: all) against a threshold."""

    type: ClassVar[str] = "drift"
    features: str | tuple[str, ...] = ALL_FEATURES
    statistic: str = "psi"
    min_rows: int = 100

    def describe(self) -> str:
        which = "any feature" if self.features == ALL_FEATURES else ", ".join(self.features)
        return f"{self.statistic} {self.op} {self.value:g} on {which}"

    def breach(self, window: WindowSummary) -> tuple[float | None, tuple[str, ...]]:
        if window.rows < self.min_rows:
            return None, ()
        names = (
            [n for n in window.statistics if n != PREDICTION_FEATURE]
            if self.features == ALL_FEATURES
            else list(self.features)
        )
        hits = [
            (name, window.statistics[name].get(self.statistic))
            for name in names
            if name in window.statistics and _compare(self.op, window.statistics[name].get(self.statistic), self.value)
        ]
        if not hits:
            return None, ()
        # The most extreme value on the rule's side stands for the window.
        pick = max if self.op in (">", ">=") else min
        return pick(float(v) for _, v in hits if v is not None), tuple(name for name, _ in hits)


@dataclass(frozen=True, kw_only=True)
class LiveMetricMonitor(MonitorRule):
    """A metric over the window's labelled predictions against a threshold."""

    type: ClassVar[str] = "live_metric"
    metric: str
    min_labels: int = 100
    windows: int = 1

    def describe(self) -> str:
        return f"live {self.metric} {self.op} {self.value:g}"

    def breach(self, window: WindowSummary) -> tuple[float | None, tuple[str, ...]]:
        if window.labels < self.min_labels:
            return None, ()
        observed = window.metrics.get(self.metric)
        return (float(observed), ()) if observed is not None and _compare(self.op, observed, self.value) else (None, ())


@dataclass(frozen=True, kw_only=True)
class LatencyMonitor(MonitorRule):
    """The window's 95th-percentile latency, in milliseconds, against a threshold."""

    type: ClassVar[str] = "latency_p95_ms"
    min_rows: int = 20

    def describe(self) -> str:
        return f"latency p95 {self.op} {self.value:g} ms"

    def breach(self, window: WindowSummary) -> tuple[float | None, tuple[str, ...]]:
        if window.rows < self.min_rows or not _compare(self.op, window.latency_p95_ms, self.value):
            return None, ()
        return window.latency_p95_ms, ()


@dataclass(frozen=True, kw_only=True)
class ErrorRateMonitor(MonitorRule):
    """The window's share of failed calls against a threshold."""

    type: ClassVar[str] = "error_rate"
    min_rows: int = 20

    def describe(self) -> str:
        return f"error rate {self.op} {self.value:g}"

    def breach(self, window: WindowSummary) -> tuple[float | None, tuple[str, ...]]:
        if window.rows < self.min_rows or not _compare(self.op, window.error_rate, self.value):
            return None, ()
        return window.error_rate, ()


MONITOR_CLASSES: dict[str, type[MonitorRule]] = {
    cls.type: cls for cls in (DriftMonitor, LiveMetricMonitor, LatencyMonitor, ErrorRateMonitor)
}
MONITOR_TYPES: tuple[str, ...] = tuple(MONITOR_CLASSES)


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append({"field": path, "message": message})


def _hint(word: object, choices: Sequence[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(raw: object, path: str, errors: _Errors, *, minimum: float | None = None) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(float(raw)):
        errors.add(path, f"must be a finite number, got {raw!r}")
        return None
    if minimum is not None and float(raw) < minimum:
        errors.add(path, f"must be >= {minimum:g}, got {raw!r}")
        return None
    return float(raw)


def _count(raw: object, path: str, errors: _Errors, *, minimum: int, maximum: int) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, int) or not minimum <= raw <= maximum:
        errors.add(path, f"must be a whole number from {minimum} to {maximum}, got {raw!r}")
        return None
    return raw


def _choice(raw: object, path: str, errors: _Errors, choices: Sequence[str], what: str) -> str | None:
    if not isinstance(raw, str) or raw not in choices:
        errors.add(path, f"unknown {what} {raw!r}; expected one of {', '.join(choices)}{_hint(raw, choices)}")
        return None
    return raw


def _features(raw: object, path: str, errors: _Errors) -> str | tuple[str, ...] | None:
    if raw == ALL_FEATURES:
        return ALL_FEATURES
    if (
        not isinstance(raw, (list, tuple))
        or not raw
        or not all(isinstance(f, str) and f.strip() for f in raw)
        or len(set(raw)) != len(raw)
    ):
        errors.add(path, f"must be '*' or a non-empty list of distinct feature names, got {raw!r}")
        return None
    return tuple(raw)


_COMMON = ("op", "value", "windows", "action", "method", "params")
_DERIVE_FIELDS = ("method", "params")
_OWN: dict[str, tuple[str, ...]] = {
    "drift": ("features", "statistic", "min_rows"),
    "live_metric": ("metric", "min_labels"),
    "latency_p95_ms": ("min_rows",),
    "error_rate": ("min_rows",),
}


def _derive_fields(raw: Mapping[str, Any], path: str, errors: _Errors, values: dict[str, Any]) -> None:
    if raw.get("action") != "derive":
        for key in _DERIVE_FIELDS:
            if key in raw:
                errors.add(f"{path}.{key}", f"only a derive action takes {key!r}")
        return
    values["method"] = _choice(raw.get("method"), f"{path}.method", errors, DERIVE_METHODS, "derivation method")
    params = raw.get("params", {})
    if not isinstance(params, Mapping):
        errors.add(f"{path}.params", f"must be an object of the method's parameters, got {params!r}")
        return
    values["params"] = dict(params)


def _parse_monitor(raw: object, path: str, errors: _Errors) -> MonitorRule | None:
    if not isinstance(raw, Mapping):
        errors.add(path, f"each monitor must be an object, got {raw!r}")
        return None
    kind = _choice(raw.get("type"), f"{path}.type", errors, MONITOR_TYPES, "monitor type")
    if kind is None:
        return None
    before = len(errors.items)
    allowed = ("type", *_OWN[kind], *_COMMON)
    for key in raw:
        if key not in allowed:
            errors.add(
                f"{path}.{key}",
                f"unknown key {key!r} for a {kind} monitor; allowed keys are {', '.join(allowed)}{_hint(key, allowed)}",
            )
    values: dict[str, Any] = {}
    default_op: str | None = ">"
    default_value: float | None = None
    if kind == "drift":
        statistic = _choice(raw.get("statistic", "psi"), f"{path}.statistic", errors, STATISTICS, "statistic")
        if statistic is not None:
            values["statistic"] = statistic
            default_op, default_value = DEFAULT_THRESHOLDS.get(statistic, (None, None))
        if "features" in raw:
            features = _features(raw["features"], f"{path}.features", errors)
            if features is not None:
                values["features"] = features
    if kind == "live_metric":
        default_op = None
        metric = raw.get("metric")
        if not isinstance(metric, str) or not metric.strip():
            errors.add(f"{path}.metric", f"missing or empty metric name, got {metric!r}")
        else:
            values["metric"] = metric
        if "min_labels" in raw:
            values["min_labels"] = _count(raw["min_labels"], f"{path}.min_labels", errors, minimum=1, maximum=10**7)
    if "min_rows" in raw and "min_rows" in _OWN[kind]:
        values["min_rows"] = _count(raw["min_rows"], f"{path}.min_rows", errors, minimum=1, maximum=10**7)
    if "op" in raw:
        values["op"] = _choice(raw["op"], f"{path}.op", errors, tuple(OPERATORS), "operator")
    elif default_op is None:
        errors.add(f"{path}.op", f"missing required field 'op' for a {kind} monitor")
    else:
        values["op"] = default_op
    if "value" in raw:
        values["value"] = _number(raw["value"], f"{path}.value", errors)
    elif default_value is None:
        errors.add(f"{path}.value", f"missing required field 'value' for a {kind} monitor")
    else:
        values["value"] = default_value
    if "windows" in raw:
        values["windows"] = _count(raw["windows"], f"{path}.windows", errors, minimum=1, maximum=MAX_WINDOWS)
    if "action" in raw:
        values["action"] = _choice(raw["action"], f"{path}.action", errors, ACTIONS, "action")
    _derive_fields(raw, path, errors, values)
    if len(errors.items) != before:
        return None
    return MONITOR_CLASSES[kind](**values)


def parse_monitors(raw: object) -> tuple[MonitorRule, ...]:
    """Validate a policy's ``monitors`` list; ``None`` is no monitors. Every problem is
    raised together as one ``PolicyError`` naming ``monitors[i].field``."""
    if raw is None:
        return ()
    errors = _Errors()
    if not isinstance(raw, (list, tuple)):
        raise PolicyError([{"field": "monitors", "message": f"monitors must be a list of objects, got {raw!r}"}])
    rules = [_parse_monitor(item, f"monitors[{i}]", errors) for i, item in enumerate(raw)]
    if errors.items:
        raise PolicyError(errors.items)
    return tuple(rule for rule in rules if rule is not None)


def monitors_to_dict(rules: Sequence[MonitorRule]) -> list[dict[str, Any]]:
    """The canonical JSON form: every default filled in."""
    return [rule.to_dict() for rule in rules]
