"""The web UI's monitoring page of a model, and the forms an approver acknowledges or
resolves an alert with, and adds or removes a monitor rule with.

What the page shows comes from ``lifecycle.monitoring.selectors`` (another team's model
answers 404); acknowledging and resolving call the services the REST API calls, which
check the approver role again (a form posted by someone the page shows no button to is
refused with 403). A monitor rule is added or removed through
``lifecycle.monitoring.services.monitors``, which saves the policy with the registry's
``model_update`` as ``PATCH models/{name}/`` does: a refused rule (a ``derive`` action's
bad ``params``, say) shows the page again with what was typed and the problem by field,
and nothing is stored.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from frontend.affordances import can_roll_back
from frontend.forms import MonitorForm, MonitorRemoveForm, form_data
from frontend.monitor_forms import monitor_from_form, monitor_problems
from frontend.monitoring_plots import bin_labels, distribution_plot, drift_plot, metrics_plot
from frontend.views import back_url, page_view, paginate
from lifecycle.monitoring.choices import ALERT_TRANSITIONS, AlertStatus
from lifecycle.monitoring.models import MonitorWindow
from lifecycle.monitoring.profiles import profile_from_dict
from lifecycle.monitoring.rules import DEFAULT_THRESHOLDS
from lifecycle.monitoring.selectors import alerts as monitoring_selectors
from lifecycle.monitoring.selectors.monitors import monitor_rules
from lifecycle.monitoring.services import alerts as monitoring_services
from lifecycle.monitoring.services import monitors as monitor_services
from registry import selectors as registry_selectors
from registry.errors import InvalidInput
from registry.models import RegisteredModel

WINDOWS_PLOTTED = 48
STATISTICS_PLOTTED = ("psi", "ks", "js", "missing_share", "out_of_range_share")


def _threshold(model: RegisteredModel, statistic: str) -> float | None:
    """The threshold of the model's first drift monitor on ``statistic``, else the default."""
    for rule in (model.policy or {}).get("monitors", []):
        if rule.get("type") == "drift" and rule.get("statistic") == statistic:
            return float(rule["value"])
    default = DEFAULT_THRESHOLDS.get(statistic)
    return default[1] if default else None


def _plots(model: RegisteredModel, windows: list[MonitorWindow], feature: str, statistic: str) -> dict[str, Any]:
    starts = [w.start for w in windows]
    features = sorted({d.feature for w in windows for d in w.drift.all()})
    series = {
        name: [next((getattr(d, statistic) for d in w.drift.all() if d.feature == name), None) for w in windows]
        for name in features
    }
    metric_names = sorted({k for w in windows for k, v in (w.metrics or {}).items() if v is not None})[:6]
    metrics = {name: [(w.metrics or {}).get(name) for w in windows] for name in metric_names}
    metrics["error rate"] = [w.error_rate for w in windows]
    out: dict[str, Any] = {
        "features": features,
        "drift_svg": mark_safe(drift_plot(starts, series, statistic=statistic, threshold=_threshold(model, statistic))),
        "metrics_svg": mark_safe(metrics_plot(starts, metrics)),
        "distribution_svg": None,
    }
    latest = windows[-1]
    live = next((d for d in latest.drift.all() if d.feature == feature), None)
    if live is not None and latest.reference is not None:
        profile = profile_from_dict(latest.reference.profile)
        reference = profile.features.get(feature) if feature != "prediction" else profile.prediction
        if reference is not None:
            if reference.kind == "numeric":
                labels, ref_counts = bin_labels(reference.edges), list(reference.counts)
            else:
                labels = list(live.labels)
                ref_counts = [reference.frequencies.get(label, 0) for label in labels]
            if len(labels) == len(live.live_counts) == len(ref_counts):
                out["distribution_svg"] = mark_safe(
                    distribution_plot(labels, ref_counts, list(live.live_counts), feature=feature)
                )
    return out


