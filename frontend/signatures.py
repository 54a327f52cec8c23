"""A version's MLflow signature as table rows (column-based and tensor-based specs)."""

from __future__ import annotations

from typing import Any


def signature_rows(spec: Any) -> list[dict[str, Any]]:
    """``[{"name", "type", "required"}]`` for one side (inputs, outputs or params)."""
    if spec is None:
        return []
    if not isinstance(spec, list):
        return [{"name": "", "type": str(spec), "required": None}]
    rows = []
    for position, item in enumerate(spec):
        if not isinstance(item, dict):
            rows.append({"name": f"#{position}", "type": str(item), "required": None})
            continue
        kind = str(item.get("type", ""))
        tensor = item.get("tensor-spec")
        if isinstance(tensor, dict):
            shape = ", ".join(str(n) for n in tensor.get("shape", []))
            kind = f"tensor {tensor.get('dtype', '')} ({shape})"
        elif kind == "array" and "items" in item:
            kind = f"array of {item['items'].get('type', '?') if isinstance(item['items'], dict) else item['items']}"
        if "default" in item:
            kind += f" (default {item['default']!r})"
        rows.append({"name": item.get("name", f"#{position}"), "type": kind, "required": item.get("required")})
    return rows


def signature_tables(signature: dict[str, Any] | None) -> list[tuple[str, list[dict[str, Any]]]]:
    """``[(title, rows)]`` for the parts the signature has, in the order MLflow shows them."""
    if not signature:
        return []
    titles = {"inputs": "Inputs", "outputs": "Outputs", "params": "Parameters"}
    return [(title, signature_rows(signature[part])) for part, title in titles.items() if signature.get(part)]
