"""A version's lineage as a server-rendered SVG graph: versions placed in columns by their
depth under the family's oldest version, an arrow per parent→child labelled with the
derivation method (or ``retrain``), and the derivation's figures beside the parent's."""

from __future__ import annotations

from typing import Any

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 150, 44, 70, 18, 10


def lineage_graph(lineage: dict[str, Any], *, current: int) -> dict[str, Any]:
    """Boxes and arrows with coordinates, for the template to draw."""
    rows: dict[int, int] = {}
    boxes = {}
    for node in lineage["nodes"]:
        depth = node["depth"]
        row = rows.get(depth, 0)
        rows[depth] = row + 1
        derivation = node.get("derivation") or {}
        boxes[node["version"]] = {
            "version": node["version"],
            "stage": node["stage"],
            "method": derivation.get("method"),
            "x": PAD + depth * (BOX_W + GAP_X),
            "y": PAD + row * (BOX_H + GAP_Y),
            "current": node["version"] == current,
        }
    arrows = []
    for edge in lineage["edges"]:
        parent, child = boxes[edge["parent"]], boxes[edge["child"]]
        x1, y1 = parent["x"] + BOX_W, parent["y"] + BOX_H // 2
        x2, y2 = child["x"], child["y"] + BOX_H // 2
        arrows.append(
            {
                "x1": x1,
                "y1": y1,
                "x2": x2 - 4,
                "y2": y2,
                "label": edge["method"] or "retrain",
                "lx": (x1 + x2) // 2,
                "ly": (y1 + y2) // 2 - 4,
            }
        )
    width = PAD * 2 + (max(rows) + 1) * BOX_W + max(rows) * GAP_X if rows else 0
    height = PAD * 2 + max(rows.values(), default=0) * (BOX_H + GAP_Y)
    return {"boxes": list(boxes.values()), "arrows": arrows, "width": width, "height": height, "w": BOX_W, "h": BOX_H}


FIGURES = (
    ("model_bytes", "stored size (bytes)", "{:,.0f}"),
    ("latency_p50_ms", "single row p50 (ms)", "{:.3f}"),
    ("latency_p95_ms", "single row p95 (ms)", "{:.3f}"),
    ("batch_latency_p50_ms", "batch of 1,000 p50 (ms)", "{:.3f}"),
    ("batch_latency_p95_ms", "batch of 1,000 p95 (ms)", "{:.3f}"),
    ("peak_memory_mb", "peak memory (MB)", "{:.1f}"),
)


def derivation_rows(derivation: dict[str, Any] | None) -> list[dict[str, str]]:
    """Parent vs derived, one row per figure, then the metric deltas."""
    if not derivation:
        return []
    parent, derived = derivation["figures"].get("parent") or {}, derivation["figures"].get("derived") or {}
    rows = []
    for key, label, fmt in FIGURES:
        before, after = parent.get(key), derived.get(key)
        rows.append(
            {
                "label": label,
                "parent": fmt.format(before) if before is not None else "–",
                "derived": fmt.format(after) if after is not None else "–",
                "ratio": f"{after / before:.2f}×" if before and after is not None else "",
            }
        )
    for metric, delta in sorted(derivation.get("metric_deltas", {}).items()):
        rows.append({"label": f"Δ {metric}", "parent": "", "derived": f"{delta:+.4f}", "ratio": ""})
    return rows
