"""What a firing alert does, through the same services a person would use, once.

The alert's ``action_state`` leaves ``pending`` by one compare-and-swap ``update()``: the
worker that changes one row runs the action, any other finds zero rows changed and stops.
The action then runs as the monitor's account, with the alert named in its reason, so the
rollback's, retrain's, derivation's or canary abort's own audit record says which alert caused it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from lifecycle.deployments.services import canary_abort
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


def alert_reason(alert: Alert) -> str:
    return f"alert {alert.pk} ({alert.rule.get('type')} monitor {alert.rule_index}): {alert.detail}"


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


def _run(alert: Alert) -> dict[str, Any]:
    actor = monitor_actor(team=alert.model.team)
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


def alert_action_run(*, alert: Alert) -> Alert:
    """Run the alert's action if nobody has yet; returns the alert as it now stands."""
    claimed = Alert.objects.filter(pk=alert.pk, action_state=ActionState.PENDING).update(
        action_state=ActionState.RUNNING, action_at=timezone.now()
    )
    if not claimed:
        return Alert.objects.get(pk=alert.pk)
    alert = Alert.objects.select_related("model", "model__team", "version", "deployment").get(pk=alert.pk)
    try:
        with transaction.atomic():
            result = _run(alert)
            state = ActionState.DONE
    except DomainError as exc:
        # The governed service said no (no earlier production version, no recipe, no
        # canary any more): the alert keeps what it said, for a person to act on.
        log.warning("alert %s: %s failed: %s", alert.pk, alert.action, exc)
        result, state = {"error": str(exc)}, ActionState.FAILED
    with transaction.atomic():
        Alert.objects.filter(pk=alert.pk).update(action_state=state, action_result=result)
        audit_append(
            actor=monitor_actor(team=alert.model.team),
            action=f"alert.action_{state}",
            object_type="alert",
            object_id=alert.pk,
            model_name=alert.model.name,
            before={"action_state": ActionState.RUNNING},
            after={"action": alert.action, "action_state": state, **result},
            reason=alert_reason(alert),
        )
    return Alert.objects.get(pk=alert.pk)
