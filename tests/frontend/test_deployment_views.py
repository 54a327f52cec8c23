"""Deployments in the web UI through Django's test client: the model page's deployment
cards (routes and their weights, replica health, the latest revisions), the deployment
page with its whole history, and the forms that call the same services as the API
(``canary_set``, ``canary_promote``, ``canary_abort``, ``shadow_set``,
``deployment_stop``), shown only to the roles those services allow, refused (403) to
anyone else, 404 for another team, CSRF-checked.

Deployments are created with ``deployment_create`` (the scheduler's kick patched out:
replica jobs stay queued) and their replicas reported ready with ``replica_ready``, as
their program would."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from lifecycle.deployments import services
from lifecycle.deployments.choices import DeploymentState, ReplicaState
from lifecycle.deployments.models import Deployment, DeploymentRevision, Replica
from lifecycle.governance.models import Transition
from lifecycle.governance.services.transitions import transition_cancel
from registry.choices import Stage
from registry.models import ModelVersion
from registry.services import model_update
from tests.conftest import Actor
from tests.frontend.conftest import Story, client_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("quiet_scheduler")]

MODEL_PAGE = "/models/fraud-detector/"
SOAK_POLICY = {"rules": [{"type": "canary_soak", "minutes": 30, "stages": ["production"]}]}
THRESHOLD_POLICY = {"rules": [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8}]}


def _text(response) -> str:
    return response.content.decode()


def _card(page: str, deployment: Deployment) -> str:
    return page.split(f'id="deployment-{deployment.pk}"')[1].split("</article>")[0]


def _routes(deployment: Deployment) -> list[tuple[int, str, float]]:
    return sorted(
        (route.version.version, route.mode, round(route.weight, 6))
        for route in Deployment.objects.get(pk=deployment.pk).routes.select_related("version")
    )


def ready_all(deployment: Deployment) -> None:
    """Report every starting replica of the deployment ready, as its program would."""
    for replica in Replica.objects.filter(deployment=deployment, state=ReplicaState.STARTING):
        services.replica_ready(replica_id=replica.pk, url=f"http://10.0.0.7:{5500 + replica.pk}", host="gpu-1")


def deployment_of(story: Story, actor: Actor, *, name: str = "production", replicas: int = 1) -> Deployment:
    """A deployment of the production version (v1) whose replicas are ready."""
    deployment = services.deployment_create(actor=actor.user, model=story.model, name=name, replicas=replicas)
    ready_all(deployment)
    return Deployment.objects.get(pk=deployment.pk)


def canary_of_v2(deployment: Deployment, approver: Actor, weight: float = 0.2) -> None:
    services.canary_set(actor=approver.user, deployment=deployment, version=2, weight=weight, reason="try v2")


@pytest.fixture
def deployment(story: Story, owner: Actor) -> Deployment:
    return deployment_of(story, owner, replicas=2)


def _without_pending_request(story: Story, owner: Actor) -> None:
    """The story's v2 has an open request to production; a promotion would conflict."""
    transition_cancel(transition=story.pending, actor=owner.user, comment="promoted through a canary instead")


# --- the model page ------------------------------------------------------------------


def test_model_page_lists_deployments_with_routes_and_weights(
    deployment: Deployment, approver: Actor, viewer: Actor
) -> None:
    canary_of_v2(deployment, approver)

    page = _text(client_for(viewer).get(MODEL_PAGE))

    section = page.split('id="deployments-title"')[1].split("</section>")[0]
    assert '<span class="count">1</span>' in section
    card = _card(section, deployment)
    assert f'href="/deployments/{deployment.pk}/">production</a>' in card
    assert "status-ready" in card and ">default<" in card and ">follows production<" in card
    assert "Local worker · pool default" in card
    primary = card.split('data-route-mode="primary"')[1].split("</tr>")[0]
    canary = card.split('data-route-mode="canary"')[1].split("</tr>")[0]
    assert 'href="/models/fraud-detector/versions/1/">v1<' in primary
    assert 'value="0.800000"' in primary and "data-weight>80%<" in primary
    assert 'href="/models/fraud-detector/versions/2/">v2<' in canary
    assert 'value="0.200000"' in canary and "data-weight>20%<" in canary
    # Serving order: the primary first, whatever the table's own order.
    assert card.index('data-route-mode="primary"') < card.index('data-route-mode="canary"')


