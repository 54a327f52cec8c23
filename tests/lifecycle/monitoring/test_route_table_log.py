"""What the gateway needs for the prediction log comes in the route table: each
deployment's sample rate and its model's personal-data columns, republished when the
policy changes them."""

from __future__ import annotations

import pytest

from lifecycle.deployments.models import RouteTablePublication
from lifecycle.deployments.routing import RouteTableError, parse_route_table
from lifecycle.deployments.selectors import route_table_document
from registry.services import model_update
from tests.lifecycle.test_deployments import champion, deploy, no_broker  # noqa: F401

pytestmark = pytest.mark.django_db


def served(deployment_id: int):
    return next(d for d in parse_route_table(route_table_document()).deployments if d.id == deployment_id)


def test_a_deployment_publishes_its_sample_rate_and_the_models_pii_columns(owner, approver, fraud_model, champion):  # noqa: F811
    model_update(actor=approver.user, model=fraud_model, changes={"policy": {**fraud_model.policy, "pii": ["email"]}})
    body = deploy(owner, fraud_model, log_sample_rate=0.25)
    assert body["log_sample_rate"] == 0.25
    deployment = served(body["id"])
    assert (deployment.log_sample_rate, deployment.pii) == (0.25, ("email",))


def test_changing_the_pii_columns_republishes_the_route_table(owner, approver, fraud_model, champion):  # noqa: F811
    body = deploy(owner, fraud_model)
    assert served(body["id"]).pii == ()
    before = RouteTablePublication.objects.count()
    model_update(
        actor=approver.user, model=fraud_model, changes={"policy": {**fraud_model.policy, "pii": ["email", "name"]}}
    )
    assert RouteTablePublication.objects.count() == before + 1
    assert served(body["id"]).pii == ("email", "name")
    # A policy change that leaves the columns alone publishes nothing.
    model_update(actor=approver.user, model=fraud_model, changes={"policy": {"rules": [], "pii": ["email", "name"]}})
    assert RouteTablePublication.objects.count() == before + 1


@pytest.mark.parametrize("rate", [-0.1, 1.5, "all"])
def test_a_sample_rate_outside_zero_to_one_is_refused(owner, fraud_model, champion, rate):  # noqa: F811
    answer = owner.client.post(
        f"/api/v1/models/{fraud_model.name}/deployments/", {"log_sample_rate": rate}, format="json"
    )
    assert answer.status_code == 400 and "log_sample_rate" in answer.json()["error"]["details"]


@pytest.mark.parametrize(
    "log", [{"sample_rate": 2}, {"sample_rate": "half"}, {"pii": "email"}, {"pii": [1]}, ["sample_rate"]]
)
def test_a_route_table_with_a_bad_log_entry_is_refused(log):
    document = {"revision": 1, "deployments": [{"id": 1, "model": "m", "routes": [], "log": log}]}
    with pytest.raises(RouteTableError, match="log"):
        parse_route_table(document)


@pytest.mark.parametrize("pii", ["email", [""], [3]])
def test_a_policy_with_bad_pii_columns_is_refused(approver, fraud_model, pii):
    answer = approver.client.patch(
        f"/api/v1/models/{fraud_model.name}/", {"policy": {"rules": [], "pii": pii}}, format="json"
    )
    assert answer.status_code == 400
    assert any(key.startswith("policy.pii") for key in answer.json()["error"]["details"])
