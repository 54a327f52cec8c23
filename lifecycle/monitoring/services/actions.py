"""What a firing alert does, through the same services a person would use, once.

The alert's ``action_state`` leaves ``pending`` by one compare-and-swap ``update()`` that
also takes a lease: a claim token and the moment it runs out
(``MODELGATE_ALERT_ACTION_LEASE_SECONDS``). The worker holding the claim runs the action
and records its outcome in one transaction, with the alert's row locked and its claim
checked, so the effect and ``done`` are committed together or not at all. The action
runs as the monitor's account, with the alert named in its reason, so the rollback's,
retrain's, derivation's or canary abort's own audit record says which alert caused it.

A worker that dies mid-way leaves the alert ``running``; once its lease has run out the
periodic pass takes the claim again (``alert_actions_reap``). Before acting, every run
looks for the effect already recorded (an audit record of the action whose reason names
the alert), so an effect committed by an earlier claim is reported, never repeated. After
``MODELGATE_ALERT_ACTION_ATTEMPTS`` claims the action is failed with the reason, for a
person to take over.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from lifecycle.deployments.services import canary_abort
from lifecycle.governance.models import AuditRecord, Transition
from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.transitions import model_rollback
from lifecycle.governance.signals import derivation_wanted
from lifecycle.monitoring.choices import ActionState, AlertAction
from lifecycle.monitoring.models import Alert
from lifecycle.monitoring.services.alerts import monitor_actor
from lifecycle.training.services import model_retrain
from registry.choices import Stage
from registry.errors import DomainError

log = logging.getLogger(__name__)

# The audit action each alert action's service writes, in the transaction of its effect.
EFFECT_AUDIT_ACTIONS = {
    AlertAction.ROLLBACK: "model.rollback",
    AlertAction.RETRAIN: "model.retrain",
    AlertAction.DERIVE: "version.derive",
    AlertAction.ABORT_CANARY: "deployment.canary_abort",
}


def alert_reason(alert: Alert) -> str:
    return f"{alert_reason_prefix(alert)}{alert.rule.get('type')} monitor {alert.rule_index}): {alert.detail}"


def alert_reason_prefix(alert: Alert) -> str:
    """The start of every reason an alert's action gives: the alert's id, closed by ``(``
    so that alert 1 is not alert 12."""
    return f"alert {alert.pk} ("


def _lease() -> timedelta:
    return timedelta(seconds=settings.MODELGATE_ALERT_ACTION_LEASE_SECONDS)


def _expired(now: datetime) -> Q:
    # No lease at all: claimed before claims had one.
    return Q(action_lease_until__lt=now) | Q(action_lease_until__isnull=True)


def alert_effect_recorded(alert: Alert) -> dict[str, Any] | None:
    """What the alert's action already did, read from the audit record its service wrote
    in the same transaction as the effect; ``None`` when it has not acted."""
    action = EFFECT_AUDIT_ACTIONS.get(AlertAction(alert.action))
    if action is None:
        return None
    record = (
        AuditRecord.objects.filter(
            action=action, model_name=alert.model.name, reason__startswith=alert_reason_prefix(alert)
        )
        .order_by("id")
        .first()
    )
    if record is None:
        return None
    after = record.after or {}
    found: dict[str, Any] = {"audit": record.pk}
    if alert.action == AlertAction.ROLLBACK:
        transition = (
            Transition.objects.filter(model=alert.model, kind="rollback", reason__startswith=alert_reason_prefix(alert))
            .order_by("id")
            .first()
        )
        found.update(transition=transition.pk if transition else None, to_version=after.get("production"))
    elif alert.action in (AlertAction.RETRAIN, AlertAction.DERIVE):
        found.update(job=after.get("job"))
    else:
        found.update(deployment=int(record.object_id), revision=after.get("revision"))
    return found


def _derive(alert: Alert, *, actor: AbstractBaseUser, reason: str) -> dict[str, Any]:
    """Ask the update stage (above this one, hence the signal) for the rule's derivation of
    the production version; it raises what its service refuses."""
    if alert.version.stage != Stage.PRODUCTION:
        raise DomainError(f"v{alert.version.version} is {alert.version.stage}, not production: nothing to update")
    method, params = alert.rule.get("method"), alert.rule.get("params") or {}
    answers = derivation_wanted.send(
        sender=Alert, model=alert.model, method=method, params=params, actor=actor, reason=reason, strict=True
    )
    job = next((job for _, job in answers if job is not None), None)
    if job is None:
        raise DomainError(f"no update stage took the {method} update")
    return {"job": job.pk, "method": method}


def _run(alert: Alert, actor: Any) -> dict[str, Any]:
    reason = alert_reason(alert)
    if alert.action == AlertAction.ROLLBACK:
        if alert.version.stage != Stage.PRODUCTION:
            raise DomainError(
                f"v{alert.version.version} is {alert.version.stage}, not production: nothing to roll back"
            )
        transition = model_rollback(model=alert.model, actor=actor, reason=reason)
        return {"transition": transition.pk, "to_version": transition.version.version}
    if alert.action == AlertAction.RETRAIN:
        job = model_retrain(actor=actor, model=alert.model, reason=reason)
        return {"job": job.pk}
    if alert.action == AlertAction.DERIVE:
        return _derive(alert, actor=actor, reason=reason)
    if alert.action == AlertAction.ABORT_CANARY:
        assert alert.deployment is not None, "a canary alert names its deployment"
        deployment = canary_abort(actor=actor, deployment=alert.deployment, reason=reason)
        return {"deployment": deployment.pk, "revision": deployment.revision}
    raise DomainError(f"alert action {alert.action!r} has nothing to run")


def _held(pk: int, claim: str) -> Alert | None:
    """The alert, locked, if ``claim`` still holds its action; else ``None`` (the lease
    ran out and another worker claimed it, or the action is finished)."""
    alert = (
        Alert.objects.select_for_update(of=("self",))
        .select_related("model", "model__team", "version", "deployment")
        .filter(pk=pk, action_state=ActionState.RUNNING, action_claim=claim)
        .first()
    )
    return alert


def _finish(alert: Alert, *, state: str, result: dict[str, Any], actor: Any) -> None:
    Alert.objects.filter(pk=alert.pk).update(
        action_state=state, action_result=result, action_claim="", action_lease_until=None
    )
    audit_append(
        actor=actor,
        action=f"alert.action_{state}",
        object_type="alert",
        object_id=alert.pk,
        model_name=alert.model.name,
        before={"action_state": ActionState.RUNNING},
        after={"action": alert.action, "action_state": state, **result},
        reason=alert_reason(alert),
    )


def _execute(pk: int, claim: str) -> Alert:
    """Run the action under ``claim``: the effect (unless already recorded) and the
    outcome in one transaction. An error other than a governed refusal propagates and
    leaves the claim to run out."""
    team = Alert.objects.select_related("model__team").get(pk=pk).model.team
    actor = monitor_actor(team=team)
    try:
        with transaction.atomic():
            alert = _held(pk, claim)
            if alert is None:
                return Alert.objects.get(pk=pk)
            recorded = alert_effect_recorded(alert)
            result = {**recorded, "recovered": True} if recorded is not None else _run(alert, actor)
            _finish(alert, state=ActionState.DONE, result=result, actor=actor)
    except DomainError as exc:
        # The governed service said no (no earlier production version, no recipe, no
        # canary any more): the alert keeps what it said, for a person to act on.
        log.warning("alert %s: %s failed: %s", pk, exc.__class__.__name__, exc)
        with transaction.atomic():
            alert = _held(pk, claim)
            if alert is not None:
                _finish(alert, state=ActionState.FAILED, result={"error": str(exc)}, actor=actor)
    return Alert.objects.get(pk=pk)


def alert_action_run(*, alert: Alert) -> Alert:
    """Run the alert's action if nobody has yet; returns the alert as it now stands."""
    now = timezone.now()
    claim = uuid.uuid4().hex
    claimed = Alert.objects.filter(pk=alert.pk, action_state=ActionState.PENDING).update(
        action_state=ActionState.RUNNING,
        action_at=now,
        action_claim=claim,
        action_lease_until=now + _lease(),
        action_attempts=F("action_attempts") + 1,
    )
    if not claimed:
        return Alert.objects.get(pk=alert.pk)
    return _execute(alert.pk, claim)


def _reclaim(alert: Alert) -> Alert | None:
    """Take over a ``running`` action whose lease has run out, and finish it: reported
    if its effect is already recorded, run if not, failed (with the reason) once it has
    had ``MODELGATE_ALERT_ACTION_ATTEMPTS`` claims. Nothing happens while the lease holds
    or when another worker took it over first (``None``)."""
    now = timezone.now()
    claim = uuid.uuid4().hex
    claimed = Alert.objects.filter(
        _expired(now), pk=alert.pk, action_state=ActionState.RUNNING, action_claim=alert.action_claim
    ).update(
        action_at=now,
        action_claim=claim,
        action_lease_until=now + _lease(),
        action_attempts=F("action_attempts") + 1,
    )
    if not claimed:
        return None
    current = Alert.objects.select_related("model").get(pk=alert.pk)
    log.warning("alert %s: taking over its %s action, claim %s", current.pk, current.action, current.action_attempts)
    limit = settings.MODELGATE_ALERT_ACTION_ATTEMPTS
    if current.action_attempts > limit and alert_effect_recorded(current) is None:
        actor = monitor_actor(team=current.model.team)
        with transaction.atomic():
            held = _held(current.pk, claim)
            if held is not None:
                _finish(
                    held,
                    state=ActionState.FAILED,
                    result={
                        "error": f"the action was claimed {limit} times and never finished "
                        f"(each claim held {settings.MODELGATE_ALERT_ACTION_LEASE_SECONDS} s); nothing was done"
                    },
                    actor=actor,
                )
        return Alert.objects.get(pk=current.pk)
    return _execute(current.pk, claim)


def alert_action_reclaim(*, alert: Alert) -> Alert:
    """Take over the alert's action if its lease has run out (``_reclaim``); returns the
    alert as it now stands."""
    return _reclaim(alert) or Alert.objects.get(pk=alert.pk)


def alert_actions_reap() -> dict[int, str]:
    """Every ``running`` action whose lease has run out, taken over and finished; the
    state each one this call took over is left in, by alert id."""
    expired = Alert.objects.filter(_expired(timezone.now()), action_state=ActionState.RUNNING)
    taken = {}
    for alert in expired.order_by("id"):
        finished = _reclaim(alert)
        if finished is not None:
            taken[alert.pk] = finished.action_state
    return taken
