"""A monitor rule between the monitoring page's form fields and its JSON form.

Only what was filled in goes into the rule, so blank fields take the rule's defaults.
Features are written ``*`` (or left blank) for all, else comma-separated names; a
``derive`` action's parameters are a JSON object, e.g.
``{"data": {"source": "predictions", "days": 7, "min_rows": 20}}``. Text that does not
read as JSON is refused here, naming ``params``; everything else is judged by the policy
validator the API uses.
"""

from __future__ import annotations

import json
from typing import Any

from registry.errors import InvalidInput


def _features(text: str) -> str | list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    return "*" if names in ([], ["*"]) else names


def monitor_from_form(data: dict[str, Any]) -> dict[str, Any]:
    """The rule the form describes (``data``: ``MonitorForm``'s cleaned data)."""
    monitor: dict[str, Any] = {"type": data["type"]}
    for key in ("statistic", "metric", "op"):
        if data.get(key):
            monitor[key] = data[key]
    if (data.get("features") or "").strip():
        monitor["features"] = _features(data["features"])
    for key in ("value", "windows", "min_rows", "min_labels"):
        if data.get(key) is not None:
            monitor[key] = data[key]
    monitor["action"] = data["action"]
    if data.get("method"):
        monitor["method"] = data["method"]
    text = (data.get("params") or "").strip()
    if text:
        try:
            monitor["params"] = json.loads(text)
        except json.JSONDecodeError as error:
            problem = f"not JSON ({error.msg} at line {error.lineno}, column {error.colno})"
            raise InvalidInput(f"params: {problem}", details={"params": problem}) from error
    return monitor


def monitor_problems(details: Any, index: int) -> dict[str, str]:
    """The policy validator's details about the monitor at ``index`` (the one just
    added), keyed by its own field (``params.data`` for ``policy.monitors[2].params.data``);
    a problem elsewhere in the policy keeps its full name."""
    prefix = f"policy.monitors[{index}]."
    problems = {}
    for field, message in (details or {}).items() if isinstance(details, dict) else ():
        problems[field.removeprefix(prefix)] = str(message)
    return problems
