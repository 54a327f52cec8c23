"""A path on the server is read only inside MODELGATE_LOCAL_SOURCE_ROOTS."""

from __future__ import annotations

import pytest

from registry.models import Dataset, ModelVersion
from tests.registry.factories import artifact_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def roots(settings, tmp_path):
    allowed = (tmp_path / "allowed").resolve()
    allowed.mkdir()
    settings.MODELGATE_LOCAL_SOURCE_ROOTS = (allowed,)
    return allowed


@pytest.mark.parametrize("source", ["/etc", "file:///etc", "/etc/../etc/ssl"])
def test_a_source_outside_the_roots_is_refused_naming_the_setting(owner, fraud_model, roots, source):
    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/versions/", {"source": source}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert "MODELGATE_LOCAL_SOURCE_ROOTS" in error["message"]
    assert error["details"] == {"source": "outside the directories the server may read"}
    assert not ModelVersion.objects.exists()


def test_a_link_inside_the_roots_to_a_directory_outside_is_refused(owner, fraud_model, roots, tmp_path):
    outside = artifact_write(tmp_path / "outside")
    (roots / "link").symlink_to(outside, target_is_directory=True)

    response = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/versions/", {"source": str(roots / "link")}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"source": "outside the directories the server may read"}


def test_a_dataset_file_outside_the_roots_is_refused(owner, roots):
    body = {"name": "passwords", "team": "fraud", "uri": "/etc/passwd", "format": "csv", "target": "x"}

    response = owner.client.post("/api/v1/datasets/", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"uri": "outside the directories the server may read"}
    assert not Dataset.objects.exists()


def test_a_dataset_file_inside_the_roots_is_read(owner, roots):
    (roots / "payments.csv").write_text("amount,label\n1.0,0\n2.0,1\n")
    body = {"name": "payments", "team": "fraud", "uri": str(roots / "payments.csv"), "target": "label"}

    response = owner.client.post("/api/v1/datasets/", body, format="json")

    assert response.status_code == 201, response.json()
