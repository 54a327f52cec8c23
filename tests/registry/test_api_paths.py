"""API paths given without their trailing slash reach the endpoint, never a redirect."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_a_post_without_the_trailing_slash_creates_instead_of_being_redirected(owner):
    response = owner.client.post("/api/v1/models", {"name": "churn", "team": "fraud"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["name"] == "churn"
    assert owner.client.get("/api/v1/models/churn").json()["name"] == "churn"


def test_reads_without_the_trailing_slash_answer_as_with_it(owner, fraud_model):
    without = owner.client.get(f"/api/v1/models/{fraud_model.name}/versions")
    with_slash = owner.client.get(f"/api/v1/models/{fraud_model.name}/versions/")

    assert without.status_code == 200
    assert without.json() == with_slash.json()


def test_an_unknown_api_path_is_still_a_json_404(owner):
    response = owner.client.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_pages_keep_djangos_redirect_to_the_slashed_path(client):
    response = client.get("/admin")

    assert response.status_code == 301
    assert response["Location"] == "/admin/"
