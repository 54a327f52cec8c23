"""The model card between its JSON form and the edit page's fields.

Lists are edited one entry per line: columns as ``name: type`` (``name: type?`` when
optional), datasets as ``name: role``, success criteria as ``metric op value``
(``f1 >= 0.9``, or ``f1 >= 0.9 @ production`` to gate only some stages). A line that does not read is refused naming the field and the line,
and the page is shown again with what was typed.
"""

from __future__ import annotations

import re
from typing import Any

from registry.errors import InvalidInput

_CRITERION_RE = re.compile(
    r"^(?P<metric>.+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[^\s@]+)(?:\s*@\s*(?P<stages>.+))?$"
)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _pair(line: str, field: str, number: int, what: str) -> tuple[str, str]:
    name, sep, rest = line.partition(":")
    if not sep or not name.strip() or not rest.strip():
        raise InvalidInput(f"{field}, line {number}: write {what}", details={field: f"line {number}: write {what}"})
    return name.strip(), rest.strip()


def _columns(text: str, field: str) -> list[dict[str, Any]]:
    columns = []
    for number, line in enumerate(_lines(text), start=1):
        name, kind = _pair(line, field, number, "name: type")
        optional = kind.endswith("?")
        columns.append({"name": name, "type": kind.rstrip("?").strip(), "required": not optional})
    return columns


def _criteria(text: str) -> list[dict[str, Any]]:
    criteria = []
    for number, line in enumerate(_lines(text), start=1):
        found = _CRITERION_RE.match(line)
        value: Any = None
        if found:
            try:
                value = float(found["value"])
            except ValueError:
                found = None
        if not found:
            message = f"line {number}: write metric, operator, value (f1 >= 0.9)"
            raise InvalidInput(f"success_criteria, {message}", details={"success_criteria": message})
        criterion = {"metric": found["metric"].strip(), "op": found["op"], "value": value}
        if found["stages"]:
            criterion["stages"] = [stage.strip() for stage in found["stages"].split(",") if stage.strip()]
        criteria.append(criterion)
    return criteria


def card_from_form(data: dict[str, Any]) -> dict[str, Any]:
    """The card the service takes, from the edit form's cleaned data."""
    budget = {key: data[key] for key in ("latency_p95_ms", "memory_mb", "artifact_mb") if data.get(key) is not None}
    return {
        "intended_use": data.get("intended_use", ""),
        "out_of_scope_uses": _lines(data.get("out_of_scope_uses", "")),
        "owner": data.get("owner", ""),
        "task": data.get("task", ""),
        "input_schema": _columns(data.get("input_schema", ""), "input_schema"),
        "output_schema": _columns(data.get("output_schema", ""), "output_schema"),
        "datasets": [
            {"name": name, "role": role}
            for name, role in (
                _pair(line, "datasets", number, "name: role")
                for number, line in enumerate(_lines(data.get("datasets", "")), start=1)
            )
        ],
        "success_criteria": _criteria(data.get("success_criteria", "")),
        "risks": _lines(data.get("risks", "")),
        "fairness": data.get("fairness", ""),
        "resource_budget": budget,
    }


def _value(number: float) -> str:
    return f"{number:g}"


def form_from_card(card: dict[str, Any], *, revision: int) -> dict[str, Any]:
    """The edit form's initial values for a stored card."""
    budget = card.get("resource_budget") or {}
    return {
        "revision": revision,
        "intended_use": card.get("intended_use", ""),
        "out_of_scope_uses": "\n".join(card.get("out_of_scope_uses") or []),
        "owner": card.get("owner", ""),
        "task": card.get("task", ""),
        "input_schema": "\n".join(
            f"{c['name']}: {c['type']}{'' if c.get('required', True) else '?'}" for c in card.get("input_schema") or []
        ),
        "output_schema": "\n".join(
            f"{c['name']}: {c['type']}{'' if c.get('required', True) else '?'}" for c in card.get("output_schema") or []
        ),
        "datasets": "\n".join(f"{d['name']}: {d['role']}" for d in card.get("datasets") or []),
        "success_criteria": "\n".join(
            f"{c['metric']} {c['op']} {_value(c['value'])}"
            + (f" @ {', '.join(c['stages'])}" if c.get("stages") else "")
            for c in card.get("success_criteria") or []
        ),
        "risks": "\n".join(card.get("risks") or []),
        "fairness": card.get("fairness", ""),
        "latency_p95_ms": budget.get("latency_p95_ms"),
        "memory_mb": budget.get("memory_mb"),
        "artifact_mb": budget.get("artifact_mb"),
    }
