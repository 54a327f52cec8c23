"""The design stage's pages: the card on the model page, its edit form (CSRF, roles,
stale revisions kept as typed), completing design, the version page beside the card,
and the Markdown downloads."""

from __future__ import annotations

import pytest
from django.test import Client

from lifecycle.design.services import design_card_update
from registry.models import RegisteredModel
from registry.services import model_create, team_ensure
from tests.frontend.conftest import client_for
from tests.registry.factories import dataset_row_create, version_create

pytestmark = pytest.mark.django_db

FORM = {
    "revision": "0",
    "intended_use": "Flag card payments for manual review.",
    "out_of_scope_uses": "credit decisions\nblocking payments",
    "owner": "payments-risk@example.com",
    "task": "classification",
    "input_schema": "amount: double\ncountry: string?",
    "output_schema": "fraud_probability: double",
    "datasets": "payments-2025: training\nholdout: evaluation",
    "success_criteria": "f1 >= 0.9\nauc >= 0.95 @ production",
    "risks": "false positives delay honest customers",
    "fairness": "Recall compared across issuing countries.",
    "latency_p95_ms": "5",
    "memory_mb": "512",
    "artifact_mb": "20",
    "reason": "first card",
}


@pytest.fixture
def design_model(owner):
    team = team_ensure(name="fraud")
    for name in ("payments-2025", "holdout"):
        dataset_row_create(team=team, name=name)
    return model_create(actor=owner.user, name="fraud-v2", team=team, stage="design")


def test_the_model_page_shows_an_empty_card_and_what_it_lacks(design_model, viewer):
    page = client_for(viewer).get("/models/fraud-v2/").content.decode()
    assert "Model card" in page and "in design" in page
    assert "missing <strong>intended_use, out_of_scope_uses" in page
    # Viewers get no edit link and no completion form.
    assert "/models/fraud-v2/design/" not in page and "Complete design" not in page


def test_a_developer_saves_the_card_through_the_form_and_it_becomes_a_revision(design_model, owner):
    client = client_for(owner, enforce_csrf_checks=True)
    form_page = client.get("/models/fraud-v2/design/")
    assert form_page.status_code == 200
    token = form_page.cookies["csrftoken"].value
    response = client.post("/models/fraud-v2/design/", {**FORM, "csrfmiddlewaretoken": token})
    assert response.status_code == 302, response.content.decode()[:2000]
    card = RegisteredModel.objects.get(name="fraud-v2").design_card
    assert card.revision == 1
    assert card.content["input_schema"][1] == {"name": "country", "type": "string", "required": False}
    assert card.content["success_criteria"][1] == {"metric": "auc", "op": ">=", "value": 0.95, "stages": ["production"]}
    assert card.content["resource_budget"] == {"latency_p95_ms": 5.0, "memory_mb": 512.0, "artifact_mb": 20.0}
    page = client.get("/models/fraud-v2/").content.decode()
    assert "Complete." in page and "Complete design" in page
    # What the form shows again is what was saved.
    again = client.get("/models/fraud-v2/design/").content.decode()
    assert "auc &gt;= 0.95 @ production" in again and "country: string?" in again


def test_the_form_refuses_a_post_without_the_csrf_token(design_model, owner):
    client = client_for(owner, enforce_csrf_checks=True)
    assert client.post("/models/fraud-v2/design/", FORM).status_code == 403


def test_a_stale_edit_is_refused_and_shown_again_as_typed(design_model, owner, fraud_admin):
    client = client_for(owner)
    assert client.post("/models/fraud-v2/design/", FORM).status_code == 302
    design_card_update(
        model=design_model,
        card={"intended_use": "changed meanwhile"},
        actor=fraud_admin.user,
        expected_revision=1,
    )
    response = client.post("/models/fraud-v2/design/", {**FORM, "revision": "1", "owner": "typed@example.com"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "is at revision 2, not 1" in page
    assert 'value="typed@example.com"' in page
    assert RegisteredModel.objects.get(name="fraud-v2").design_card.content["intended_use"] == "changed meanwhile"


def test_a_line_that_does_not_read_names_its_field(design_model, owner):
    response = client_for(owner).post("/models/fraud-v2/design/", {**FORM, "success_criteria": "f1 is high"})
    assert response.status_code == 400
    assert "success_criteria, line 1" in response.content.decode()


def test_viewers_may_not_open_or_post_the_edit_form_and_other_teams_do_not_see_it(design_model, viewer, outsider):
    assert client_for(viewer).get("/models/fraud-v2/design/").status_code == 403
    assert client_for(viewer).post("/models/fraud-v2/design/", FORM).status_code == 403
    assert client_for(viewer).post("/models/fraud-v2/design/complete/", {}).status_code == 403
    assert client_for(outsider).get("/models/fraud-v2/design/").status_code == 404
    assert client_for(outsider).get("/models/fraud-v2/card.md").status_code == 404
    assert Client().get("/models/fraud-v2/design/").status_code == 302


def test_completing_design_from_the_page_is_refused_while_incomplete_then_done(design_model, owner):
    client = client_for(owner)
    refused = client.post("/models/fraud-v2/design/complete/", {"reason": "go"})
    assert refused.status_code == 409
    assert "lacks intended_use" in refused.content.decode()
    client.post("/models/fraud-v2/design/", FORM)
    done = client.post("/models/fraud-v2/design/complete/", {"reason": "reviewed"}, follow=True)
    assert "Design of fraud-v2 completed" in done.content.decode()
    assert RegisteredModel.objects.get(name="fraud-v2").stage == "active"


def test_the_version_page_sets_its_metrics_beside_the_card(design_model, owner, viewer):
    client_for(owner).post("/models/fraud-v2/design/", FORM)
    client_for(owner).post("/models/fraud-v2/design/complete/", {})
    version = version_create(model=RegisteredModel.objects.get(name="fraud-v2"), metrics={"f1": 0.93, "auc": 0.91})
    page = client_for(viewer).get(f"/models/fraud-v2/versions/{version.version}/").content.decode()
    assert "Against the model card" in page
    assert "verdict-met" in page and "verdict-not-met" in page
    markdown = client_for(viewer).get(f"/models/fraud-v2/versions/{version.version}/card.md")
    assert markdown.status_code == 200 and markdown["Content-Type"].startswith("text/markdown")
    assert "| f1 | 0.93 | >= 0.9 | met |" in markdown.content.decode()
    model_markdown = client_for(viewer).get("/models/fraud-v2/card.md").content.decode()
    assert model_markdown.startswith("# Model card: fraud-v2\n")
