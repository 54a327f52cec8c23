"""The monitoring page: alerts with their actions, drift and live metrics plotted, the
reference against the live distribution of a feature; approvers acknowledge and resolve
there, others see no button and are refused if they post anyway."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_breast_cancer

from lifecycle.governance.models import AuditRecord
from lifecycle.monitoring.models import Alert
from tests.frontend.conftest import client_for
from tests.lifecycle.monitoring.test_alerts import monitored, stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerted(owner, approver, fraud_model) -> Alert:
    from lifecycle.governance.services.transitions import transition_request
    from registry.choices import Stage
    from tests.registry.factories import version_create

    cancer = load_breast_cancer(as_frame=True).frame
    monitored(fraud_model, approver, owner, [{"type": "drift", "statistic": "psi", "windows": 2}])
    version = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    transition_request(version=version, to=Stage.PRODUCTION, reason="first", actor=owner.user)
    stream(version, cancer, windows=1, scale=1.0)
    (alert,) = stream(version, cancer, windows=2, scale=1.5, first=1)
    return alert


def test_the_page_shows_alerts_drift_metrics_and_a_features_distributions(viewer, alerted):
    page = client_for(viewer).get("/models/fraud-detector/monitoring/?feature=mean radius")
    assert page.status_code == 200
    text = page.content.decode()
    assert f'id="alert-{alerted.pk}"' in text and "firing" in text
    for plot in ("drift-plot", "metrics-plot", "distribution-plot"):
        assert f'id="{plot}"><svg' in text
    assert "mean radius: reference vs live" in text
    # A viewer sees no button.
    assert "/acknowledge/" not in text


def test_an_approver_acknowledges_then_resolves_from_the_page(approver, alerted):
    client = client_for(approver)
    page = client.get("/models/fraud-detector/monitoring/").content.decode()
    assert f"/alerts/{alerted.pk}/acknowledge/" in page
    client.post(f"/alerts/{alerted.pk}/acknowledge/", {"comment": "looking"})
    alerted.refresh_from_db()
    assert alerted.status == "acknowledged"
    answer = client.post(f"/alerts/{alerted.pk}/resolve/", {"comment": "new supplier"}, follow=True)
    assert "is resolved" in answer.content.decode()
    alerted.refresh_from_db()
    assert (alerted.status, alerted.resolution) == ("resolved", "new supplier")
    assert AuditRecord.objects.filter(action="alert.resolved", actor_name="approver").count() == 1


def test_a_viewer_posting_the_form_anyway_is_refused(viewer, alerted):
    answer = client_for(viewer).post(f"/alerts/{alerted.pk}/resolve/", {"comment": "no"})
    assert answer.status_code == 403
    alerted.refresh_from_db()
    assert alerted.status == "firing"


def test_another_teams_model_and_alert_are_not_found(outsider, alerted):
    client = client_for(outsider)
    assert client.get("/models/fraud-detector/monitoring/").status_code == 404
    assert client.post(f"/alerts/{alerted.pk}/acknowledge/", {}).status_code == 404


def test_a_model_without_windows_says_so(viewer, fraud_model):
    text = client_for(viewer).get("/models/fraud-detector/monitoring/").content.decode()
    assert "No alert yet" in text and "No window computed yet" in text


def test_the_page_opens_on_the_production_version_and_follows_the_chosen_one(viewer, fraud_model, alerted):
    from registry.choices import Stage
    from tests.registry.factories import version_create

    candidate = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.95})
    stream(candidate, load_breast_cancer(as_frame=True).frame, windows=1, scale=1.0, first=5)
    client = client_for(viewer)
    assert '<option value="1" selected>' in client.get("/models/fraud-detector/monitoring/").content.decode()
    chosen = client.get(f"/models/fraud-detector/monitoring/?version={candidate.version}").content.decode()
    assert f'<option value="{candidate.version}" selected>' in chosen
