"""Who may call the design stage's endpoints: viewers read, developers edit and
complete, other teams do not see the model, anonymous callers are refused."""

from __future__ import annotations

import pytest

from registry.services import api_token_issue

pytestmark = pytest.mark.django_db

READS = [
    "/api/v1/models/fraud-v2/design/",
    "/api/v1/models/fraud-v2/design/revisions/",
    "/api/v1/models/fraud-v2/design/card.md",
]


def _writes(card: dict) -> list[tuple[str, str, dict]]:
    return [
        ("put", "/api/v1/models/fraud-v2/design/", {"card": card, "revision": 0}),
        ("post", "/api/v1/models/fraud-v2/design/complete/", {"reason": "done"}),
    ]


@pytest.mark.parametrize("path", READS)
def test_viewers_read_and_anonymous_callers_and_other_teams_do_not(design_model, viewer, outsider, anonymous, path):
    assert viewer.client.get(path).status_code == 200
    assert anonymous.get(path).status_code == 401
    assert outsider.client.get(path).status_code == 404


def test_the_version_card_is_read_by_viewers_only_of_the_models_team(fraud_model, viewer, outsider, anonymous):
    from tests.registry.factories import version_create

    version = version_create(model=fraud_model)
    path = f"/api/v1/models/fraud-detector/versions/{version.version}/card.md"
    assert viewer.client.get(path).status_code == 200
    assert anonymous.get(path).status_code == 401
    assert outsider.client.get(path).status_code == 404


@pytest.mark.parametrize("index", [0, 1])
def test_viewers_may_not_edit_or_complete_and_other_teams_get_404(
    design_model, viewer, outsider, anonymous, complete_card, index
):
    method, path, body = _writes(complete_card)[index]
    response = getattr(viewer.client, method)(path, body, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert getattr(outsider.client, method)(path, body, format="json").status_code == 404
    assert getattr(anonymous, method)(path, body, format="json").status_code == 401
    assert viewer.client.get("/api/v1/models/fraud-v2/design/").json()["revision"] == 0


def test_developers_edit_and_complete(design_model, owner, complete_card):
    for method, path, body in _writes(complete_card):
        response = getattr(owner.client, method)(path, body, format="json")
        assert response.status_code == 200, response.json()


def test_a_read_only_token_cannot_edit_the_card(design_model, owner, complete_card):
    from rest_framework.test import APIClient

    _, token = api_token_issue(user=owner.user, scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/models/fraud-v2/design/").status_code == 200
    response = client.put("/api/v1/models/fraud-v2/design/", {"card": complete_card, "revision": 0}, format="json")
    assert response.status_code == 403
