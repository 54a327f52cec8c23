"""Monitor rules judged over a version's latest windows, and the alerts they raise.

An alert opens when a rule fires and no alert with its key is open; while one is, the
rule firing again only counts an occurrence (deduplication). Acknowledging and resolving
are a person's verbs (approvers and above); every change is audited in the same
transaction and announced to the team's webhooks through the outbox (``alert.firing``,
``alert.acknowledged``, ``alert.resolved``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from lifecycle.deployments.choices import RouteMode
from lifecycle.deployments.models import Deployment, Route
from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.outbox import event_publish
from lifecycle.monitoring.choices import ALERT_OPEN_STATES, ALERT_TRANSITIONS, ActionState, AlertAction, AlertStatus
from lifecycle.monitoring.models import Alert, MonitorWindow
from lifecycle.monitoring.rules import MonitorRule, Verdict, WindowSummary, parse_monitors
from registry.choices import Role
from registry.errors import Conflict
from registry.models import Membership, ModelVersion, RegisteredModel, Team
from registry.permissions import require_role

MONITOR_USERNAME = "monitor"


def monitor_actor(*, team: Team) -> AbstractBaseUser:
    """The account monitors act as: it cannot log in, and holds the approver role in the
    teams whose monitors act, so that a rollback or a canary abort it starts passes the
    same permission checks as a person's and is recorded under its own name."""
    user, created = get_user_model().objects.get_or_create(username=MONITOR_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    Membership.objects.get_or_create(user=user, team=team, defaults={"role": Role.APPROVER})
    return user


def alert_payload(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "model": alert.model.name,
        "version": alert.version.version,
        "deployment": alert.deployment_id,
        "rule_index": alert.rule_index,
        "rule": alert.rule,
        "status": alert.status,
        "detail": alert.detail,
        "observed": alert.observed,
        "features": alert.features,
        "occurrences": alert.occurrences,
        "action": alert.action,
        "action_state": alert.action_state,
        "fired_at": alert.fired_at,
    }


def window_summaries(windows: list[MonitorWindow]) -> list[WindowSummary]:
    """The rules' view of stored windows (oldest first)."""
    summaries = []
    for window in windows:
        statistics = {
            d.feature: {
                "psi": d.psi,
                "ks": d.ks,
                "ks_pvalue": d.ks_pvalue,
                "chi2": d.chi2,
                "chi2_pvalue": d.chi2_pvalue,
                "js": d.js,
                "missing_share": d.missing_share,
                "out_of_range_share": d.out_of_range_share,
            }
            for d in window.drift.all()
        }
        summaries.append(
            WindowSummary(
                rows=window.rows,
                statistics=statistics,
                metrics={k: v for k, v in (window.metrics or {}).items() if v is not None},
                labels=window.labels,
                latency_p95_ms=window.latency_p95_ms,
                error_rate=window.error_rate,
            )
        )
    return summaries


def dedup_key(*, version: ModelVersion, deployment: Deployment | None, index: int, rule: MonitorRule) -> str:
    """One key per rule (by its content, so an edited rule is a new one) and what it watches."""
    digest = hashlib.sha256(json.dumps(rule.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    where = deployment.pk if deployment is not None else "-"
    return f"{version.model_id}:{version.pk}:{where}:{index}:{digest}"


def _is_canary(version: ModelVersion, deployment: Deployment | None) -> bool:
    return (
        deployment is not None
        and Route.objects.filter(deployment=deployment, version=version, mode=RouteMode.CANARY).exists()
    )


def alert_fire(
    *,
    version: ModelVersion,
    deployment: Deployment | None,
    index: int,
    rule: MonitorRule,
    verdict: Verdict,
    window: MonitorWindow | None,
) -> tuple[Alert, bool]:
    """Open an alert for a rule that fired, or count one more occurrence of the open one
    (once per window: a second pass over the same window changes nothing).
    Returns the alert and whether it is new. A canary's alert aborts the canary whatever
    the rule's action, since a canary is on trial."""
    key = dedup_key(version=version, deployment=deployment, index=index, rule=rule)
    now = timezone.now()
    model = version.model
    with transaction.atomic():
        open_alert = Alert.objects.select_for_update().filter(dedup_key=key, status__in=ALERT_OPEN_STATES).first()
        if open_alert is not None:
            # An occurrence is a window that fired, not a pass: the periodic pass runs more
            # often than windows close, and passes may overlap.
            if window is not None and open_alert.window_id == window.pk:
                return open_alert, False
            open_alert.occurrences += 1
            open_alert.last_fired_at = now
            open_alert.observed = verdict.observed
            open_alert.window = window
            open_alert.save(update_fields=["occurrences", "last_fired_at", "observed", "window"])
            return open_alert, False
        action = AlertAction.ABORT_CANARY if _is_canary(version, deployment) else AlertAction(rule.action)
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    model=model,
                    version=version,
                    deployment=deployment,
                    rule_index=index,
                    rule=rule.to_dict(),
                    dedup_key=key,
                    detail=verdict.detail,
                    observed=verdict.observed,
                    features=list(verdict.features),
                    window=window,
                    fired_at=now,
                    last_fired_at=now,
                    action=action,
                    action_state=ActionState.NONE if action == AlertAction.ALERT else ActionState.PENDING,
                )
        except IntegrityError:
            # Opened meanwhile by another worker (the one-open-alert-per-key constraint).
            return Alert.objects.get(dedup_key=key, status__in=ALERT_OPEN_STATES), False
        audit_append(
            actor=monitor_actor(team=model.team),
            action="alert.firing",
            object_type="alert",
            object_id=alert.pk,
            model_name=model.name,
            after={"version": version.version, "rule": alert.rule, "observed": alert.observed, "action": action},
            reason=verdict.detail,
        )
        event_publish(team=model.team, event_type="alert.firing", data=alert_payload(alert))
    return alert, True


def monitors_evaluate(*, version: ModelVersion, deployment: Deployment | None) -> list[Alert]:
    """Judge the model's monitor rules over the version's latest windows on
    ``deployment``; returns the alerts opened now (repeats of open ones are only counted)."""
    # The policy as stored now, not as the caller's copy of the model last saw it.
    policy = RegisteredModel.objects.values_list("policy", flat=True).get(pk=version.model_id)
    rules = parse_monitors((policy or {}).get("monitors"))
    if not rules:
        return []
    depth = max(rule.windows for rule in rules)
    windows = list(
        MonitorWindow.objects.filter(version=version, deployment=deployment)
        .prefetch_related("drift")
        .order_by("-start")[:depth]
    )[::-1]
    summaries = window_summaries(windows)
    opened = []
    for index, rule in enumerate(rules):
        verdict = rule.evaluate(summaries)
        if verdict.firing:
            alert, created = alert_fire(
                version=version, deployment=deployment, index=index, rule=rule, verdict=verdict, window=windows[-1]
            )
            if created:
                opened.append(alert)
    return opened


def _move(alert: Alert, *, to: str, actor: AbstractBaseUser, comment: str) -> Alert:
    require_role(actor, alert.model.team, Role.APPROVER, action=f"marking an alert {to}")
    with transaction.atomic():
        locked = Alert.objects.select_for_update().select_related("model", "version").get(pk=alert.pk)
        if to not in ALERT_TRANSITIONS[locked.status]:
            raise Conflict(f"alert {locked.pk} is {locked.status}; it cannot become {to}", code="alert_state")
        before = locked.status
        now = timezone.now()
        locked.status = to
        if to == AlertStatus.ACKNOWLEDGED:
            locked.acknowledged_at, locked.acknowledged_by = now, actor
        else:
            locked.resolved_at, locked.resolved_by, locked.resolution = now, actor, comment
        locked.save()
        audit_append(
            actor=actor,
            action=f"alert.{to}",
            object_type="alert",
            object_id=locked.pk,
            model_name=locked.model.name,
            before={"status": before},
            after={"status": to},
            reason=comment,
        )
        event_publish(team=locked.model.team, event_type=f"alert.{to}", data=alert_payload(locked))
    return locked


def alert_acknowledge(*, alert: Alert, actor: AbstractBaseUser, comment: str = "") -> Alert:
    """An approver has seen the alert: it stays open (repeats still join it)."""
    return _move(alert, to=AlertStatus.ACKNOWLEDGED, actor=actor, comment=comment)


def alert_resolve(*, alert: Alert, actor: AbstractBaseUser, comment: str = "") -> Alert:
    """An approver closes the alert; the rule firing again opens a new one."""
    return _move(alert, to=AlertStatus.RESOLVED, actor=actor, comment=comment)
