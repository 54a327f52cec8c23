"""The web UI's pages and forms. Each view parses the request, calls the selector or the
service that the REST API calls for the same thing, and renders.

Every page needs a login. Visibility and permission come from the selectors'
``*_visible_to`` scoping and from the services' own checks, so the UI can never show or
do more than the API would. A ``DomainError`` becomes a page with its message and its
status (400, 403, 404, 409, 503), never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from frontend import selectors as ui_selectors
from frontend.affordances import (
    can_request_transition,
    can_roll_back,
    requestable_stages,
    transitions_with_actions,
)
from frontend.comparison import metric_comparison
from frontend.deployment_cards import deployment_cards
from frontend.evaluation_report import evaluation_report
from frontend.forms import DecisionForm, RollbackForm, TransitionRequestForm, form_data
from frontend.lineage import derivation_rows, lineage_graph
from frontend.signatures import signature_tables
from lifecycle.deployments import selectors as deployment_selectors
from lifecycle.derivations import selectors as derivation_selectors
from lifecycle.design import selectors as design_selectors
from lifecycle.governance import selectors as lifecycle_selectors
from lifecycle.governance.choices import TransitionStatus
from lifecycle.governance.models import Transition
from lifecycle.governance.services import transitions as transition_services
from lifecycle.governance.services.audit import audit_verify
from registry import selectors as registry_selectors
from registry import storage
from registry.choices import Role, Stage
from registry.errors import DomainError, NotFound
from registry.models import ModelVersion
from registry.permissions import has_role

PAGE_SIZE = 25
# The model page shows each deployment whole; its own page has the full history.
DEPLOYMENTS_PER_PAGE = 10
REVISIONS_ON_MODEL_PAGE = 3
_STAGE_LABELS = dict(Stage.choices)
OUTCOME_LEVELS = {
    TransitionStatus.APPLIED: messages.SUCCESS,
    TransitionStatus.PENDING: messages.INFO,
    TransitionStatus.BLOCKED: messages.WARNING,
    TransitionStatus.REJECTED: messages.INFO,
    TransitionStatus.CANCELLED: messages.INFO,
}

View = Callable[..., HttpResponse]


def back_url(request: HttpRequest, default: str = "") -> str:
    """Where to return after a form: the posted ``next`` or the referring page, when
    they are on this site; else ``default`` or the inbox."""
    for candidate in (request.POST.get("next"), request.headers.get("Referer")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
    return default or reverse("frontend:inbox")


def page_view(view: View) -> View:
    """Login required; a domain error renders as a page with its message and status."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DomainError as error:
            context = {"error": error, "back": back_url(request)}
            return render(request, "frontend/error.html", context, status=error.status)

    return login_required(wrapper)


def paginate(request: HttpRequest, items: Any, *, param: str = "page", per_page: int = PAGE_SIZE) -> Page:
    return Paginator(items, per_page).get_page(request.GET.get(param))


# --- approvals inbox -----------------------------------------------------------------


@require_GET
@page_view
def inbox(request: HttpRequest) -> HttpResponse:
    """Pending requests of the teams I can see, then blocked ones, each with its gates."""
    pending = paginate(request, lifecycle_selectors.transition_list(user=request.user, status="pending"))
    blocked = paginate(
        request, lifecycle_selectors.transition_list(user=request.user, status="blocked"), param="blocked_page"
    )
    return render(
        request,
        "frontend/inbox.html",
        {
            "nav": "inbox",
            "pending": pending,
            "pending_items": transitions_with_actions(request.user, pending),
            "blocked": blocked,
            "blocked_items": transitions_with_actions(request.user, blocked),
        },
    )


def _decided(request: HttpRequest, verb: str, transition: Transition, *, back: str = "") -> HttpResponse:
    """Redirect back with a message naming the version's stage after the decision."""
    version = registry_selectors.version_get(model=transition.model, version=transition.version.version)
    stage = _STAGE_LABELS.get(version.stage, version.stage).lower()
    subject = f"{verb} request #{transition.pk}: {transition.model.name} v{version.version}"
    if transition.status == TransitionStatus.APPLIED:
        text = f"{subject} is now in {stage}."
    else:
        text = f"{subject} is in {stage}; the request is {transition.status}"
        text += f" ({transition.status_detail})." if transition.status_detail else "."
    messages.add_message(request, OUTCOME_LEVELS.get(transition.status, messages.INFO), text)
    return redirect(back or back_url(request))


@require_POST
@page_view
def transition_approve(request: HttpRequest, pk: int) -> HttpResponse:
    transition = lifecycle_selectors.transition_get(user=request.user, pk=pk)
    comment = form_data(DecisionForm, request.POST)["comment"]
    result = transition_services.transition_approve(transition=transition, actor=request.user, comment=comment)
    return _decided(request, "Approved", result)


