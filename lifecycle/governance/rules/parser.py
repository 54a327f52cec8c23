"""Policy JSON in, ``Policy`` out: every problem reported at once, with its path and a hint."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeAlias, cast

from lifecycle.governance.rules.base import BaseRule
from lifecycle.governance.rules.errors import PolicyError
from lifecycle.governance.rules.formatting import format_number
from lifecycle.governance.rules.metric_rules import BeatsChampionRule, MetricThresholdRule
from lifecycle.governance.rules.policy import Policy, Rule
from lifecycle.governance.rules.process_rules import (
    ApprovalsRule,
    CanarySoakRule,
    MaxEvaluationAgeRule,
    RequiredArtifactsRule,
)
from lifecycle.governance.rules.schema_rules import InputSchemaRule
from lifecycle.governance.rules.update_rules import (
    LATENCY_PERCENTILES,
    MaxArtifactSizeRule,
    MaxLatencyRule,
    MaxMemoryRule,
    MaxMetricDropRule,
)
from lifecycle.governance.rules.vocabulary import (
    GATED_STAGES,
    MAX_APPROVALS,
    METRIC_NAME_RE,
    OPERATORS,
    ROLE_RANK,
    ROLES,
    STAGES,
)
from lifecycle.metric_direction import default_direction

_INVALID: Any = object()


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(value: object) -> str:
    return f"{_show(value)} ({_json_type(value)})"


def _got(value: object) -> str:
    return f"got {_describe(value)}"


def _name(value: object) -> str:
    """A string as-is (quoted); anything else with its JSON type, since that is the mistake."""
    return _show(value) if isinstance(value, str) else _describe(value)


def _suggest(word: object, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Errors:
    """Collects ``{"field", "message"}`` entries so one pass reports every problem."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> Any:
        self.items.append({"field": field, "message": message})
        return _INVALID


_Parser: TypeAlias = Callable[[object, str, str, _Errors], Any]


def _parse_metric(value: object, name: str, path: str, errors: _Errors) -> Any:
    if not isinstance(value, str):
        return errors.add(path, f"{name} must be a metric name (a string), {_got(value)}")
    if not value.strip():
        return errors.add(path, f"{name} must not be empty, got {value!r}")
    if not METRIC_NAME_RE.fullmatch(value):
        return errors.add(
            path,
            f"invalid metric name {_show(value)}; use 1-250 letters, digits, spaces or _ . - /",
        )
    return value


def _parse_op(value: object, name: str, path: str, errors: _Errors) -> Any:
    if not isinstance(value, str) or value not in OPERATORS:
        return errors.add(path, f"unknown operator {_name(value)}; expected one of {', '.join(OPERATORS)}")
    return value


def _number_parser(minimum: float | None = None, *, strict: bool = False) -> _Parser:
    """A parser for finite numbers, optionally bounded below (``strict``: exclusive)."""

    def parse(value: object, name: str, path: str, errors: _Errors) -> Any:
        # bool is an int subclass in Python, but `true` is never a meaningful threshold.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return errors.add(path, f"{name} must be a number, {_got(value)}")
        try:
            number = float(value)
        except OverflowError:
            return errors.add(path, f"{name} is too large, got {_show(value)}")
        if not math.isfinite(number):
            return errors.add(path, f"{name} must be a finite number, got {_show(value)}")
        if minimum is not None:
            if strict and number <= minimum:
                return errors.add(path, f"{name} must be > {format_number(minimum, 17)}, got {_show(value)}")
            if not strict and number < minimum:
                return errors.add(path, f"{name} must be >= {format_number(minimum, 17)}, got {_show(value)}")
        return number

    return parse


def _parse_count(value: object, name: str, path: str, errors: _Errors) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        return errors.add(path, f"{name} must be a whole number, {_got(value)}")
    if not 1 <= value <= MAX_APPROVALS:
        return errors.add(path, f"{name} must be between 1 and {MAX_APPROVALS}, got {_show(value)}")
    return value


def _parse_role(value: object, name: str, path: str, errors: _Errors) -> Any:
    if not isinstance(value, str) or value not in ROLE_RANK:
        return errors.add(
            path, f"unknown role {_name(value)}; expected one of {', '.join(ROLES)}{_suggest(value, ROLES)}"
        )
    return value


