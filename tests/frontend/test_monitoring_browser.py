"""The monitoring page in a real browser: an approver reads a drift alert with its
plots, acknowledges and resolves it. Screenshots go to ``test-output/screenshots/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from lifecycle.governance.services.transitions import transition_request
from lifecycle.monitoring.models import Alert
from registry.choices import Stage
from tests.conftest import Actor
from tests.frontend.test_browser import browser, log_in, page, screenshots  # noqa: F401 (fixtures)
from tests.lifecycle.monitoring.test_alerts import monitored, stream
from tests.registry.factories import version_create

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def drift_alert(transactional_db, owner: Actor, approver: Actor, fraud_model) -> Alert:
    cancer = load_breast_cancer(as_frame=True).frame
    monitored(fraud_model, approver, owner, [{"type": "drift", "statistic": "psi", "windows": 2}])
    version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    transition_request(version=version, to=Stage.PRODUCTION, reason="first", actor=owner.user)
    stream(version, cancer, windows=3, scale=1.0)
    (alert,) = stream(version, cancer, windows=2, scale=1.5, first=3)
    return alert


def test_an_approver_reads_a_drift_alert_and_resolves_it(
    page,  # noqa: F811
    live_server,
    drift_alert: Alert,
    approver: Actor,
    screenshots: Path,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    log_in(page, live_server.url, approver)
    page.goto(f"{live_server.url}/models/fraud-detector/")
    page.get_by_role("link", name="Monitoring: alerts, drift and live metrics").click()
    row = page.locator(f"#alert-{drift_alert.pk}")
    expect(row).to_contain_text("firing")
    expect(row).to_contain_text("psi > 0.2")
    for plot in ("#drift-plot svg", "#metrics-plot svg", "#distribution-plot svg"):
        expect(page.locator(plot)).to_be_visible()
    page.get_by_label("Feature").select_option("worst area")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="worst area: reference vs live")).to_be_visible()
    page.screenshot(path=str(screenshots / "model-monitoring.png"), full_page=True)

    row = page.locator(f"#alert-{drift_alert.pk}")
    row.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".message-success")).to_contain_text(f"Alert #{drift_alert.pk} on v1 is acknowledged.")
    row = page.locator(f"#alert-{drift_alert.pk}")
    row.get_by_label("Comment").fill("new supplier's sensors, expected")
    row.get_by_role("button", name="Resolve").click()
    expect(page.locator(".message-success")).to_contain_text("is resolved")
    expect(page.locator(f"#alert-{drift_alert.pk}")).to_contain_text("resolved by approver")
    page.screenshot(path=str(screenshots / "model-monitoring-resolved.png"), full_page=True)
    drift_alert.refresh_from_db()
    assert drift_alert.resolution == "new supplier's sensors, expected"