def test_a_shadow_route_shows_it_gets_no_live_traffic(deployment: Deployment, owner: Actor, viewer: Actor) -> None:
    services.shadow_set(actor=owner.user, deployment=deployment, version=2)
    card = _card(_text(client_for(viewer).get(MODEL_PAGE)), deployment)
    shadow = card.split('data-route-mode="shadow"')[1].split("</tr>")[0]
    assert "gets a copy of every call" in shadow and "<progress" not in shadow


def test_replica_health_appears_and_a_silent_replica_is_flagged(deployment: Deployment, viewer: Actor) -> None:
    first, second = Replica.objects.filter(deployment=deployment).order_by("pk")
    services.replica_heartbeat(replica_id=second.pk, healthy=False, detail="ping timed out", restarts=2)
    Replica.objects.filter(pk=first.pk).update(last_heartbeat=timezone.now() - timedelta(minutes=2))

    card = _card(_text(client_for(viewer).get(MODEL_PAGE)), deployment)

    silent = card.split(f'id="replica-{first.pk}"')[1].split("</tr>")[0]
    assert 'class="replica-silent"' in card.split(f'id="replica-{first.pk}"')[1][:40]
    assert "status-ready" in silent and ">silent<" in silent and "2\xa0minutes ago" in silent
    assert "gpu-1" in silent and f"http://10.0.0.7:{5500 + first.pk}" in silent
    assert f'href="/jobs/{first.job_id}/"' in silent
    unhealthy = card.split(f'id="replica-{second.pk}"')[1].split("</tr>")[0]
    assert "status-unhealthy" in unhealthy and "ping timed out" in unhealthy and ">2<" in unhealthy
    assert ">silent<" not in unhealthy and "just now" in unhealthy


def test_a_starting_replica_has_no_heartbeat_yet_and_is_not_flagged(story: Story, owner: Actor, viewer: Actor) -> None:
    deployment = services.deployment_create(actor=owner.user, model=story.model)
    card = _card(_text(client_for(viewer).get(MODEL_PAGE)), deployment)
    assert "status-starting" in card and "none yet" in card and "not placed yet" in card
    assert ">silent<" not in card


def test_the_latest_revisions_appear_on_the_model_page_and_all_on_the_deployment_page(
    deployment: Deployment, approver: Actor, viewer: Actor
) -> None:
    canary_of_v2(deployment, approver)
    for weight in (0.3, 0.5):
        services.canary_set(actor=approver.user, deployment=deployment, version=2, weight=weight, reason="widen")
    client = client_for(viewer)

    card = _card(_text(client.get(MODEL_PAGE)), deployment)
    numbers = re.findall(rf'id="revision-{deployment.pk}-(\d+)"', card)
    assert numbers == ["4", "3", "2"]
    newest = card.split(f'id="revision-{deployment.pk}-4"')[1].split("</tr>")[0]
    assert "<code>canary_widen</code>" in newest and ">approver<" in newest and ">widen<" in newest
    assert "v1 primary 70% · v2 canary 30%" in newest and "v1 primary 50% · v2 canary 50%" in newest
    assert f'href="/deployments/{deployment.pk}/#revisions-title">All 4 revisions' in card

    page = _text(client.get(f"/deployments/{deployment.pk}/"))
    history = page.split('id="revisions-title"')[1].split("</section>")[0]
    assert re.findall(rf'id="revision-{deployment.pk}-(\d+)"', history) == ["4", "3", "2", "1"]
    created = history.split(f'id="revision-{deployment.pk}-1"')[1].split("</tr>")[0]
    assert "<code>create</code>" in created and ">owner<" in created and "serve v1" in created
    assert "—</span>" in created and "v1 primary 100%" in created