@require_POST
@page_view
def transition_reject(request: HttpRequest, pk: int) -> HttpResponse:
    transition = lifecycle_selectors.transition_get(user=request.user, pk=pk)
    comment = form_data(DecisionForm, request.POST)["comment"]
    result = transition_services.transition_reject(transition=transition, actor=request.user, comment=comment)
    return _decided(request, "Rejected", result)


@require_POST
@page_view
def transition_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    transition = lifecycle_selectors.transition_get(user=request.user, pk=pk)
    comment = form_data(DecisionForm, request.POST)["comment"]
    result = transition_services.transition_cancel(transition=transition, actor=request.user, comment=comment)
    return _decided(request, "Cancelled", result)


@require_POST
@page_view
def transition_recheck(request: HttpRequest, pk: int) -> HttpResponse:
    transition = lifecycle_selectors.transition_get(user=request.user, pk=pk)
    result = transition_services.transition_recheck(transition=transition, actor=request.user)
    return _decided(request, "Rechecked", result)


# --- models --------------------------------------------------------------------------


@require_GET
@page_view
def model_list(request: HttpRequest) -> HttpResponse:
    """Models I can see; search ``q``, filters ``team``, ``stage`` and ``tag=key:value``."""
    filters = {name: request.GET.get(name, "").strip() for name in ("q", "team", "stage", "tag")}
    models = registry_selectors.model_list(
        user=request.user,
        team=filters["team"] or None,
        search=filters["q"] or None,
        tags=[filters["tag"]] if filters["tag"] else None,
    )
    if filters["stage"]:
        models = ui_selectors.models_with_version_in(models, stage=filters["stage"])
    return render(
        request,
        "frontend/model_list.html",
        {
            "nav": "models",
            "page": paginate(request, ui_selectors.model_rows(models)),
            "filters": filters,
            "filtered": any(filters.values()),
            "teams": ui_selectors.team_names_visible_to(request.user),
            "stages": Stage.choices,
        },
    )


def _primary_metric(version: ModelVersion, metric_name: str) -> float | None:
    return registry_selectors.version_metrics(version).get(metric_name) if metric_name else None


@require_GET
@page_view
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_get(user=request.user, name=name)
    versions = paginate(request, registry_selectors.version_list(model=model), param="versions_page")
    registry_selectors.version_details_load(versions)
    for version in versions:
        version.primary_value = _primary_metric(version, model.primary_metric)
    production = registry_selectors.version_list(model=model, stage=Stage.PRODUCTION).first()
    timeline = paginate(request, ui_selectors.model_transitions(user=request.user, model=model), param="timeline_page")
    history = paginate(request, lifecycle_selectors.production_history(model=model), param="history_page")
    may_roll_back = can_roll_back(request.user, model.team)
    deployments = paginate(
        request,
        deployment_selectors.deployment_list(user=request.user, model=model),
        param="deployments_page",
        per_page=DEPLOYMENTS_PER_PAGE,
    )
    return render(
        request,
        "frontend/model_detail.html",
        {
            "nav": "models",
            "model": model,
            "tags": sorted(model.tag_rows.values_list("key", "value")),
            "production": production,
            "staging": list(registry_selectors.version_list(model=model, stage=Stage.STAGING)),
            "versions": versions,
            "timeline": timeline,
            "history": history,
            "can_roll_back": may_roll_back,
            "rollback_targets": ui_selectors.rollback_targets(model=model) if may_roll_back else [],
            "deployments": deployments,
            "deployment_cards": deployment_cards(request.user, model, deployments, revisions=REVISIONS_ON_MODEL_PAGE),
            "mlflow_ui": settings.MLFLOW_UI_URL,
            "design": design_selectors.design_state(model=model),
            "can_edit_design": has_role(request.user, model.team, Role.DEVELOPER),
        },
    )


@require_POST
@page_view
def model_rollback(request: HttpRequest, name: str) -> HttpResponse:
    model = registry_selectors.model_get(user=request.user, name=name)
    data = form_data(RollbackForm, request.POST)
    rollback = transition_services.model_rollback(
        model=model, actor=request.user, reason=data["reason"], to_version=data["to_version"]
    )
    messages.success(
        request,
        f"Rolled back {model.name}: {rollback.status_detail}; v{rollback.version.version} is now in production.",
    )
    return redirect("frontend:model-detail", name=model.name)


# --- versions ------------------------------------------------------------------------


def _artifact_files(version: ModelVersion) -> list[dict[str, Any]]:
    """Each file of the artifact with a presigned download URL (S3) or its path (local)."""
    urls = storage.presigned_urls(
        version.artifact_uri, version.manifest or {}, expires_in=settings.MODELGATE_PRESIGN_EXPIRY_SECONDS
    )
    root = storage.local_path(version.artifact_uri)
    files = []
    for relative, entry in sorted((version.manifest or {}).items()):
        if urls is not None:
            location = ""
        elif root is not None:
            location = str(root / relative) if relative else str(root)
        else:
            location = f"{version.artifact_uri.rstrip('/')}/{relative}" if relative else version.artifact_uri
        files.append(
            {
                "path": relative or version.artifact_uri.rsplit("/", 1)[-1],
                "size": entry.get("size"),
                "sha256": entry.get("sha256"),
                "url": urls.get(relative) if urls else None,
                "location": location,
            }
        )
    return files


