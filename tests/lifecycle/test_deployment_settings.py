"""A deployment's settings changed after creation (``PATCH /api/v1/deployments/{id}/``,
``deployment_settings_update``): its monitoring windows, log sample rate and cache,
checked as creation checks them, by the role creation needs, each change a revision and
an audit record with before, after and reason, the gateway's route table republished when
it reads what changed, and the next monitoring pass moved to the end of the current
window of a new length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lifecycle.deployments import services
from lifecycle.deployments.models import Deployment, DeploymentRevision, RouteTablePublication
from lifecycle.deployments.monitor_windows import window_floor
from lifecycle.deployments.routing import parse_route_table
from lifecycle.deployments.selectors import route_table_document
from lifecycle.governance.models import AuditRecord
from lifecycle.governance.services.audit import audit_verify
from lifecycle.governance.services.transitions import transition_request
from registry.choices import Stage
from registry.errors import Forbidden, InvalidInput
from registry.models import ModelVersion, RegisteredModel
from tests.lifecycle.test_deployments import deploy
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db

SETTINGS = ("monitor_every_minutes", "log_sample_rate", "cache")


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    """Replicas are queued, never dispatched."""
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


@pytest.fixture
def champion(fraud_model: RegisteredModel, owner) -> ModelVersion:
    v1 = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    assert transition_request(version=v1, to=Stage.PRODUCTION, reason="first", actor=owner.user).status == "applied"
    return v1


@pytest.fixture
def deployment(owner, fraud_model, champion) -> Deployment:
    body = deploy(owner, fraud_model, name="web", log_sample_rate=1.0)
    return Deployment.objects.get(pk=body["id"])


def patch(actor, deployment: Deployment, body: Any):
    return actor.client.patch(f"/api/v1/deployments/{deployment.pk}/", body, format="json")


def stored(deployment: Deployment) -> dict[str, Any]:
    fresh = Deployment.objects.get(pk=deployment.pk)
    return {
        **{name: getattr(fresh, name) for name in SETTINGS},
        "revision": fresh.revision,
        "monitor_due_at": fresh.monitor_due_at,
    }


def gateway_view(deployment: Deployment):
    """The deployment as the gateway reads it from the route table in force."""
    table = parse_route_table(route_table_document())
    return next(d for d in table.deployments if d.id == deployment.pk)


def test_a_developer_changes_the_settings_and_gets_the_deployment_back(owner, deployment):
    response = patch(owner, deployment, {"monitor_every_minutes": 15, "log_sample_rate": 0.25, "cache": True})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["monitor_every_minutes"], body["log_sample_rate"], body["cache"]) == (15, 0.25, True)
    assert body["revision"] == deployment.revision + 1
    assert body["revisions"][0]["action"] == "settings"
    assert stored(deployment)["monitor_every_minutes"] == 15
    assert stored(deployment)["log_sample_rate"] == 0.25 and stored(deployment)["cache"] is True


def test_the_gateways_route_table_carries_the_new_sample_rate_and_cache(owner, deployment):
    assert (gateway_view(deployment).log_sample_rate, gateway_view(deployment).cache) == (1.0, False)
    published = RouteTablePublication.objects.count()

    assert patch(owner, deployment, {"log_sample_rate": 0.1, "cache": True}).status_code == 200

    assert RouteTablePublication.objects.count() == published + 1
    assert (gateway_view(deployment).log_sample_rate, gateway_view(deployment).cache) == (0.1, True)


def test_a_new_window_length_alone_publishes_no_route_table(owner, deployment):
    published = RouteTablePublication.objects.count()
    assert patch(owner, deployment, {"monitor_every_minutes": 30}).status_code == 200
    assert RouteTablePublication.objects.count() == published
    assert stored(deployment)["monitor_every_minutes"] == 30


def test_a_new_window_length_makes_the_deployment_due_when_its_current_window_ends(owner, deployment):
    far = datetime(2100, 1, 1, tzinfo=UTC)
    Deployment.objects.filter(pk=deployment.pk).update(monitor_due_at=far)
    before = datetime.now(UTC)

    assert patch(owner, deployment, {"monitor_every_minutes": 10}).status_code == 200

    after = datetime.now(UTC)
    due = stored(deployment)["monitor_due_at"]
    step = timedelta(minutes=10)
    assert due in {window_floor(before, step) + step, window_floor(after, step) + step}
    assert before < due <= after + step

    # The sample rate alone leaves the schedule as it is.
    Deployment.objects.filter(pk=deployment.pk).update(monitor_due_at=far)
    assert patch(owner, deployment, {"log_sample_rate": 0.5}).status_code == 200
    assert stored(deployment)["monitor_due_at"] == far


def test_back_to_the_default_window_length_with_null(owner, fraud_model, champion):
    body = deploy(owner, fraud_model, name="slow", monitor_every_minutes=60)
    response = owner.client.patch(f"/api/v1/deployments/{body['id']}/", {"monitor_every_minutes": None}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["monitor_every_minutes"] is None
    assert Deployment.objects.get(pk=body["id"]).monitor_every_minutes is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"log_sample_rate": 1.5}, "log_sample_rate"),
        ({"log_sample_rate": -0.1}, "log_sample_rate"),
        ({"log_sample_rate": "often"}, "log_sample_rate"),
        ({"cache": True, "monitor_every_minutes": 0}, "monitor_every_minutes"),
        ({"log_sample_rate": 0.5, "monitor_every_minutes": 10081}, "monitor_every_minutes"),
        ({"monitor_every_minutes": 2.5}, "monitor_every_minutes"),
        ({"cache": "maybe"}, "cache"),
        ({"log_sample_rate": 0.5, "replicas": 4}, "replicas"),
    ],
)
def test_a_bad_value_is_a_400_naming_the_field_and_nothing_changes(owner, deployment, body, field):
    before = stored(deployment)
    published = RouteTablePublication.objects.count()
    audited = AuditRecord.objects.count()

    response = patch(owner, deployment, body)

    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"], response.json()
    assert stored(deployment) == before
    assert RouteTablePublication.objects.count() == published and AuditRecord.objects.count() == audited


def test_the_api_refuses_a_bad_value_with_the_message_creation_gives(owner, fraud_model, deployment):
    created = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/deployments/", {"name": "x", "log_sample_rate": 2}, format="json"
    )
    changed = patch(owner, deployment, {"log_sample_rate": 2})
    assert created.status_code == changed.status_code == 400
    assert (
        created.json()["error"]["details"]["log_sample_rate"] == changed.json()["error"]["details"]["log_sample_rate"]
    )


@pytest.mark.parametrize(
    "values",
    [{"log_sample_rate": 1.01}, {"monitor_every_minutes": 0}, {"monitor_every_minutes": 10081}, {"cache": "yes"}],
)
def test_the_service_refuses_what_creation_refuses_with_the_same_message(owner, fraud_model, deployment, values):
    with pytest.raises(InvalidInput) as at_creation:
        services.deployment_create(actor=owner.user, model=fraud_model, name="other", **values)
    before = stored(deployment)

    with pytest.raises(InvalidInput) as on_change:
        services.deployment_settings_update(actor=owner.user, deployment=deployment, changes=values)

    assert (str(on_change.value), on_change.value.details) == (str(at_creation.value), at_creation.value.details)
    assert stored(deployment) == before


def test_a_viewer_is_refused_and_nothing_changes(viewer, deployment):
    before = stored(deployment)
    response = patch(viewer, deployment, {"log_sample_rate": 0.5})
    assert response.status_code == 403
    assert stored(deployment) == before
    with pytest.raises(Forbidden):
        services.deployment_settings_update(actor=viewer.user, deployment=deployment, changes={"cache": True})


def test_another_teams_deployment_is_not_found(outsider, deployment):
    before = stored(deployment)
    assert patch(outsider, deployment, {"log_sample_rate": 0.5}).status_code == 404
    assert stored(deployment) == before


def test_the_change_is_a_revision_and_an_audit_record_with_before_after_and_reason(owner, deployment):
    response = patch(owner, deployment, {"log_sample_rate": 0.2, "reason": "traffic grew tenfold"})
    assert response.status_code == 200, response.json()

    revision = DeploymentRevision.objects.get(deployment=deployment, number=response.json()["revision"])
    expected_before = {"monitor_every_minutes": None, "log_sample_rate": 1.0, "cache": False}
    expected_after = {"monitor_every_minutes": None, "log_sample_rate": 0.2, "cache": False}
    assert (revision.action, revision.reason, revision.actor_id) == ("settings", "traffic grew tenfold", owner.user.pk)
    assert (revision.before, revision.after) == (expected_before, expected_after)
    record = AuditRecord.objects.get(action="deployment.settings", object_id=str(deployment.pk))
    assert record.before == expected_before and record.reason == "traffic grew tenfold"
    assert {k: record.after[k] for k in SETTINGS} == expected_after
    assert record.actor_name == owner.user.username
    assert audit_verify().valid


def test_values_equal_to_the_current_ones_record_nothing(owner, deployment):
    before = stored(deployment)
    audited = AuditRecord.objects.count()
    response = patch(owner, deployment, {"log_sample_rate": 1.0, "cache": False})
    assert response.status_code == 200
    assert stored(deployment) == before and AuditRecord.objects.count() == audited


def test_a_stopped_deployment_cannot_be_changed(owner, approver, deployment):
    services.deployment_stop(actor=approver.user, deployment=deployment, reason="retired")
    response = patch(owner, deployment, {"log_sample_rate": 0.5})
    assert response.status_code == 409
    assert stored(deployment)["log_sample_rate"] == 1.0
