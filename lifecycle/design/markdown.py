"""The model card as Markdown: the card of a model, and the card of one version beside
its metrics and the budget its artifact is held to.

Plain Python over dictionaries (the selectors gather them), so the export is the same
wherever it is asked for: the API, the web UI's download link, a script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lifecycle.design.card import BUDGET_KEYS
from lifecycle.governance.rules.vocabulary import OPERATORS

_TITLES = {
    "intended_use": "Intended use",
    "out_of_scope_uses": "Out-of-scope uses",
    "owner": "Owner",
    "task": "Task",
    "input_schema": "Input schema",
    "output_schema": "Output schema",
    "datasets": "Datasets",
    "success_criteria": "Success criteria",
    "risks": "Risks",
    "fairness": "Fairness",
    "resource_budget": "Resource budget",
}
_NONE = "_not given_"


def _cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def _criterion(criterion: Mapping[str, Any]) -> str:
    stages = ", ".join(criterion.get("stages") or ["staging", "production"])
    return f"{criterion['metric']} {criterion['op']} {_number(criterion['value'])} (gates {stages})"


def _columns(columns: Sequence[Mapping[str, Any]]) -> list[str]:
    if not columns:
        return [_NONE]
    lines = ["| column | type | required |", "|---|---|---|"]
    lines += [f"| {_cell(c['name'])} | {c['type']} | {'yes' if c.get('required', True) else 'no'} |" for c in columns]
    return lines


def _section(name: str, value: Any) -> list[str]:
    lines = [f"## {_TITLES[name]}", ""]
    if name in ("input_schema", "output_schema"):
        lines += _columns(value)
    elif name == "datasets":
        lines += [f"- {d['name']} ({d['role']})" for d in value] or [_NONE]
    elif name == "success_criteria":
        lines += [f"- {_criterion(c)}" for c in value] or [_NONE]
    elif name == "resource_budget":
        lines += [
            f"- {key}: {_number(value[key])} — {meaning}" if key in value else f"- {key}: {_NONE} — {meaning}"
            for key, meaning in BUDGET_KEYS.items()
        ]
    elif isinstance(value, list):
        lines += [f"- {item}" for item in value] or [_NONE]
    else:
        lines += [str(value) if value else _NONE]
    return [*lines, ""]


def _met(value: float | None, criterion: Mapping[str, Any]) -> str:
    if value is None:
        return "no value"
    return "met" if OPERATORS[criterion["op"]](value, criterion["value"]) else "NOT met"


def criteria_rows(card: Mapping[str, Any], metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each success criterion with the version's value and its verdict (``met``, ``NOT
    met``, ``no value``), then the version's other metrics without a target."""
    rows = []
    targeted = set()
    for criterion in card.get("success_criteria") or []:
        value = metrics.get(criterion["metric"])
        targeted.add(criterion["metric"])
        rows.append(
            {
                "metric": criterion["metric"],
                "value": value,
                "target": f"{criterion['op']} {_number(criterion['value'])}",
                "verdict": _met(value, criterion),
            }
        )
    rows += [
        {"metric": name, "value": metrics[name], "target": "", "verdict": ""}
        for name in sorted(set(metrics) - targeted)
    ]
    return rows


def budget_rows(card: Mapping[str, Any], *, size_bytes: int, metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each budget with its limit, the version's measure (its artifact's size; the
    recorded ``latency_p95_ms`` and ``peak_memory_mb`` metrics) and the verdict
    (``within``, ``OVER``, or empty when either side is unknown). Sizes are MiB, as the
    ``max_artifact_mb`` and ``max_memory_mb`` gates count them, so the card and the gates
    agree."""
    budget = card.get("resource_budget") or {}
    measured = {
        "artifact_mb": round(size_bytes / (1024 * 1024), 3),
        "latency_p95_ms": metrics.get("latency_p95_ms"),
        "memory_mb": metrics.get("peak_memory_mb"),
    }
    rows = []
    for key in ("artifact_mb", "latency_p95_ms", "memory_mb"):
        limit, value = budget.get(key), measured[key]
        verdict = "" if limit is None or value is None else ("within" if value <= limit else "OVER")
        rows.append({"budget": key, "limit": limit, "value": value, "verdict": verdict})
    return rows


def card_markdown(
    *,
    model: Mapping[str, Any],
    card: Mapping[str, Any],
    revision: int,
    missing: Sequence[str],
    version: Mapping[str, Any] | None = None,
) -> str:
    """The model card in Markdown.

    ``model``: ``name``, ``team``, ``stage``, ``description``. With ``version``
    (``number``, ``stage``, ``created_at``, ``size_bytes``, ``metrics``: ``{name:
    value}``), the card is the card of that version: its metrics against the success
    criteria and its artifact against the budget come first.
    """
    title = f"# Model card: {model['name']}" + (f" v{version['number']}" if version else "")
    lines = [title, ""]
    lines.append(f"- team: {model['team']}")
    lines.append(f"- model stage: {model['stage']}")
    lines.append(f"- card revision: {revision}")
    lines.append("- card complete: " + ("yes" if not missing else "no — missing " + ", ".join(missing)))
    if model.get("description"):
        lines += ["", str(model["description"])]
    lines.append("")
    if version is not None:
        lines += _version_section(card, version)
    for name in _TITLES:
        lines += _section(name, card.get(name))
    return "\n".join(lines).rstrip() + "\n"


def _version_section(card: Mapping[str, Any], version: Mapping[str, Any]) -> list[str]:
    metrics: Mapping[str, float] = version.get("metrics") or {}
    lines = [
        f"## Version {version['number']}",
        "",
        f"- stage: {version['stage']}",
        f"- registered: {version['created_at']}",
        "",
        "### Metrics against the success criteria",
        "",
        "| metric | value | target | verdict |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(row['metric'])} | {_number(row['value'])} | {row['target'] or '—'} | {row['verdict'] or '—'} |"
        for row in criteria_rows(card, metrics)
    ]
    lines += ["", "### Resource budget", "", "| budget | limit | this version | verdict |", "|---|---|---|---|"]
    lines += [
        f"| {row['budget']} | {_number(row['limit'])} | {_number(row['value'])} | {row['verdict'] or '—'} |"
        for row in budget_rows(card, size_bytes=version.get("size_bytes") or 0, metrics=metrics)
    ]
    return [*lines, ""]