def _parse_direction(value: object, name: str, path: str, errors: _Errors) -> Any:
    if value not in ("higher", "lower"):
        return errors.add(path, f"unknown direction {_name(value)}; expected 'higher' or 'lower'")
    return value


def _parse_versus(value: object, name: str, path: str, errors: _Errors) -> Any:
    if value not in ("parent", "champion"):
        return errors.add(path, f"unknown comparison {_name(value)}; expected 'parent' or 'champion'")
    return value


def _parse_percentile(value: object, name: str, path: str, errors: _Errors) -> Any:
    if isinstance(value, bool) or value not in LATENCY_PERCENTILES:
        expected = ", ".join(str(p) for p in LATENCY_PERCENTILES)
        return errors.add(path, f"{name} must be one of {expected} (the percentiles measured), {_got(value)}")
    return int(cast("float", value))


def _parse_flag(value: object, name: str, path: str, errors: _Errors) -> Any:
    if not isinstance(value, bool):
        return errors.add(path, f"{name} must be true or false, {_got(value)}")
    return value


def _string_list_parser(
    what: str,
    check: Callable[[str, str, _Errors], bool] | None = None,
    *,
    empty: bool = False,
) -> _Parser:
    """A parser for a list of distinct strings, non-empty unless ``empty``; ``check`` vets
    each one."""

    def parse(value: object, name: str, path: str, errors: _Errors) -> Any:
        if not isinstance(value, (list, tuple)) or (not value and not empty):
            kind = "list" if empty else "non-empty list"
            return errors.add(path, f"{name} must be a {kind} of {what}s, {_got(value)}")
        seen: list[str] = []
        ok = True
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if not isinstance(item, str) or not item.strip():
                errors.add(item_path, f"each {what} must be a non-empty string, {_got(item)}")
                ok = False
            elif check is not None and not check(item, item_path, errors):
                ok = False
            elif item in seen:
                errors.add(item_path, f"duplicate {what} {item!r}")
                ok = False
            else:
                seen.append(item)
        return tuple(seen) if ok else _INVALID

    return parse


def _check_stage(stage: str, path: str, errors: _Errors) -> bool:
    if stage in GATED_STAGES:
        return True
    expected = ", ".join(GATED_STAGES)
    if stage in STAGES:
        errors.add(path, f"stage {stage!r} cannot be gated by a policy; expected one of {expected}")
    else:
        errors.add(path, f"unknown stage {_show(stage)}; expected one of {expected}{_suggest(stage, GATED_STAGES)}")
    return False


class _Field(NamedTuple):
    parse: _Parser
    required: bool


_METRIC = _Field(_parse_metric, required=True)
_STAGES_FIELD = _Field(_string_list_parser("stage", _check_stage), required=False)

# Per rule type: its class and its JSON fields in canonical order (``type`` is implicit,
# ``stages`` is common to all and always last).
_RULE_SPECS: dict[str, tuple[type[BaseRule], dict[str, _Field]]] = {
    cls.type: (cls, {**own, "stages": _STAGES_FIELD})
    for cls, own in (
        (
            MetricThresholdRule,
            {"metric": _METRIC, "op": _Field(_parse_op, True), "value": _Field(_number_parser(), True)},
        ),
        (
            BeatsChampionRule,
            {
                "metric": _METRIC,
                "min_delta": _Field(_number_parser(0.0), False),
                "direction": _Field(_parse_direction, False),
            },
        ),
        (ApprovalsRule, {"count": _Field(_parse_count, True), "role": _Field(_parse_role, False)}),
        (MaxEvaluationAgeRule, {"days": _Field(_number_parser(0.0, strict=True), True)}),
        (RequiredArtifactsRule, {"items": _Field(_string_list_parser("artifact name"), True)}),
        (CanarySoakRule, {"minutes": _Field(_number_parser(0.0, strict=True), True)}),
        (
            MaxMetricDropRule,
            {
                "metric": _METRIC,
                "vs": _Field(_parse_versus, False),
                "value": _Field(_number_parser(0.0), True),
                "direction": _Field(_parse_direction, False),
            },
        ),
        (
            MaxLatencyRule,
            {
                "percentile": _Field(_parse_percentile, False),
                "value": _Field(_number_parser(0.0, strict=True), True),
                "batch": _Field(_parse_flag, False),
            },
        ),
        (MaxMemoryRule, {"value": _Field(_number_parser(0.0, strict=True), True)}),
        (MaxArtifactSizeRule, {"value": _Field(_number_parser(0.0, strict=True), True)}),
        (
            InputSchemaRule,
            {
                "columns": _Field(_string_list_parser("column name"), True),
                "optional": _Field(_string_list_parser("column name", empty=True), False),
            },
        ),
    )
}