def test_the_deployment_page_shows_every_replica_and_links_back_to_the_model(
    deployment: Deployment, approver: Actor, viewer: Actor
) -> None:
    canary_of_v2(deployment, approver)
    services.canary_abort(actor=approver.user, deployment=deployment, reason="no")
    services.deployments_reconcile()  # drains v2's replicas: no route needs them
    drained = Replica.objects.filter(deployment=deployment, version__version=2)
    assert {r.state for r in drained} == {ReplicaState.STOPPED}

    model_card = _card(_text(client_for(viewer).get(MODEL_PAGE)), deployment)
    assert f'id="replica-{drained[0].pk}"' not in model_card and "2 stopped or failed replicas" in model_card

    page = _text(client_for(viewer).get(f"/deployments/{deployment.pk}/"))
    assert '<a href="/models/fraud-detector/">fraud-detector</a>' in page
    assert all(f'id="replica-{r.pk}"' in page for r in Replica.objects.filter(deployment=deployment))


def test_the_empty_state_says_how_to_deploy_through_the_api(story: Story, viewer: Actor) -> None:
    page = _text(client_for(viewer).get(MODEL_PAGE))
    section = page.split('id="deployments-title"')[1].split("</section>")[0]
    assert "Not deployed yet." in section
    assert "-X POST http://testserver/api/v1/models/fraud-detector/deployments/" in section
    assert "Authorization: Bearer $TOKEN" in section


# --- who sees which form -------------------------------------------------------------


def test_an_approver_gets_the_canary_and_stop_forms_offering_only_servable_versions(
    deployment: Deployment, approver: Actor
) -> None:
    card = _card(_text(client_for(approver).get(MODEL_PAGE)), deployment)
    start = card.split('class="deployment-form canary-start"')[1].split("</form>")[0]
    # v1 is the primary, v3 is in evaluation: only v2 may be a canary.
    assert re.findall(r'<option value="(\d+)">', start) == ["2"]
    assert "Start canary" in start and 'name="csrfmiddlewaretoken"' in start
    assert 'name="next" value="/models/fraud-detector/"' in start
    assert "Stop deployment" in card and "Add shadow" in card
    assert "Promote canary" not in card and "Abort canary" not in card


def test_with_a_canary_running_the_approver_gets_weight_promote_and_abort(
    story: Story, deployment: Deployment, owner: Actor, approver: Actor
) -> None:
    _without_pending_request(story, owner)
    canary_of_v2(deployment, approver, weight=0.25)
    card = _card(_text(client_for(approver).get(MODEL_PAGE)), deployment)
    weight = card.split('class="deployment-form canary-weight"')[1].split("</form>")[0]
    assert 'name="version" value="2"' in weight and 'value="25"' in weight and "Set weight" in weight
    assert "Promote canary" in card and "Abort canary" in card and "Start canary" not in card


def test_a_developer_sees_no_canary_or_stop_buttons_only_the_shadow_form(deployment: Deployment, owner: Actor) -> None:
    card = _card(_text(client_for(owner).get(MODEL_PAGE)), deployment)
    for button in ("Start canary", "Set weight", "Promote canary", "Abort canary", "Stop deployment"):
        assert button not in card
    assert "Add shadow" in card


def test_a_viewer_sees_the_deployment_but_no_form(deployment: Deployment, approver: Actor, viewer: Actor) -> None:
    canary_of_v2(deployment, approver)
    for url in (MODEL_PAGE, f"/deployments/{deployment.pk}/"):
        card = _card(_text(client_for(viewer).get(url)), deployment)
        assert "<form" not in card and "Change the routes" not in card


def test_a_stopped_deployment_offers_no_form(deployment: Deployment, approver: Actor) -> None:
    services.deployment_stop(actor=approver.user, deployment=deployment, reason="retired")
    card = _card(_text(client_for(approver).get(MODEL_PAGE)), deployment)
    assert "status-stopped" in card and "retired" in card and "<form" not in card


# --- canaries ------------------------------------------------------------------------


