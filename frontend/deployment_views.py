"""The web UI's deployment page and the forms that change a deployment's routes.

As everywhere in the UI: what a user sees comes from ``lifecycle.deployments.selectors``
(``deployments_visible_to`` scoping: another team's deployment answers 404), and what
they do goes through the services the REST API calls (``canary_set``,
``canary_promote``, ``canary_abort``, ``shadow_set``, ``deployment_stop``,
``deployment_settings_update``), which check
the role again: a form the page does not show is refused if posted anyway (403).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_POST

from frontend.affordances import transitions_with_actions
from frontend.deployment_cards import deployment_cards
from frontend.forms import CanaryForm, DeploymentReasonForm, DeploymentSettingsForm, ShadowForm, form_data
from frontend.templatetags.modelgate_ui import gate_icon, route_snapshot, rule_label, weight_percent
from frontend.views import OUTCOME_LEVELS, back_url, page_view, paginate
from lifecycle.deployments import selectors as deployment_selectors
from lifecycle.deployments import services as deployment_services
from lifecycle.deployments.choices import RouteMode
from lifecycle.deployments.models import Deployment
from lifecycle.governance.choices import TransitionStatus
from lifecycle.governance.models import Transition


def _done(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    """Back to the page the form was on (the model page or the deployment's own)."""
    return redirect(back_url(request, reverse("frontend:deployment-detail", kwargs={"pk": deployment.pk})))


def _routes_now(deployment: Deployment) -> str:
    return route_snapshot(deployment_services.deployment_snapshot(deployment))


@require_GET
@page_view
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One deployment: its card with every replica, the open promotion of its canary
    with the gates, and its whole revision history."""
    deployment = deployment_selectors.deployment_get(user=request.user, pk=pk)
    card = deployment_cards(request.user, deployment.model, [deployment], ended_replicas=True)[0]
    revisions = paginate(
        request, deployment_selectors.deployment_revisions(deployment=deployment), param="revisions_page"
    )
    promotion = card["promotion"]
    return render(
        request,
        "frontend/deployment_detail.html",
        {
            "nav": "models",
            "model": deployment.model,
            "deployment": deployment,
            "card": card,
            "revisions": revisions,
            "promotions": transitions_with_actions(request.user, [promotion]) if promotion else [],
        },
    )


@require_POST
@page_view
def deployment_canary(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a canary of a version at a weight (in percent), or change its weight."""
    deployment = deployment_selectors.deployment_get(user=request.user, pk=pk)
    data = form_data(CanaryForm, request.POST)
    widening = any(route.mode == RouteMode.CANARY for route in deployment.routes.all())
    changed = deployment_services.canary_set(
        actor=request.user,
        deployment=deployment,
        version=data["version"],
        weight=data["weight"] / 100,
        reason=data["reason"],
    )
    verb = "Changed the canary's weight" if widening else f"Started a canary of v{data['version']}"
    messages.success(request, f"{verb} on {changed}: {_routes_now(changed)}.")
    return _done(request, changed)


@require_POST
@page_view
def deployment_shadow(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_selectors.deployment_get(user=request.user, pk=pk)
    data = form_data(ShadowForm, request.POST)
    changed = deployment_services.shadow_set(
        actor=request.user, deployment=deployment, version=data["version"], reason=data["reason"]
    )
    messages.success(
        request,
        f"v{data['version']} now shadows {changed}: it gets a copy of every call and its answers are never "
        f"returned ({_routes_now(changed)}).",
    )
    return _done(request, changed)


def _promotion_message(deployment: Deployment, transition: Transition) -> SafeString:
    """The request's outcome with its gates, and where to follow it."""
    subject = f"Promotion of the canary of {deployment}: request #{transition.pk} for v{transition.version.version}"
    gates = format_html_join(
        "",
        '<li class="gate">{} <strong class="gate-rule">{}</strong> <span class="gate-detail">{}</span></li>',
        (
            (gate_icon(g.get("status", "")), rule_label(g.get("rule", "")), g.get("detail", ""))
            for g in transition.gates or []
        ),
    )
    if transition.status == TransitionStatus.APPLIED:
        head = format_html(
            "{} is applied: v{} is in production, and every deployment that follows production serves it.",
            subject,
            transition.version.version,
        )
    else:
        inbox = reverse("frontend:inbox") + f"#transition-{transition.pk}"
        head = format_html(
            '{} is {}{}. <a href="{}">Follow it in the approvals inbox</a>.',
            subject,
            transition.status,
            # The gates below say what the detail would; without gates, the detail does.
            f" ({transition.status_detail})" if transition.status_detail and not gates else "",
            inbox,
        )
    return format_html('{}<ul class="gates">{}</ul>', head, gates) if gates else head


@require_POST
@page_view
def deployment_promote(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask for the canary's version to go to production: a governed transition."""
    deployment = deployment_selectors.deployment_get(user=request.user, pk=pk)
    data = form_data(DeploymentReasonForm, request.POST)
    transition = deployment_services.canary_promote(actor=request.user, deployment=deployment, reason=data["reason"])
    level = OUTCOME_LEVELS.get(transition.status, messages.INFO)
    messages.add_message(request, level, _promotion_message(deployment, transition))
    return _done(request, deployment)


@require_POST
@page_view
def deployment_abort(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_selectors.deployment_get(user=request.user, pk=pk)
    data = form_data(DeploymentReasonForm, request.POST)
    changed = deployment_services.canary_abort(actor=request.user, deployment=deployment, reason=data["reason"])
    messages.success(request, f"Aborted the canary of {changed}: {_routes_now(changed)}.")
    return _done(request, changed)


@require_POST
@page_view
def deployment_stop(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = deployment_selectors.deployment_get(user=request.user, pk=pk)
    data = form_data(DeploymentReasonForm, request.POST)
    stopped = deployment_services.deployment_stop(actor=request.user, deployment=deployment, reason=data["reason"])
    messages.success(request, f"Stopped {stopped}: its routes left the route table, and its replicas drain and stop.")
    return _done(request, stopped)


@require_POST
@page_view
def deployment_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Change the deployment's monitoring windows, log sample rate and cache."""
    deployment = deployment_selectors.deployment_get(user=request.user, pk=pk)
    data = form_data(DeploymentSettingsForm, request.POST)
    reason = data.pop("reason")
    changed = deployment_services.deployment_settings_update(
        actor=request.user, deployment=deployment, changes=data, reason=reason
    )
    window = f"every {changed.monitor_every_minutes} min" if changed.monitor_every_minutes else "the default length"
    messages.success(
        request,
        f"Settings of {changed}: logs {weight_percent(changed.log_sample_rate)} of calls, monitoring windows of {window}, "
        f"cache {'on' if changed.cache else 'off'} (revision #{changed.revision}).",
    )
    return _done(request, changed)
