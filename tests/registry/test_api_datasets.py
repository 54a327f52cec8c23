"""Registering datasets: read once for a content digest and a per-column profile."""

from __future__ import annotations

import hashlib

import pytest
from sklearn.datasets import load_iris

from registry.models import Dataset

pytestmark = pytest.mark.django_db

URL = "/api/v1/datasets/"


def test_a_builtin_dataset_is_registered_with_its_digest_and_profile(owner):
    response = owner.client.post(
        URL, {"name": "iris-eval", "team": "fraud", "uri": "builtin:iris", "target": "target"}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    frame = load_iris(as_frame=True).frame
    canonical = frame.to_csv(index=False).encode()
    assert body["format"] == "builtin"
    assert body["digest"] == hashlib.sha256(canonical).hexdigest()
    assert body["size_bytes"] == len(canonical)
    assert body["profile"]["rows"] == 150
    assert set(body["profile"]["columns"]) == set(frame.columns)
    sepal = body["profile"]["columns"]["sepal length (cm)"]
    assert sepal["kind"] == "numeric"
    assert sepal["count"] == 150
    assert sepal["quantiles"][0] == pytest.approx(4.3)
    assert owner.client.get(f"{URL}{body['id']}/").json() == body


def test_the_same_builtin_dataset_has_the_same_digest_in_every_team(owner, outsider):
    ours = owner.client.post(URL, {"name": "iris", "team": "fraud", "uri": "builtin:iris"}, format="json")
    theirs = outsider.client.post(URL, {"name": "iris", "team": "ads", "uri": "builtin:iris"}, format="json")

    assert ours.status_code == theirs.status_code == 201
    assert ours.json()["digest"] == theirs.json()["digest"]


def test_a_csv_file_is_registered_with_the_digest_of_its_bytes(owner, tmp_path):
    csv = tmp_path / "payments.csv"
    csv.write_text("amount,country,fraud\n12.5,FR,0\n990.0,DE,1\n15.0,FR,0\n,FR,0\n")

    response = owner.client.post(
        URL, {"name": "payments", "team": "fraud", "uri": str(csv), "target": "fraud"}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["format"] == "csv"
    assert body["digest"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert body["size_bytes"] == csv.stat().st_size
    assert body["profile"]["rows"] == 4
    assert body["profile"]["columns"]["amount"]["missing"] == 1
    country = body["profile"]["columns"]["country"]
    assert (country["kind"], country["count"], country["frequencies"]) == ("categorical", 4, {"FR": 3, "DE": 1})


def test_a_file_without_an_extension_needs_its_format(owner, tmp_path):
    data = tmp_path / "payments"
    data.write_text("amount,fraud\n1,0\n")

    unknown = owner.client.post(URL, {"name": "p", "team": "fraud", "uri": str(data)}, format="json")
    declared = owner.client.post(URL, {"name": "p", "team": "fraud", "uri": str(data), "format": "csv"}, format="json")

    assert unknown.status_code == 400
    assert unknown.json()["error"]["details"] == {"format": "required for this uri"}
    assert declared.status_code == 201, declared.json()
    assert declared.json()["format"] == "csv"


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"uri": "builtin:nope"}, "uri"),
        ({"uri": "builtin:iris", "target": "species"}, "target"),
    ],
)
def test_an_unknown_builtin_or_target_is_a_400_naming_it(owner, body, field_name):
    response = owner.client.post(URL, {"name": "iris", "team": "fraud", **body}, format="json")

    assert response.status_code == 400, response.json()
    assert field_name in response.json()["error"]["details"]
    assert not Dataset.objects.exists()


def test_a_csv_target_must_be_a_column(owner, tmp_path):
    csv = tmp_path / "payments.csv"
    csv.write_text("amount,fraud\n1,0\n")

    response = owner.client.post(
        URL, {"name": "payments", "team": "fraud", "uri": str(csv), "target": "label"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"target": "no such column"}