def test_an_approver_starts_a_canary_at_20_percent_and_the_routes_become_80_20(
    deployment: Deployment, approver: Actor
) -> None:
    response = client_for(approver).post(
        f"/deployments/{deployment.pk}/canary/",
        {"version": "2", "weight": "20", "reason": "first look at v2", "next": MODEL_PAGE},
        follow=True,
    )

    assert response.redirect_chain == [(MODEL_PAGE, 302)]
    assert _routes(deployment) == [(1, "primary", 0.8), (2, "canary", 0.2)]
    page = _text(response)
    assert "Started a canary of v2 on fraud-detector/production: v1 primary 80% · v2 canary 20%." in page
    card = _card(page, deployment)
    assert "data-weight>80%<" in card.split('data-route-mode="primary"')[1].split("</tr>")[0]
    assert "data-weight>20%<" in card.split('data-route-mode="canary"')[1].split("</tr>")[0]
    revision = DeploymentRevision.objects.filter(deployment=deployment).first()
    assert (revision.action, revision.actor, revision.reason) == ("canary_start", approver.user, "first look at v2")
    # The canary's replicas are started: one per route replica, as jobs.
    assert Replica.objects.filter(deployment=deployment, version__version=2).count() == 2


def test_an_approver_widens_the_canary_from_the_deployment_page(deployment: Deployment, approver: Actor) -> None:
    canary_of_v2(deployment, approver)
    url = f"/deployments/{deployment.pk}/"
    response = client_for(approver).post(f"{url}canary/", {"version": "2", "weight": "50", "next": url}, follow=True)
    assert response.redirect_chain == [(url, 302)]
    assert "Changed the canary&#x27;s weight on fraud-detector/production: v1 primary 50% · v2 canary 50%." in _text(
        response
    )
    assert _routes(deployment) == [(1, "primary", 0.5), (2, "canary", 0.5)]
    assert DeploymentRevision.objects.filter(deployment=deployment).first().action == "canary_widen"


@pytest.mark.parametrize(
    ("weight", "expected"),
    [("100", "between 0 and 1"), ("0", "between 0 and 1"), ("150", "weight"), ("lots", "weight")],
)
def test_a_weight_outside_0_to_100_percent_is_refused(
    deployment: Deployment, approver: Actor, weight: str, expected: str
) -> None:
    response = client_for(approver).post(f"/deployments/{deployment.pk}/canary/", {"version": "2", "weight": weight})
    assert response.status_code == 400 and expected in _text(response)
    assert _routes(deployment) == [(1, "primary", 1.0)]


def test_a_version_in_evaluation_cannot_be_a_canary(deployment: Deployment, approver: Actor) -> None:
    response = client_for(approver).post(f"/deployments/{deployment.pk}/canary/", {"version": "3", "weight": "10"})
    assert response.status_code == 400 and "v3 is in evaluation" in _text(response)


def test_a_second_canary_of_another_version_is_a_conflict_page(
    story: Story, deployment: Deployment, approver: Actor
) -> None:
    canary_of_v2(deployment, approver)
    ModelVersion.objects.filter(pk=story.v3.pk).update(stage=Stage.STAGING)
    response = client_for(approver).post(f"/deployments/{deployment.pk}/canary/", {"version": "3", "weight": "10"})
    assert response.status_code == 409 and "promote or abort it first" in _text(response)
    assert _routes(deployment) == [(1, "primary", 0.8), (2, "canary", 0.2)]


@pytest.mark.parametrize("who", ["owner", "viewer"])
def test_a_canary_posted_by_a_developer_or_viewer_is_refused(request, deployment: Deployment, who: str) -> None:
    actor = request.getfixturevalue(who)
    client = client_for(actor)
    for url, data in (
        (f"/deployments/{deployment.pk}/canary/", {"version": "2", "weight": "20"}),
        (f"/deployments/{deployment.pk}/stop/", {"reason": "mine now"}),
    ):
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "Not allowed" in _text(response) and "needs the approver role" in _text(response)
    assert _routes(deployment) == [(1, "primary", 1.0)]
    assert Deployment.objects.get(pk=deployment.pk).state == DeploymentState.READY
    assert DeploymentRevision.objects.filter(deployment=deployment).count() == 1


