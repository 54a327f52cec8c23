"""The model card as data: parse a card, say which fields a complete card still lacks,
the difference between two revisions, and the policy gates its targets seed.

Plain Python, no Django: the service and the API call it, and it is tested without a
database. A card may be saved incomplete (a draft); a malformed one is refused with
every bad field named.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lifecycle.governance.rules.vocabulary import GATED_STAGES, METRIC_NAME_RE, OPERATORS

# Mirrors registry.choices.TaskType; duplicated so this module imports without Django.
TASKS: tuple[str, ...] = ("classification", "regression", "other")
# MLflow's column types (``mlflow.types.DataType``) and ``tensor`` for tensor specs.
COLUMN_TYPES: tuple[str, ...] = (
    "boolean",
    "integer",
    "long",
    "float",
    "double",
    "string",
    "binary",
    "datetime",
    "tensor",
)
DATASET_ROLES: tuple[str, ...] = ("training", "evaluation", "reference")
# The resource budget: what each key bounds, in the unit its name ends with.
BUDGET_KEYS: dict[str, str] = {
    "latency_p95_ms": "95th percentile prediction latency, milliseconds",
    "memory_mb": "serving memory, megabytes",
    "artifact_mb": "model artifact size, megabytes",
}
# The card's fields in the order the API and the Markdown export show them.
FIELDS: tuple[str, ...] = (
    "intended_use",
    "out_of_scope_uses",
    "owner",
    "task",
    "input_schema",
    "output_schema",
    "datasets",
    "success_criteria",
    "risks",
    "fairness",
    "resource_budget",
)
MAX_TEXT = 20000
MAX_ITEMS = 200


def card_empty() -> dict[str, Any]:
    """The card of a model whose design has not started: every field empty."""
    return {
        "intended_use": "",
        "out_of_scope_uses": [],
        "owner": "",
        "task": "",
        "input_schema": [],
        "output_schema": [],
        "datasets": [],
        "success_criteria": [],
        "risks": [],
        "fairness": "",
        "resource_budget": {},
    }


class CardError(ValueError):
    """A malformed card; ``problems`` maps each bad field's path to what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        first = next(iter(problems.items()))
        super().__init__(f"{first[0]}: {first[1]}")
        self.problems = problems


@dataclass
class _Problems:
    items: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.items.setdefault(path, message)


def _text(value: object, path: str, problems: _Problems) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.add(path, "must be a string")
        return ""
    if len(value) > MAX_TEXT:
        problems.add(path, f"must be at most {MAX_TEXT} characters")
        return ""
    return value.strip()


def _list(value: object, path: str, problems: _Problems) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        problems.add(path, "must be a list")
        return []
    if len(value) > MAX_ITEMS:
        problems.add(path, f"must have at most {MAX_ITEMS} entries")
        return []
    return list(value)


def _texts(value: object, path: str, problems: _Problems) -> list[str]:
    out = []
    for i, item in enumerate(_list(value, path, problems)):
        text = _text(item, f"{path}[{i}]", problems)
        if text:
            out.append(text)
    return out


def _object(value: object, path: str, problems: _Problems, keys: Iterable[str]) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        problems.add(path, "must be an object")
        return None
    allowed = list(keys)
    for key in value:
        if key not in allowed:
            problems.add(f"{path}.{key}", f"unknown key; allowed keys are {', '.join(allowed)}")
    return value


