"""Reads of the update stage: a version's lineage (its family of versions, the derivations
between them, their datasets and runs) and a model's derivations."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from lifecycle.derivations.models import Derivation
from registry.models import ModelVersion, RegisteredModel

# A lineage deeper than this is cut (an update chain of a hundred versions is already
# more than a page can show).
MAX_DEPTH = 100


def derivation_summary(derivation: Derivation | None) -> dict[str, Any] | None:
    """A derivation as the lineage shows it."""
    if derivation is None:
        return None
    comparison = derivation.comparison or {}
    return {
        "id": derivation.pk,
        "method": derivation.method,
        "params": derivation.params,
        "parent_version": derivation.parent.version,
        "parent_digest": derivation.parent_digest,
        "state": derivation.state,
        "job": derivation.job_id,
        "dataset_digest": derivation.dataset_digest,
        "metric_deltas": derivation.metric_deltas,
        "figures": {"parent": comparison.get("parent"), "derived": comparison.get("derived")},
        "single_row_speedup": comparison.get("single_row_speedup"),
        "agreement": derivation.agreement,
        "created_at": derivation.created_at.isoformat(),
    }


def derivations_of(*, model: RegisteredModel) -> QuerySet[Derivation]:
    return Derivation.objects.filter(model=model).select_related("parent", "version", "job")


def _node(version: ModelVersion, derivation: Derivation | None, depth: int) -> dict[str, Any]:
    return {
        "version": version.version,
        "stage": version.stage,
        "parent_version": version.parent.version if version.parent_id else None,
        "depth": depth,
        "run_id": version.run_id,
        "digest": version.digest,
        "size_bytes": version.size_bytes,
        "dataset": (
            {"name": version.dataset.name, "uri": version.dataset.uri, "digest": version.dataset.digest}
            if version.dataset_id
            else None
        ),
        "derivation": derivation_summary(derivation),
    }


def version_lineage(*, version: ModelVersion) -> dict[str, Any]:
    """The version's ancestors (nearest first), its children, and its whole family — the
    tree under its oldest ancestor — as nodes and edges, each edge naming the derivation
    method that made the child (null for a retrain or a registration with a parent)."""
    model = version.model
    versions = {
        v.pk: v
        for v in ModelVersion.objects.filter(model=model).select_related("parent", "dataset").order_by("version")
    }
    derivations = {
        d.version_id: d for d in Derivation.objects.filter(model=model, version__isnull=False).select_related("parent")
    }
    ancestors = []
    current = versions[version.pk]
    while current.parent_id and len(ancestors) < MAX_DEPTH:
        current = versions[current.parent_id]
        ancestors.append(current)
    root = ancestors[-1] if ancestors else versions[version.pk]
    children_of: dict[int, list[ModelVersion]] = {}
    for v in versions.values():
        if v.parent_id:
            children_of.setdefault(v.parent_id, []).append(v)
    nodes, edges, queue = [], [], [(root, 0)]
    while queue:
        node, depth = queue.pop(0)
        nodes.append(_node(node, derivations.get(node.pk), depth))
        if depth >= MAX_DEPTH:
            continue
        for child in children_of.get(node.pk, []):
            found = derivations.get(child.pk)
            edges.append({"parent": node.version, "child": child.version, "method": found.method if found else None})
            queue.append((child, depth + 1))
    family = {n["version"] for n in nodes}
    return {
        "model": model.name,
        "version": version.version,
        "derivation": derivation_summary(derivations.get(version.pk)),
        "ancestors": [_node(a, derivations.get(a.pk), 0) for a in ancestors],
        "children": [
            {
                "version": c.version,
                "stage": c.stage,
                "method": derivations[c.pk].method if c.pk in derivations else None,
            }
            for c in children_of.get(version.pk, [])
        ],
        "nodes": nodes,
        "edges": edges,
        "datasets": [
            {"name": name, "digest": digest}
            for name, digest in sorted({(n["dataset"]["name"], n["dataset"]["digest"]) for n in nodes if n["dataset"]})
        ],
        "runs": [{"version": n["version"], "run_id": n["run_id"]} for n in nodes if n["run_id"]],
        "pending": [
            {"method": d.method, "parent_version": d.parent.version, "job": d.job_id, "state": d.state}
            for d in Derivation.objects.filter(model=model, version__isnull=True).select_related("parent")
            if d.parent.version in family
        ],
    }