def test_aborting_without_a_reason_is_refused_with_a_message(deployment: Deployment, approver: Actor) -> None:
    canary_of_v2(deployment, approver)
    client = client_for(approver)

    refused = client.post(f"/deployments/{deployment.pk}/abort-canary/", {"reason": "  "})

    assert refused.status_code == 400
    assert '<p class="message message-error" role="alert">aborting a canary needs a reason</p>' in _text(refused)
    assert _routes(deployment) == [(1, "primary", 0.8), (2, "canary", 0.2)]
    aborted = client.post(
        f"/deployments/{deployment.pk}/abort-canary/",
        {"reason": "p99 latency doubled", "next": MODEL_PAGE},
        follow=True,
    )
    assert "Aborted the canary of fraud-detector/production: v1 primary 100%." in _text(aborted)
    assert _routes(deployment) == [(1, "primary", 1.0)]
    assert DeploymentRevision.objects.filter(deployment=deployment).first().reason == "p99 latency doubled"


def test_aborting_when_there_is_no_canary_is_a_conflict(deployment: Deployment, approver: Actor) -> None:
    response = client_for(approver).post(f"/deployments/{deployment.pk}/abort-canary/", {"reason": "x"})
    assert response.status_code == 409 and "has no canary" in _text(response)


def test_promoting_the_canary_under_a_canary_soak_policy_shows_it_pending_with_its_gate(
    story: Story, deployment: Deployment, owner: Actor, approver: Actor
) -> None:
    model_update(actor=approver.user, model=story.model, changes={"policy": SOAK_POLICY})
    _without_pending_request(story, owner)
    canary_of_v2(deployment, approver, weight=0.1)
    client = client_for(approver)

    response = client.post(
        f"/deployments/{deployment.pk}/promote-canary/", {"reason": "looks fine", "next": MODEL_PAGE}, follow=True
    )

    transition = Transition.objects.get(version=story.v2, status="pending")
    assert transition.requested_by == approver.user and transition.reason == "looks fine"
    page = _text(response)
    message = page.split('class="messages"')[1].split("</ul>\n")[0]
    assert "message-info" in message
    assert (
        f"Promotion of the canary of fraud-detector/production: request #{transition.pk} for v2 is pending" in message
    )
    assert f'<a href="/#transition-{transition.pk}">Follow it in the approvals inbox</a>' in message
    assert "gate-icon gate-waiting" in message and "Canary soak" in message
    story.v2.refresh_from_db()
    assert story.v2.stage == Stage.STAGING
    # The card now points at the open request instead of offering a second promotion.
    card = _card(page, deployment)
    assert "Promote canary" not in card and f'href="/#transition-{transition.pk}">request #{transition.pk}</a>' in card
    # The deployment page shows the request with its gates; the inbox lists it.
    detail = _text(client.get(f"/deployments/{deployment.pk}/"))
    promotion = detail.split('id="promotion-title"')[1].split("</section>")[0]
    assert f'id="transition-{transition.pk}"' in promotion and "Canary soak" in promotion
    assert f'id="transition-{transition.pk}"' in _text(client.get("/"))


def test_promoting_the_canary_when_the_gates_pass_moves_the_primary(
    story: Story, deployment: Deployment, owner: Actor, approver: Actor
) -> None:
    model_update(actor=approver.user, model=story.model, changes={"policy": THRESHOLD_POLICY})
    _without_pending_request(story, owner)
    canary_of_v2(deployment, approver)

    response = client_for(approver).post(
        f"/deployments/{deployment.pk}/promote-canary/", {"next": MODEL_PAGE}, follow=True
    )

    assert "message-success" in _text(response) and "is applied: v2 is in production" in _text(response)
    assert _routes(deployment) == [(2, "primary", 1.0)]
    story.v2.refresh_from_db()
    assert story.v2.stage == Stage.PRODUCTION
    assert DeploymentRevision.objects.filter(deployment=deployment).first().action == "primary"


def test_a_canary_whose_version_has_an_open_request_links_it_and_a_second_promotion_conflicts(
    story: Story, deployment: Deployment, approver: Actor
) -> None:
    canary_of_v2(deployment, approver)
    client = client_for(approver)
    card = _card(_text(client.get(MODEL_PAGE)), deployment)
    assert "Promote canary" not in card
    assert f'<a href="/#transition-{story.pending.pk}">request #{story.pending.pk}</a>' in card
    response = client.post(f"/deployments/{deployment.pk}/promote-canary/", {})
    assert response.status_code == 409 and f"request #{story.pending.pk}" in _text(response)


