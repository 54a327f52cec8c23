"""The design stage in a real browser: a developer writes the model card of a model in
design, is told what is still missing, completes design and sees the seeded gates."""

# The browser fixtures are imported from test_browser; the test's parameters name them.
# ruff: noqa: F811

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.models import RegisteredModel
from registry.services import model_create, team_ensure
from tests.conftest import Actor
from tests.frontend.test_browser import browser, log_in, page, screenshots  # noqa: F401
from tests.registry.factories import dataset_row_create

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def live_design_model(transactional_db, owner: Actor) -> RegisteredModel:
    team = team_ensure(name="fraud")
    for name in ("payments-2025", "holdout"):
        dataset_row_create(team=team, name=name)
    return model_create(actor=owner.user, name="fraud-v2", team=team, description="next fraud model", stage="design")


def test_developer_writes_the_card_completes_design_and_sees_the_gates(
    page,
    live_server,
    live_design_model,
    owner: Actor,
    screenshots: Path,
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/models/fraud-v2/")
    card = page.locator("section.design-card")
    expect(card).to_contain_text("in design")
    expect(card.locator(".design-missing")).to_contain_text("intended_use")
    page.screenshot(path=str(screenshots / "design-empty.png"), full_page=True)

    card.get_by_role("link", name="Edit card").click()
    form = page.locator("form.design-form")
    form.get_by_label("Intended use").fill("Flag card payments for manual review.")
    form.get_by_label("Out-of-scope uses").fill("credit decisions")
    form.get_by_label("Owner").fill("payments-risk@example.com")
    form.get_by_label("Task").select_option("classification")
    form.get_by_label("Input schema").fill("amount: double\ncountry: string")
    form.get_by_label("Output schema").fill("fraud_probability: double")
    form.get_by_label("Datasets").fill("payments-2025: training\nholdout: evaluation")
    form.get_by_label("Success criteria").fill("f1 >= 0.9")
    form.get_by_label("Risks").fill("false positives delay honest customers")
    # Fairness is left out: the card is saved, and completing design says it is missing.
    form.get_by_label("p95 latency (ms)").fill("5")
    form.get_by_label("Memory (MB)").fill("512")
    form.get_by_label("Artifact size (MB)").fill("20")
    page.screenshot(path=str(screenshots / "design-edit.png"), full_page=True)
    form.get_by_role("button", name="Save card").click()
    expect(page.locator(".message-success")).to_contain_text("Saved the card of fraud-v2.")
    expect(card.locator(".design-missing")).to_have_text("Incomplete: missing fairness.")

    card.get_by_role("button", name="Complete design").click()
    expect(page.locator("body")).to_contain_text("lacks fairness")

    page.goto(f"{live_server.url}/models/fraud-v2/design/")
    form.get_by_label("Fairness").fill("Recall compared across issuing countries.")
    form.get_by_role("button", name="Save card").click()
    expect(card.locator(".design-complete")).to_be_visible()
    card.get_by_label("Reason").fill("card reviewed")
    card.get_by_role("button", name="Complete design").click()
    expect(page.locator(".message-success")).to_contain_text("Design of fraud-v2 completed")
    expect(page.locator(".facts").first).to_contain_text("Stageactive")
    expect(card).to_contain_text("Design completed")
    page.screenshot(path=str(screenshots / "design-completed.png"), full_page=True)

    model = RegisteredModel.objects.get(name="fraud-v2")
    assert model.stage == "active"
    assert {
        "type": "metric_threshold",
        "metric": "f1",
        "op": ">=",
        "value": 0.9,
        "stages": ["staging", "production"],
    } in model.policy["rules"]