def _monitoring_context(request: HttpRequest, model: RegisteredModel) -> dict[str, Any]:
    alerts = paginate(request, monitoring_selectors.alert_list(model=model), param="alerts_page")
    versions = monitoring_selectors.monitored_versions(model=model)
    chosen = request.GET.get("version")
    production = registry_selectors.model_production_version(model)
    if chosen and chosen.isdigit() and int(chosen) in versions:
        version: int | None = int(chosen)
    elif production is not None and production.version in versions:
        # What a person opening the page most likely wants: the version serving now.
        version = production.version
    else:
        version = versions[0] if versions else None
    statistic = request.GET.get("statistic", "psi")
    if statistic not in STATISTICS_PLOTTED:
        statistic = "psi"
    context: dict[str, Any] = {
        "nav": "models",
        "model": model,
        "alerts": alerts,
        "can_act": can_roll_back(request.user, model.team),
        "monitors": monitor_rules(model=model),
        "monitor_form": MonitorForm(initial={"type": "drift", "action": "alert"}),
        "open_states": {s: sorted(ALERT_TRANSITIONS[s]) for s in AlertStatus.values},
        "versions": versions,
        "version": version,
        "statistic": statistic,
        "statistics": STATISTICS_PLOTTED,
        "feature": "",
        "windows": [],
    }
    if version is not None:
        windows = list(monitoring_selectors.drift_windows(model=model, version=version)[:WINDOWS_PLOTTED])[::-1]
        latest = windows[-1]
        ranked = sorted(latest.drift.all(), key=lambda d: -(d.psi if d.psi is not None else -1))
        feature = request.GET.get("feature") or (ranked[0].feature if ranked else "")
        context.update(_plots(model, windows, feature, statistic))
        context.update(feature=feature, windows=windows[::-1][:10], latest=latest)
    return context


@require_GET
@page_view
def model_monitoring(request: HttpRequest, name: str) -> HttpResponse:
    """A model's monitor rules, its alerts with their actions, drift per feature and live
    metrics over the windows of one version, and one feature's reference against its live
    distribution."""
    model = registry_selectors.model_get(user=request.user, name=name)
    return render(request, "frontend/model_monitoring.html", _monitoring_context(request, model))


@require_POST
@page_view
def monitor_add(request: HttpRequest, name: str) -> HttpResponse:
    """Add a monitor rule to the model's policy (approvers and admins)."""
    model = registry_selectors.model_get(user=request.user, name=name)
    index = len((model.policy or {}).get("monitors") or [])
    try:
        data = form_data(MonitorForm, request.POST)
        changed = monitor_services.model_monitor_add(
            model=model, monitor=monitor_from_form(data), actor=request.user, reason=data["reason"]
        )
    except InvalidInput as error:
        context = _monitoring_context(request, model)
        context.update(
            monitor_form=MonitorForm(request.POST),
            monitor_error=error,
            monitor_problems=monitor_problems(error.details, index),
        )
        return render(request, "frontend/model_monitoring.html", context, status=error.status)
    added = changed.policy["monitors"][-1]
    what = f"{added['action']} ({added['method']})" if added["action"] == "derive" else added["action"]
    messages.success(request, f"Monitor rule #{len(changed.policy['monitors'])} added: {added['type']} → {what}.")
    return redirect(reverse("frontend:model-monitoring", kwargs={"name": model.name}) + "#monitors-title")


@require_POST
@page_view
def monitor_remove(request: HttpRequest, name: str) -> HttpResponse:
    """Remove a monitor rule from the model's policy (approvers and admins)."""
    model = registry_selectors.model_get(user=request.user, name=name)
    data = form_data(MonitorRemoveForm, request.POST)
    try:
        expected = json.loads(data["rule"])
    except json.JSONDecodeError as error:
        raise InvalidInput("rule: not JSON", details={"rule": "not JSON"}) from error
    monitor_services.model_monitor_remove(
        model=model, index=data["index"], expected=expected, actor=request.user, reason=data["reason"]
    )
    messages.success(request, f"Monitor rule #{data['index'] + 1} removed.")
    return redirect(reverse("frontend:model-monitoring", kwargs={"name": model.name}) + "#monitors-title")


def _alert_verb(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    alert = monitoring_selectors.alert_get(user=request.user, pk=pk)
    comment = (request.POST.get("comment") or "").strip()[:2000]
    service = monitoring_services.alert_acknowledge if verb == "acknowledge" else monitoring_services.alert_resolve
    changed = service(alert=alert, actor=request.user, comment=comment)
    messages.success(request, f"Alert #{changed.pk} on v{changed.version.version} is {changed.status}.")
    return redirect(back_url(request, reverse("frontend:model-monitoring", kwargs={"name": changed.model.name})))


@require_POST
@page_view
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_verb(request, pk, "acknowledge")


@require_POST
@page_view
def alert_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_verb(request, pk, "resolve")