# --- shadow and stop -----------------------------------------------------------------


def test_a_developer_adds_a_shadow(deployment: Deployment, owner: Actor) -> None:
    response = client_for(owner).post(
        f"/deployments/{deployment.pk}/shadow/", {"version": "2", "next": MODEL_PAGE}, follow=True
    )
    assert "v2 now shadows fraud-detector/production" in _text(response)
    assert _routes(deployment) == [(1, "primary", 1.0), (2, "shadow", 0.0)]
    assert DeploymentRevision.objects.filter(deployment=deployment).first().actor == owner.user


def test_a_viewer_cannot_add_a_shadow(deployment: Deployment, viewer: Actor) -> None:
    response = client_for(viewer).post(f"/deployments/{deployment.pk}/shadow/", {"version": "2"})
    assert response.status_code == 403
    assert _routes(deployment) == [(1, "primary", 1.0)]


def test_an_approver_stops_the_deployment_with_a_reason(deployment: Deployment, approver: Actor) -> None:
    client = client_for(approver)
    refused = client.post(f"/deployments/{deployment.pk}/stop/", {"reason": ""})
    assert refused.status_code == 400 and "stopping a deployment needs a reason" in _text(refused)
    assert Deployment.objects.get(pk=deployment.pk).state == DeploymentState.READY

    response = client.post(
        f"/deployments/{deployment.pk}/stop/",
        {"reason": "replaced by the batch scorer", "next": MODEL_PAGE},
        follow=True,
    )

    assert "Stopped fraud-detector/production: its routes left the route table" in _text(response)
    stopped = Deployment.objects.get(pk=deployment.pk)
    assert stopped.state == DeploymentState.STOPPED and stopped.state_detail == "replaced by the batch scorer"
    assert not Replica.objects.filter(deployment=deployment, state=ReplicaState.READY).exists()
    again = client.post(f"/deployments/{deployment.pk}/stop/", {"reason": "again"})
    assert again.status_code == 409 and "is stopped" in _text(again)


# --- settings ------------------------------------------------------------------------


def _settings(deployment: Deployment) -> tuple[int | None, float, bool]:
    fresh = Deployment.objects.get(pk=deployment.pk)
    return fresh.monitor_every_minutes, fresh.log_sample_rate, fresh.cache


def test_a_developer_changes_the_settings_from_the_model_page(deployment: Deployment, owner: Actor) -> None:
    client = client_for(owner)
    card = _card(_text(client.get(MODEL_PAGE)), deployment)
    form = card.split('class="deployment-form deployment-settings"')[1].split("</form>")[0]
    assert 'name="log_sample_rate"' in form and 'value="1"' in form and "Save settings" in form
    assert 'name="monitor_every_minutes"' in form and 'name="cache"' in form and "checked" not in form
    assert "100% of calls" in card

    response = client.post(
        f"/deployments/{deployment.pk}/settings/",
        {"log_sample_rate": "0.25", "monitor_every_minutes": "15", "cache": "on", "reason": "busy", "next": MODEL_PAGE},
        follow=True,
    )

    assert response.redirect_chain == [(MODEL_PAGE, 302)]
    assert _settings(deployment) == (15, 0.25, True)
    page = _text(response)
    assert "Settings of fraud-detector/production: logs 25% of calls, monitoring windows of every 15 min" in page
    card = _card(page, deployment)
    assert "25% of calls" in card and "every 15 min" in card
    assert 'value="0.25"' in card and 'value="15"' in card and "checked" in card
    revision = DeploymentRevision.objects.filter(deployment=deployment).first()
    assert (revision.action, revision.actor, revision.reason) == ("settings", owner.user, "busy")
    assert revision.after == {"monitor_every_minutes": 15, "log_sample_rate": 0.25, "cache": True}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"log_sample_rate": "1.5"}, "log_sample_rate must be between 0 and 1"),
        ({"log_sample_rate": "0.5", "monitor_every_minutes": "0"}, "monitor_every_minutes must be between 1 and"),
        ({"log_sample_rate": "often"}, "log_sample_rate"),
    ],
)
def test_a_bad_setting_is_refused_with_the_services_message_and_nothing_changes(
    deployment: Deployment, owner: Actor, values: dict[str, str], expected: str
) -> None:
    response = client_for(owner).post(f"/deployments/{deployment.pk}/settings/", values)
    assert response.status_code == 400 and expected in _text(response)
    assert _settings(deployment) == (None, 1.0, False)


