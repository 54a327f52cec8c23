"""Monitor rules in a real browser: an approver sets a ``derive`` monitor (an incremental
update on the last 7 days of labelled predictions) on the monitoring page and sees it
listed; a bad parameter is shown by field and the form keeps what was typed.
Screenshots go to ``test-output/screenshots/``."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.models import RegisteredModel
from tests.conftest import Actor
from tests.frontend.test_browser import browser, log_in, page, screenshots  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.django_db(transaction=True)]

PARAMS = '{"data": {"source": "predictions", "days": 7, "min_rows": 20}}'


def test_an_approver_sets_a_derive_monitor_and_sees_it_listed(
    page,  # noqa: F811
    live_server,
    fraud_model,
    approver: Actor,
    screenshots: Path,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server.url, approver)
    page.goto(f"{live_server.url}/models/fraud-detector/")
    page.get_by_role("link", name="Monitoring: alerts, drift and live metrics").click()
    expect(page.get_by_text("No monitor rule: nothing watches this model's live traffic yet.")).to_be_visible()

    form = page.locator("form.monitor-form")
    form.get_by_label("Monitor type").select_option("drift")
    form.get_by_label("Drift statistic").select_option("psi")
    form.get_by_label("Windows in a row").fill("2")
    form.get_by_label("Action").select_option("derive")
    form.get_by_label("Derivation method").select_option("incremental")
    form.get_by_label("Parameters (JSON)").fill('{"data": {"source": "predictions", "days": 0}}')
    form.get_by_label("Reason").fill("refresh on drift")
    form.get_by_role("button", name="Add monitor rule").click()

    problem = page.locator(".monitor-problem")
    expect(problem).to_contain_text("params.data")
    expect(problem).to_contain_text("days must be between 1 and 365")
    expect(page.locator("form.monitor-form").get_by_label("Derivation method")).to_have_value("incremental")
    page.screenshot(path=str(screenshots / "monitor-rule-refused.png"), full_page=True)
    assert "monitors" not in RegisteredModel.objects.get(name="fraud-detector").policy

    form = page.locator("form.monitor-form")
    form.get_by_label("Parameters (JSON)").fill(PARAMS)
    form.get_by_role("button", name="Add monitor rule").click()

    expect(page.locator(".message-success")).to_contain_text("Monitor rule #1 added: drift → derive (incremental).")
    row = page.locator("#monitor-1")
    expect(row).to_contain_text("psi > 0.2 on any feature")
    expect(row).to_contain_text("derive")
    expect(row).to_contain_text("incremental")
    expect(row.locator(".monitor-params")).to_have_text(
        '{"data": {"days": 7, "min_rows": 20, "source": "predictions"}}'
    )
    page.screenshot(path=str(screenshots / "monitor-rule-derive.png"), full_page=True)
    (monitor,) = RegisteredModel.objects.get(name="fraud-detector").policy["monitors"]
    assert (monitor["action"], monitor["method"], monitor["windows"]) == ("derive", "incremental", 2)
    assert monitor["params"] == {"data": {"source": "predictions", "days": 7, "min_rows": 20}}
