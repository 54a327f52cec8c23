"""A model's monitor rules as people read them: what each watches, over how many windows,
and what it does when it fires (for ``derive``, the method and its parameters)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lifecycle.monitoring.rules import parse_monitors
from registry.models import RegisteredModel


@dataclass(frozen=True)
class MonitorRow:
    """One monitor rule of a model's policy: ``index`` is its place in the list (0-based),
    ``rule`` its stored canonical form, ``condition`` a sentence of what fires it."""

    index: int
    rule: dict[str, Any]
    condition: str
    windows: int
    action: str
    method: str | None
    params_json: str
    rule_json: str


def monitor_rules(*, model: RegisteredModel) -> list[MonitorRow]:
    """The model's monitor rules in policy order (the stored policy is valid: it was
    validated when saved)."""
    stored = list((model.policy or {}).get("monitors") or [])
    rows = []
    for index, (raw, rule) in enumerate(zip(stored, parse_monitors(stored), strict=True)):
        rows.append(
            MonitorRow(
                index=index,
                rule=raw,
                condition=rule.describe(),
                windows=rule.windows,
                action=rule.action,
                method=rule.method,
                params_json=json.dumps(dict(rule.params), sort_keys=True) if rule.params is not None else "",
                rule_json=json.dumps(raw, sort_keys=True),
            )
        )
    return rows