def _number(value: object, path: str, problems: _Problems, *, positive: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        problems.add(path, "must be a finite number")
        return None
    if positive and value <= 0:
        problems.add(path, "must be greater than 0")
        return None
    return float(value)


def _columns(value: object, path: str, problems: _Problems) -> list[dict[str, Any]]:
    out = []
    names: set[str] = set()
    for i, item in enumerate(_list(value, path, problems)):
        where = f"{path}[{i}]"
        entry = _object(item, where, problems, ("name", "type", "required"))
        if entry is None:
            continue
        name = _text(entry.get("name"), f"{where}.name", problems)
        kind = entry.get("type")
        if not name:
            problems.add(f"{where}.name", "a column needs a name")
        elif name in names:
            problems.add(f"{where}.name", f"duplicate column {name!r}")
        if kind not in COLUMN_TYPES:
            problems.add(f"{where}.type", f"must be one of {', '.join(COLUMN_TYPES)}")
        required = entry.get("required", True)
        if not isinstance(required, bool):
            problems.add(f"{where}.required", "must be true or false")
        names.add(name)
        out.append({"name": name, "type": kind, "required": required})
    return out


def _datasets(value: object, path: str, problems: _Problems) -> list[dict[str, str]]:
    out = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(_list(value, path, problems)):
        where = f"{path}[{i}]"
        entry = _object(item, where, problems, ("name", "role"))
        if entry is None:
            continue
        name = _text(entry.get("name"), f"{where}.name", problems)
        role = entry.get("role", "training")
        if not name:
            problems.add(f"{where}.name", "a dataset needs the name of one of the team's datasets")
        if role not in DATASET_ROLES:
            problems.add(f"{where}.role", f"must be one of {', '.join(DATASET_ROLES)}")
        if (name, role) in seen:
            problems.add(where, f"dataset {name!r} is listed twice as {role}")
        seen.add((name, role))
        out.append({"name": name, "role": role})
    return out


def _criteria(value: object, path: str, problems: _Problems) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(_list(value, path, problems)):
        where = f"{path}[{i}]"
        entry = _object(item, where, problems, ("metric", "op", "value", "stages"))
        if entry is None:
            continue
        metric = entry.get("metric")
        if not isinstance(metric, str) or not METRIC_NAME_RE.fullmatch(metric):
            problems.add(f"{where}.metric", "must be a metric name: 1-250 letters, digits, spaces or _ . - /")
        op = entry.get("op", ">=")
        if op not in OPERATORS:
            problems.add(f"{where}.op", f"must be one of {', '.join(OPERATORS)}")
        number = _number(entry.get("value"), f"{where}.value", problems)
        criterion: dict[str, Any] = {"metric": metric, "op": op, "value": number}
        if "stages" in entry:
            stages = entry["stages"]
            if (
                not isinstance(stages, (list, tuple))
                or not stages
                or any(stage not in GATED_STAGES for stage in stages)
                or len(set(stages)) != len(stages)
            ):
                problems.add(
                    f"{where}.stages", f"must be a non-empty list of distinct stages among {', '.join(GATED_STAGES)}"
                )
            else:
                criterion["stages"] = list(stages)
        out.append(criterion)
    return out


def _budget(value: object, path: str, problems: _Problems) -> dict[str, float]:
    if value is None:
        return {}
    entry = _object(value, path, problems, BUDGET_KEYS)
    if entry is None:
        return {}
    out = {}
    for key in BUDGET_KEYS:
        if key in entry and entry[key] is not None:
            number = _number(entry[key], f"{path}.{key}", problems, positive=True)
            if number is not None:
                out[key] = number
    return out


def card_parse(raw: object) -> dict[str, Any]:
    """The card in canonical form (every field present, text trimmed), or ``CardError``
    naming every malformed field. Missing fields are empty, not errors: a draft may be
    saved; ``card_missing`` says what completion still needs."""
    problems = _Problems()
    if not isinstance(raw, Mapping):
        raise CardError({"card": "must be an object with the card's fields"})
    for key in raw:
        if key not in FIELDS:
            problems.add(str(key), f"unknown card field; the fields are {', '.join(FIELDS)}")
    card = card_empty()
    card["intended_use"] = _text(raw.get("intended_use"), "intended_use", problems)
    card["out_of_scope_uses"] = _texts(raw.get("out_of_scope_uses"), "out_of_scope_uses", problems)
    card["owner"] = _text(raw.get("owner"), "owner", problems)
    task = _text(raw.get("task"), "task", problems)
    if task and task not in TASKS:
        problems.add("task", f"must be one of {', '.join(TASKS)}")
    card["task"] = task
    card["input_schema"] = _columns(raw.get("input_schema"), "input_schema", problems)
    card["output_schema"] = _columns(raw.get("output_schema"), "output_schema", problems)
    card["datasets"] = _datasets(raw.get("datasets"), "datasets", problems)
    card["success_criteria"] = _criteria(raw.get("success_criteria"), "success_criteria", problems)
    card["risks"] = _texts(raw.get("risks"), "risks", problems)
    card["fairness"] = _text(raw.get("fairness"), "fairness", problems)
    card["resource_budget"] = _budget(raw.get("resource_budget"), "resource_budget", problems)
    if problems.items:
        raise CardError(problems.items)
    return card


def card_missing(card: Mapping[str, Any]) -> list[str]:
    """The fields a complete card still lacks, by name, in card order (budget keys as
    ``resource_budget.<key>``). A complete card has none."""
    missing = [name for name in FIELDS if name != "resource_budget" and not card.get(name)]
    budget = card.get("resource_budget") or {}
    missing += [f"resource_budget.{key}" for key in BUDGET_KEYS if budget.get(key) is None]
    return missing


def card_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"before": ..., "after": ...}}`` for each field that changed."""
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in FIELDS
        if before.get(name) != after.get(name)
    }


def seeded_rules(card: Mapping[str, Any], rule_types: Iterable[str]) -> list[dict[str, Any]]:
    """The policy rules a card's targets become.

    Each success criterion is a ``metric_threshold`` gate (on its stages, or the
    policy's default ones). The input schema is an ``input_schema`` gate: a version's
    signature must take the card's required columns (its optional ones it may), and
    nothing else, before it leaves evaluation. The budgets the policy language knows (``rule_types``)
    become gates too: the artifact budget a ``max_artifact_mb`` gate (every version's
    size is known at registration), the latency budget a ``max_latency_ms`` gate on the
    95th percentile of one row (the evaluation job measures every version it scores, a
    derivation job every version it derives), the memory budget a ``max_memory_mb`` gate on
    the measured peak memory (measured by the same jobs).
    """
    known = set(rule_types)
    rules: list[dict[str, Any]] = []
    for criterion in card.get("success_criteria") or []:
        rule = {
            "type": "metric_threshold",
            "metric": criterion["metric"],
            "op": criterion["op"],
            "value": criterion["value"],
        }
        if criterion.get("stages"):
            rule["stages"] = list(criterion["stages"])
        rules.append(rule)
    schema = card.get("input_schema") or []
    required = [column["name"] for column in schema if column.get("required", True)]
    if "input_schema" in known and required:
        rule = {"type": "input_schema", "columns": required}
        optional = [column["name"] for column in schema if not column.get("required", True)]
        if optional:
            rule["optional"] = optional
        rules.append(rule)
    budget = card.get("resource_budget") or {}
    if "max_artifact_mb" in known and budget.get("artifact_mb") is not None:
        rules.append({"type": "max_artifact_mb", "value": budget["artifact_mb"]})
    if "max_latency_ms" in known and budget.get("latency_p95_ms") is not None:
        rules.append({"type": "max_latency_ms", "percentile": 95, "value": budget["latency_p95_ms"]})
    if "max_memory_mb" in known and budget.get("memory_mb") is not None:
        rules.append({"type": "max_memory_mb", "value": budget["memory_mb"]})
    return rules
