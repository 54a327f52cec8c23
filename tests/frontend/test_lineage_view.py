"""The version page draws the lineage graph and the derivation's parent-vs-derived figures."""

from __future__ import annotations

import pytest

from lifecycle.derivations.models import Derivation
from registry.models import ModelVersion
from tests.conftest import Actor
from tests.frontend.conftest import client_for
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db


def test_a_derived_versions_page_shows_its_lineage_graph_and_comparison(fraud_model, viewer: Actor) -> None:
    parent = version_create(model=fraud_model)
    child = version_create(model=fraud_model)
    ModelVersion.objects.filter(pk=child.pk).update(parent=parent)
    Derivation.objects.create(
        model=fraud_model,
        parent=parent,
        version=child,
        method="onnx",
        params={"opset": 17},
        parent_digest=parent.digest,
        state="registered",
        dataset_digest="f" * 64,
        metric_deltas={"f1": 0.0},
        comparison={
            "parent": {"model_bytes": 4000, "latency_p50_ms": 0.4, "latency_p95_ms": 0.6, "peak_memory_mb": 3.0},
            "derived": {"model_bytes": 2000, "latency_p50_ms": 0.1, "latency_p95_ms": 0.2, "peak_memory_mb": 1.5},
            "single_row_speedup": 4.0,
        },
    )

    page = client_for(viewer).get(f"/models/{fraud_model.name}/versions/{child.version}/").content.decode()

    assert '<svg class="lineage"' in page
    assert f"/models/{fraud_model.name}/versions/{parent.version}/" in page
    assert ">onnx</text>" in page
    assert f"Derived from v{parent.version} by onnx" in page
    assert "<td>single row p50 (ms)</td><td>0.400</td><td>0.100</td><td>0.25×</td>" in page
    assert "<td>Δ f1</td><td></td><td>+0.0000</td>" in page


def test_a_version_without_family_says_so(fraud_model, viewer: Actor) -> None:
    alone = version_create(model=fraud_model)

    page = client_for(viewer).get(f"/models/{fraud_model.name}/versions/{alone.version}/").content.decode()

    assert "No parent and no derived versions." in page