@require_GET
@page_view
def version_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = registry_selectors.model_get(user=request.user, name=name)
    version = registry_selectors.version_get(model=model, version=number)
    transitions = transitions_with_actions(
        request.user, ui_selectors.version_transitions(user=request.user, version=version)
    )
    champion = registry_selectors.model_production_version(model)
    comparison = None
    if champion is not None and champion.pk != version.pk:
        comparison = metric_comparison(
            candidate=registry_selectors.version_metrics(version),
            champion=registry_selectors.version_metrics(champion),
            intervals=ui_selectors.gate_intervals(transitions),
            first=model.primary_metric,
        )
    files = _artifact_files(version)
    by_path = {f["path"]: f for f in files}
    reports = [{**report, **by_path.get(report["path"], {})} for report in ui_selectors.report_files(version)]
    evaluations = ui_selectors.version_evaluations(version=version)
    latest = evaluations[0] if evaluations else None
    lineage = derivation_selectors.version_lineage(version=version)
    return render(
        request,
        "frontend/version_detail.html",
        {
            "nav": "models",
            "model": model,
            "version": version,
            "card_checks": design_selectors.version_card_checks(version=version),
            "metric_records": registry_selectors.version_metric_records(version, current_only=False),
            "champion": champion,
            "comparison": comparison,
            "reports": reports,
            "evaluation": latest,
            "evaluation_report": (
                evaluation_report(
                    metrics=latest.metrics,
                    details=latest.details,
                    deltas=latest.deltas,
                    primary=latest.primary_metric or model.primary_metric,
                )
                if latest
                else None
            ),
            "earlier_evaluations": evaluations[1:],
            "lineage": lineage,
            "lineage_graph": lineage_graph(lineage, current=version.version),
            "derivation_rows": derivation_rows(lineage["derivation"]),
            "signature": signature_tables(version.signature),
            "tags": sorted(version.tag_rows.values_list("key", "value")),
            "files": files,
            "transitions": transitions,
            "can_request": can_request_transition(request.user, model.team),
            "stages": requestable_stages(version),
        },
    )


@require_GET
@page_view
def evaluation_plot(request: HttpRequest, name: str, number: int, pk: int, plot: str) -> HttpResponse:
    """A PNG plot of an evaluation, read from its report location (S3, a local
    directory or MLflow-served artifacts) for whoever may see the version."""
    model = registry_selectors.model_get(user=request.user, name=name)
    version = registry_selectors.version_get(model=model, version=number)
    evaluation = ui_selectors.evaluation_get(version=version, pk=pk)
    # Only the names the evaluation logged: never a path the request makes up.
    if plot not in (evaluation.plots or []) or not plot.lower().endswith(".png") or not evaluation.report_uri:
        raise NotFound(f"evaluation {evaluation.pk} of {model.name} v{version.version} has no plot {plot!r}")
    data = storage.read_file(evaluation.report_uri, plot)
    if data is None:
        raise NotFound(f"the plot {plot!r} is no longer at {evaluation.report_uri}")
    response = HttpResponse(data, content_type="image/png")
    # A logged plot never changes; the browser may keep it, but no shared cache may.
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_POST
@page_view
def transition_request(request: HttpRequest, name: str, number: int) -> HttpResponse:
    model = registry_selectors.model_get(user=request.user, name=name)
    version = registry_selectors.version_get(model=model, version=number)
    data = form_data(TransitionRequestForm, request.POST)
    transition = transition_services.transition_request(
        version=version, to=data["to"], reason=data["reason"], actor=request.user
    )
    back = reverse("frontend:version-detail", kwargs={"name": model.name, "number": version.version})
    return _decided(request, "Submitted", transition, back=back)


# --- audit ---------------------------------------------------------------------------


@require_GET
@page_view
def audit(request: HttpRequest) -> HttpResponse:
    """The audit trail of the models I can see, newest first, and the hash-chain check."""
    filters = {name: request.GET.get(name, "").strip() for name in ("model", "actor", "action")}
    records = lifecycle_selectors.audit_list(
        user=request.user, **{name: value or None for name, value in filters.items()}
    ).order_by("-id")
    return render(
        request,
        "frontend/audit.html",
        {
            "nav": "audit",
            "page": paginate(request, records, per_page=50),
            "filters": filters,
            "filtered": any(filters.values()),
            "chain": audit_verify(),
            "actions": ui_selectors.audit_actions(user=request.user),
            "model_names": ui_selectors.model_names_visible_to(request.user),
        },
    )