def test_a_viewer_gets_no_settings_form_and_a_post_is_refused(deployment: Deployment, viewer: Actor) -> None:
    client = client_for(viewer)
    card = _card(_text(client.get(MODEL_PAGE)), deployment)
    assert "deployment-settings" not in card and "100% of calls" in card
    response = client.post(f"/deployments/{deployment.pk}/settings/", {"log_sample_rate": "0.5"})
    assert response.status_code == 403
    assert _settings(deployment) == (None, 1.0, False)


# --- visibility, login, CSRF ---------------------------------------------------------


def _forms(deployment: Deployment) -> list[tuple[str, dict[str, str]]]:
    base = f"/deployments/{deployment.pk}"
    return [
        (f"{base}/canary/", {"version": "2", "weight": "20"}),
        (f"{base}/shadow/", {"version": "2"}),
        (f"{base}/promote-canary/", {}),
        (f"{base}/abort-canary/", {"reason": "x"}),
        (f"{base}/stop/", {"reason": "x"}),
        (f"{base}/settings/", {"log_sample_rate": "0.5"}),
    ]


def test_another_teams_deployment_is_404(deployment: Deployment, outsider: Actor) -> None:
    client = client_for(outsider)
    assert client.get(f"/deployments/{deployment.pk}/").status_code == 404
    assert client.get("/deployments/999999/").status_code == 404
    for url, data in _forms(deployment):
        assert client.post(url, data).status_code == 404, url
    assert _routes(deployment) == [(1, "primary", 1.0)]


def test_the_deployment_page_and_forms_require_login(deployment: Deployment) -> None:
    client = Client()
    response = client.get(f"/deployments/{deployment.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    for url, data in _forms(deployment):
        response = client.post(url, data)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    assert DeploymentRevision.objects.filter(deployment=deployment).count() == 1


def test_the_forms_are_posts(deployment: Deployment, approver: Actor) -> None:
    client = client_for(approver)
    for url, _ in _forms(deployment):
        assert client.get(url).status_code == 405, url


def test_csrf_is_enforced_on_every_deployment_form(deployment: Deployment, approver: Actor) -> None:
    client = client_for(approver, enforce_csrf_checks=True)
    for url, data in _forms(deployment):
        assert client.post(url, data).status_code == 403, url
    assert DeploymentRevision.objects.filter(deployment=deployment).count() == 1
    # The page's own form carries the token, and then the same post goes through.
    page = _text(client.get(MODEL_PAGE))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    response = client.post(
        f"/deployments/{deployment.pk}/canary/", {"version": "2", "weight": "20", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert _routes(deployment) == [(1, "primary", 0.8), (2, "canary", 0.2)]


# --- cost ----------------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_pages_cost_the_same_queries_however_many_deployments_replicas_and_revisions(
    story: Story, deployment: Deployment, owner: Actor, approver: Actor
) -> None:
    canary_of_v2(deployment, approver)
    urls = (MODEL_PAGE, f"/deployments/{deployment.pk}/")
    client = client_for(approver)
    before = {url: _queries(client, url) for url in urls}

    ready_all(deployment)
    for weight in (0.3, 0.4, 0.5):
        canary_of_v2(deployment, approver, weight=weight)
    for number in range(3):
        other = deployment_of(story, owner, name=f"region-{number}", replicas=3)
        canary_of_v2(other, approver)
        ready_all(other)
    services.deployment_stop(actor=approver.user, deployment=other, reason="retired")
    client = client_for(approver)

    assert {url: _queries(client, url) for url in urls} == before
