"""Edges of the derive and lineage endpoints: who may call them, and bad input named by field."""

from __future__ import annotations

import pytest

from lifecycle.derivations.models import Derivation
from registry.services import dataset_create, model_update, team_ensure
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def parent(fraud_model, owner):
    dataset = dataset_create(
        actor=owner.user, team=team_ensure(name="fraud"), name="tumours", uri="builtin:breast_cancer", target="target"
    )
    model_update(actor=owner.user, model=fraud_model, changes={"dataset": dataset.name})
    return version_create(model=fraud_model)


def _derive_url(version) -> str:
    return f"/api/v1/models/{version.model.name}/versions/{version.version}/derive/"


def _lineage_url(version) -> str:
    return f"/api/v1/models/{version.model.name}/versions/{version.version}/lineage/"


def test_a_viewer_cannot_derive_a_version(viewer, parent):
    answer = viewer.client.post(_derive_url(parent), {"method": "onnx"}, format="json")
    assert answer.status_code == 403
    assert not Derivation.objects.exists()


def test_an_outsider_sees_neither_derive_nor_lineage(outsider, parent):
    assert outsider.client.post(_derive_url(parent), {"method": "onnx"}, format="json").status_code == 404
    assert outsider.client.get(_lineage_url(parent)).status_code == 404


def test_anonymous_callers_are_refused(anonymous, parent):
    assert anonymous.post(_derive_url(parent), {"method": "onnx"}, format="json").status_code == 401
    assert anonymous.get(_lineage_url(parent)).status_code == 401


def test_an_unknown_method_or_a_bad_parameter_is_a_400_naming_the_field(owner, parent):
    unknown = owner.client.post(_derive_url(parent), {"method": "compress"}, format="json")
    assert unknown.status_code == 400 and "method" in unknown.json()["error"]["details"]
    bad = owner.client.post(_derive_url(parent), {"method": "prune", "params": {"sparsity": 2}}, format="json")
    assert bad.status_code == 400 and "params.sparsity" in bad.json()["error"]["details"]
    assert not Derivation.objects.exists()


def test_a_derivation_is_queued_as_a_derive_job_and_shows_in_the_lineage_as_pending(owner, viewer, parent):
    answer = owner.client.post(
        _derive_url(parent), {"method": "prune", "params": {"sparsity": 0.3}, "reason": "smaller"}, format="json"
    )

    assert answer.status_code == 201
    assert answer.json()["kind"] == "derive"
    derivation = Derivation.objects.get()
    assert derivation.parent == parent and derivation.params["sparsity"] == 0.3
    assert derivation.parent_digest == parent.digest and derivation.state == "running"
    lineage = viewer.client.get(_lineage_url(parent)).json()
    assert lineage["pending"] == [
        {"method": "prune", "parent_version": 1, "job": derivation.job_id, "state": "running"}
    ]
    assert lineage["nodes"][0]["version"] == 1 and lineage["edges"] == []