RULE_TYPES: tuple[str, ...] = tuple(_RULE_SPECS)

# Keys of a policy that a later stage validates (the monitoring stage's "monitors" list,
# through the validator it installs); the gates pass them by.
LATER_STAGE_KEYS: tuple[str, ...] = ("monitors",)


def _parse_rule(raw: object, path: str, errors: _Errors) -> Rule | None:
    if not isinstance(raw, Mapping):
        errors.add(path, f"each rule must be an object, {_got(raw)}")
        return None
    kinds = ", ".join(RULE_TYPES)
    if "type" not in raw:
        errors.add(f"{path}.type", f"missing required field 'type'; expected one of {kinds}")
        return None
    kind = raw["type"]
    if not isinstance(kind, str) or kind not in _RULE_SPECS:
        # The other keys cannot be judged without knowing the type, so stop here.
        errors.add(
            f"{path}.type", f"unknown rule type {_name(kind)}; expected one of {kinds}{_suggest(kind, RULE_TYPES)}"
        )
        return None

    cls, spec = _RULE_SPECS[kind]
    before = len(errors.items)
    for key in raw:
        if key != "type" and key not in spec:
            allowed = ", ".join(["type", *spec])
            errors.add(
                f"{path}.{key}",
                f"unknown key {_show(key)} for a {kind} rule; allowed keys are {allowed}{_suggest(key, spec)}",
            )
    values: dict[str, Any] = {}
    for name, field in spec.items():
        field_path = f"{path}.{name}"
        if name not in raw:
            if field.required:
                errors.add(field_path, f"missing required field {name!r} for a {kind} rule")
            continue
        parsed = field.parse(raw[name], name, field_path, errors)
        if parsed is not _INVALID:
            values[name] = parsed
    if len(errors.items) != before:
        return None
    if cls in (BeatsChampionRule, MaxMetricDropRule) and "direction" not in values:
        values["direction"] = default_direction(values["metric"])
    return cast("Rule", cls(**values))


def parse_policy(raw: object) -> Policy:
    """Validate policy JSON and return it as a ``Policy``.

    ``None`` and ``{}`` are the empty policy. Otherwise ``raw`` must be an object whose
    only key is ``rules``, a list of rule objects. Every problem is collected and raised
    together as one ``PolicyError``. An already-parsed ``Policy`` is returned unchanged.
    """
    if raw is None:
        return Policy()
    if isinstance(raw, Policy):
        return raw
    errors = _Errors()
    if not isinstance(raw, Mapping):
        errors.add("policy", f"a policy must be an object with a 'rules' list, {_got(raw)}")
        raise PolicyError(errors.items)
    for key in raw:
        if key not in ("rules", "pii") and key not in LATER_STAGE_KEYS:
            hint = _suggest(key, ["rules", "pii"])
            errors.add(str(key), f"unknown key {_show(key)}; a policy may only contain 'rules' and 'pii'{hint}")
    pii = _parse_pii(raw.get("pii", []), errors)
    rules_raw = raw.get("rules", [])
    rules: list[Rule] = []
    if not isinstance(rules_raw, (list, tuple)):
        errors.add("rules", f"rules must be a list of rule objects, {_got(rules_raw)}")
    else:
        for i, rule_raw in enumerate(rules_raw):
            rule = _parse_rule(rule_raw, f"rules[{i}]", errors)
            if rule is not None:
                rules.append(rule)
    if errors.items:
        raise PolicyError(errors.items)
    return Policy(rules=tuple(rules), pii=pii)


def _parse_pii(raw: object, errors: _Errors) -> tuple[str, ...]:
    """The personal-data columns: a list of distinct non-empty column names."""
    if not isinstance(raw, (list, tuple)):
        errors.add("pii", f"pii must be a list of column names, {_got(raw)}")
        return ()
    names: list[str] = []
    for i, name in enumerate(raw):
        if not isinstance(name, str) or not name.strip():
            errors.add(f"pii[{i}]", f"a column name must be a non-empty string, {_got(name)}")
        elif name not in names:
            names.append(name)
    return tuple(names)
