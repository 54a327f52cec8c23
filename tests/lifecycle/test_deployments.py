"""Deployments as records with history: routes, revisions, the published route table,
canaries under the model's policy, and the primary route following promotions and
rollbacks in the same transaction. Replicas here are rows reported ready by hand; the
real scoring servers are in ``test_replicas.py``."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle.deployments import services
from lifecycle.deployments.choices import DeploymentState, ReplicaState
from lifecycle.deployments.models import Deployment, DeploymentRevision, Replica, RouteTablePublication
from lifecycle.deployments.routing import parse_route_table
from lifecycle.deployments.selectors import route_table_document
from lifecycle.governance.models import AuditRecord, Transition
from lifecycle.governance.services.audit import audit_verify
from lifecycle.governance.services.transitions import model_rollback, transition_request
from lifecycle.jobs.choices import JobKind, JobState
from lifecycle.jobs.models import Job
from lifecycle.jobs.outcomes import job_outcome_apply
from registry.choices import Stage
from registry.models import ModelVersion, RegisteredModel
from registry.services import model_update
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db

NO_SOAK_POLICY = {"rules": [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8}]}


@pytest.fixture(autouse=True)
def no_broker(monkeypatch) -> None:
    """Jobs are queued, never dispatched: replicas are reported ready by the tests."""
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


@pytest.fixture
def champion(fraud_model: RegisteredModel, owner) -> ModelVersion:
    v1 = version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.9})
    transition = transition_request(version=v1, to=Stage.PRODUCTION, reason="first", actor=owner.user)
    assert transition.status == "applied", transition.status_detail
    v1.refresh_from_db()
    return v1


@pytest.fixture
def challenger(fraud_model: RegisteredModel) -> ModelVersion:
    return version_create(model=fraud_model, stage=Stage.STAGING, metrics={"f1": 0.95})


def deploy(actor, model: RegisteredModel, **body: Any) -> dict[str, Any]:
    response = actor.client.post(f"/api/v1/models/{model.name}/deployments/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def ready_all(deployment_id: int) -> None:
    """Report every live replica of the deployment ready, as its program would."""
    for replica in Replica.objects.filter(deployment_id=deployment_id, state=ReplicaState.STARTING):
        services.replica_ready(replica_id=replica.pk, url=f"http://127.0.0.1:{9000 + replica.pk}", host="127.0.0.1")


def table_routes(deployment_id: int) -> list[tuple[int, str, float, int]]:
    table = parse_route_table(route_table_document())
    deployment = next(d for d in table.deployments if d.id == deployment_id)
    return [(r.version, r.mode, round(r.weight, 6), len(r.replicas)) for r in deployment.routes]


def test_a_deployment_serves_the_production_version_by_default(owner, fraud_model, champion):
    body = deploy(owner, fraud_model, replicas=2)

    assert body["state"] == "starting"
    assert body["follows_production"] is True and body["default"] is True
    assert [(r["version"], r["mode"], r["weight"]) for r in body["routes"]] == [(1, "primary", 1.0)]
    assert [r["state"] for r in body["replicas"]] == ["starting", "starting"]
    jobs = Job.objects.filter(kind=JobKind.DEPLOY, model=fraud_model)
    assert jobs.count() == 2 and {j.state for j in jobs} == {JobState.QUEUED}
    assert jobs.first().spec["params"]["program"] == "replica"
    assert [r["number"] for r in body["revisions"]] == [1]
    assert AuditRecord.objects.filter(action="deployment.create", object_id=str(body["id"])).count() == 1
    assert table_routes(body["id"]) == [(1, "primary", 1.0, 0)]


def test_ready_replicas_enter_the_route_table_and_the_deployment_becomes_ready(owner, fraud_model, champion):
    body = deploy(owner, fraud_model)
    before = RouteTablePublication.objects.count()

    ready_all(body["id"])

    assert Deployment.objects.get(pk=body["id"]).state == DeploymentState.READY
    assert table_routes(body["id"]) == [(1, "primary", 1.0, 1)]
    assert RouteTablePublication.objects.count() > before
    assert route_table_document()["revision"] == RouteTablePublication.objects.order_by("-id").first().pk
    from lifecycle.governance.models import OutboxEvent

    assert OutboxEvent.objects.filter(event_type="deployment.ready").count() == 1


def test_a_version_still_in_training_is_not_served(owner, fraud_model, champion):
    version_create(model=fraud_model, stage=Stage.TRAINING)
    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/deployments/", {"version": 2}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"version": "v2 is in training"}


def test_a_model_without_production_needs_a_version_named(owner, fraud_model):
    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/deployments/", {}, format="json")
    assert response.status_code == 400
    assert "version" in response.json()["error"]["details"]


def test_a_deployment_name_of_digits_is_refused_as_it_would_read_as_an_id(owner, fraud_model, champion):
    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/deployments/", {"name": "42"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"name": "all digits"}
    assert Deployment.objects.count() == 0


def test_a_second_deployment_of_the_same_name_is_a_conflict_and_nothing_changes(owner, fraud_model, champion):
    deploy(owner, fraud_model)
    response = owner.client.post(f"/api/v1/models/{fraud_model.name}/deployments/", {}, format="json")
    assert response.status_code == 409
    assert Deployment.objects.count() == 1 and Job.objects.filter(kind=JobKind.DEPLOY).count() == 1


def test_an_approver_starts_and_widens_a_canary_with_a_revision_each(
    owner, approver, fraud_model, champion, challenger
):
    body = deploy(owner, fraud_model)
    ready_all(body["id"])

    started = approver.client.post(
        f"/api/v1/deployments/{body['id']}/canary/", {"version": 2, "weight": 0.2}, format="json"
    )
    assert started.status_code == 200, started.json()
    assert [(r["version"], r["mode"], round(r["weight"], 6)) for r in started.json()["routes"]] == [
        (2, "canary", 0.2),
        (1, "primary", 0.8),
    ]
    # v2 has no replica answering yet: the deployment is degraded until it has.
    assert started.json()["state"] == "degraded"
    widened = approver.client.post(
        f"/api/v1/deployments/{body['id']}/canary/", {"version": 2, "weight": 0.5}, format="json"
    )
    assert widened.status_code == 200

    revisions = list(DeploymentRevision.objects.filter(deployment_id=body["id"]).order_by("number"))
    assert [r.action for r in revisions] == ["create", "canary_start", "canary_widen"]
    assert revisions[2].before["routes"] != revisions[2].after["routes"]
    assert revisions[2].actor == approver.user
    ready_all(body["id"])
    assert table_routes(body["id"]) == [(1, "primary", 0.5, 1), (2, "canary", 0.5, 1)]
    assert Deployment.objects.get(pk=body["id"]).state == DeploymentState.READY


@pytest.mark.parametrize("who", ["owner", "viewer"])
def test_only_approvers_start_a_canary(request, who, owner, fraud_model, champion, challenger):
    body = deploy(owner, fraud_model)
    actor = request.getfixturevalue(who)
    response = actor.client.post(
        f"/api/v1/deployments/{body['id']}/canary/", {"version": 2, "weight": 0.2}, format="json"
    )
    assert response.status_code == 403
    assert DeploymentRevision.objects.filter(deployment_id=body["id"]).count() == 1


def test_another_teams_deployment_is_not_found(owner, outsider, fraud_model, champion):
    body = deploy(owner, fraud_model)
    assert outsider.client.get(f"/api/v1/deployments/{body['id']}/").status_code == 404
    assert (
        outsider.client.post(f"/api/v1/deployments/{body['id']}/stop/", {"reason": "x"}, format="json").status_code
        == 404
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"version": 2, "weight": 1.5}, "weight"), ({"version": 2}, "weight"), ({"weight": 0.2}, "version")],
)
def test_a_bad_canary_request_names_the_field(approver, owner, fraud_model, champion, challenger, payload, field):
    body = deploy(owner, fraud_model)
    response = approver.client.post(f"/api/v1/deployments/{body['id']}/canary/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_promoting_the_canary_is_a_governed_transition_that_moves_the_primary(
    owner, approver, fraud_model, champion, challenger
):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": NO_SOAK_POLICY})
    body = deploy(owner, fraud_model)
    ready_all(body["id"])
    approver.client.post(f"/api/v1/deployments/{body['id']}/canary/", {"version": 2, "weight": 0.2}, format="json")
    ready_all(body["id"])

    promoted = approver.client.post(
        f"/api/v1/deployments/{body['id']}/promote-canary/", {"reason": "soaked"}, format="json"
    )

    assert promoted.status_code == 200, promoted.json()
    assert promoted.json()["status"] == "applied"
    assert Transition.objects.get(pk=promoted.json()["id"]).version.version == 2
    detail = approver.client.get(f"/api/v1/deployments/{body['id']}/").json()
    assert [(r["version"], r["mode"], r["weight"]) for r in detail["routes"]] == [(2, "primary", 1.0)]
    assert detail["revisions"][0]["action"] == "primary"
    assert table_routes(body["id"]) == [(2, "primary", 1.0, 1)]
    assert audit_verify().valid


def test_a_canary_soak_gate_waits_until_the_canary_has_run_long_enough(
    owner, approver, fraud_model, champion, challenger
):
    policy = {"rules": [{"type": "canary_soak", "minutes": 30, "stages": ["production"]}]}
    model_update(actor=approver.user, model=fraud_model, changes={"policy": policy})
    body = deploy(owner, fraud_model)
    waiting_before = transition_request(version=challenger, to=Stage.PRODUCTION, reason="early", actor=owner.user)
    assert "canary not started" in waiting_before.status_detail
    waiting_before.delete()

    approver.client.post(f"/api/v1/deployments/{body['id']}/canary/", {"version": 2, "weight": 0.1}, format="json")
    promoted = approver.client.post(f"/api/v1/deployments/{body['id']}/promote-canary/", {}, format="json").json()

    assert promoted["status"] == "pending"
    gate = promoted["gates"][0]
    assert gate["rule"] == "canary_soak" and gate["status"] == "waiting"
    assert gate["data"]["started_at"] is not None
    assert ModelVersion.objects.get(pk=challenger.pk).stage == Stage.STAGING


def test_a_rollback_moves_the_primary_back_and_the_old_version_serves_until_the_new_is_ready(
    owner, approver, fraud_model, champion, challenger
):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": NO_SOAK_POLICY})
    body = deploy(owner, fraud_model)
    ready_all(body["id"])
    assert (
        transition_request(version=challenger, to=Stage.PRODUCTION, reason="v2", actor=owner.user).status == "applied"
    )
    # v2 has no ready replica yet: v1 keeps answering, under its own number.
    assert table_routes(body["id"]) == [(1, "primary", 1.0, 1)]
    ready_all(body["id"])
    assert table_routes(body["id"]) == [(2, "primary", 1.0, 1)]

    model_rollback(model=fraud_model, actor=approver.user, reason="v2 misbehaves")

    deployment = Deployment.objects.get(pk=body["id"])
    assert deployment.routes.get().version.version == 1
    # v1's replica is still up (not drained: v2 was never without it), so the switch is immediate.
    assert table_routes(body["id"]) == [(1, "primary", 1.0, 1)]
    assert DeploymentRevision.objects.filter(deployment=deployment).first().reason == "v2 misbehaves"


def test_reconciliation_drains_replicas_no_route_needs_once_the_routes_are_ready(
    owner, approver, fraud_model, champion, challenger
):
    model_update(actor=approver.user, model=fraud_model, changes={"policy": NO_SOAK_POLICY})
    body = deploy(owner, fraud_model)
    ready_all(body["id"])
    transition_request(version=challenger, to=Stage.PRODUCTION, reason="v2", actor=owner.user)

    assert services.deployments_reconcile() == {"started": 0, "drained": 0}  # v2 not ready: v1 stays
    ready_all(body["id"])
    assert services.deployments_reconcile() == {"started": 0, "drained": 1}

    v1_replica = Replica.objects.get(deployment_id=body["id"], version=champion)
    # Its job had not started (nothing runs jobs here): cancelled at once, so the replica is stopped.
    assert Job.objects.get(pk=v1_replica.job_id).state == JobState.CANCELLED
    assert v1_replica.state == ReplicaState.STOPPED
    assert table_routes(body["id"]) == [(2, "primary", 1.0, 1)]


def test_aborting_a_canary_gives_the_primary_all_traffic(owner, approver, fraud_model, champion, challenger):
    body = deploy(owner, fraud_model)
    approver.client.post(f"/api/v1/deployments/{body['id']}/canary/", {"version": 2, "weight": 0.3}, format="json")

    missing_reason = approver.client.post(f"/api/v1/deployments/{body['id']}/abort-canary/", {}, format="json")
    assert missing_reason.status_code == 400
    aborted = approver.client.post(
        f"/api/v1/deployments/{body['id']}/abort-canary/", {"reason": "errors up"}, format="json"
    )

    assert aborted.status_code == 200
    assert [(r["version"], r["mode"], r["weight"]) for r in aborted.json()["routes"]] == [(1, "primary", 1.0)]


def test_a_shadow_gets_no_live_traffic(owner, fraud_model, champion, challenger):
    body = deploy(owner, fraud_model)
    response = owner.client.post(f"/api/v1/deployments/{body['id']}/shadow/", {"version": 2}, format="json")
    assert response.status_code == 200
    ready_all(body["id"])
    assert table_routes(body["id"]) == [(1, "primary", 1.0, 1), (2, "shadow", 0.0, 1)]


def test_stopping_takes_the_deployment_out_of_the_table_and_cancels_its_replicas(
    owner, approver, fraud_model, champion
):
    body = deploy(owner, fraud_model, replicas=2)
    assert (
        owner.client.post(f"/api/v1/deployments/{body['id']}/stop/", {"reason": "x"}, format="json").status_code == 403
    )

    stopped = approver.client.post(f"/api/v1/deployments/{body['id']}/stop/", {"reason": "retired"}, format="json")

    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert route_table_document()["deployments"] == []
    assert set(Job.objects.filter(kind=JobKind.DEPLOY).values_list("state", flat=True)) == {JobState.CANCELLED}
    again = approver.client.post(
        f"/api/v1/deployments/{body['id']}/canary/", {"version": 1, "weight": 0.1}, format="json"
    )
    assert again.status_code == 409


def test_a_replica_whose_job_failed_is_failed_and_three_in_a_row_fail_the_deployment(owner, fraud_model, champion):
    body = deploy(owner, fraud_model)
    for attempt in range(services.MAX_REPLICA_FAILURES):
        replica = Replica.objects.filter(deployment_id=body["id"]).exclude(state=ReplicaState.FAILED).get()
        services.replica_failed(replica_id=replica.pk, detail="the artifact does not match the digest recorded")
        Job.objects.filter(pk=replica.job_id).update(state=JobState.FAILED)
        job_outcome_apply(job_id=replica.job_id)
        if attempt < services.MAX_REPLICA_FAILURES - 1:
            services.deployments_reconcile()

    deployment = Deployment.objects.get(pk=body["id"])
    assert deployment.state == DeploymentState.FAILED
    assert "does not match the digest" in deployment.state_detail


def test_a_ready_replica_that_stops_reporting_is_marked_unhealthy_and_tried_last(owner, fraud_model, champion):
    from datetime import timedelta

    from django.utils import timezone

    body = deploy(owner, fraud_model, replicas=2)
    ready_all(body["id"])
    quiet, talking = Replica.objects.filter(deployment_id=body["id"]).order_by("id")
    Replica.objects.filter(pk=quiet.pk).update(last_heartbeat=timezone.now() - timedelta(minutes=5))

    services.deployments_reconcile()

    assert Replica.objects.get(pk=quiet.pk).state == ReplicaState.UNHEALTHY
    table = parse_route_table(route_table_document())
    replicas = table.deployment_for(fraud_model.name).primary.replicas
    assert {(r.id, r.healthy) for r in replicas} == {(quiet.pk, False), (talking.pk, True)}
    assert services.replica_heartbeat(replica_id=quiet.pk, healthy=True) is True
    assert Replica.objects.get(pk=quiet.pk).state == ReplicaState.READY
