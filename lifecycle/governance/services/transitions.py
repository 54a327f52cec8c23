"""Stage transitions: request, approve, reject, recheck, cancel, and rollback.

``stage_apply`` is the one function that changes a version's stage; every path (a
request whose gates pass, the last approval, a rollback) goes through it. Every use
case locks the model row first, so changes to one model are serialised and two
concurrent promotions cannot both win; the partial unique constraint on production
versions is the last line of defence.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from lifecycle.governance import rules, selectors
from lifecycle.governance.choices import (
    OPEN_TRANSITION_STATUSES,
    Decision,
    ProductionEnd,
    TransitionKind,
    TransitionStatus,
)
from lifecycle.governance.models import Approval, ProductionRecord, Transition
from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.outbox import event_publish, mlflow_alias_enqueue
from lifecycle.governance.signals import evaluation_wanted, production_changed
from registry.choices import STAGE_ALIASES, Role, Stage, allowed_transition
from registry.errors import Conflict, Forbidden, InvalidInput
from registry.models import ModelVersion, RegisteredModel
from registry.permissions import require_role, role_in
from registry.services import alias_point, version_documents_refresh


def transition_payload(transition: Transition) -> dict[str, object]:
    return {
        "id": transition.pk,
        "model": transition.model.name,
        "version": transition.version.version,
        "kind": transition.kind,
        "from": transition.from_stage,
        "to": transition.to_stage,
        "status": transition.status,
        "status_detail": transition.status_detail,
        "requested_by": transition.requested_by.get_username() if transition.requested_by_id else None,
        "reason": transition.reason,
        "gates": transition.gates,
    }


def _lock_model(model: RegisteredModel) -> RegisteredModel:
    # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the dataset join.
    return RegisteredModel.objects.select_for_update(of=("self",)).select_related("team", "dataset").get(pk=model.pk)


def _stage_audit(
    *, version: ModelVersion, before: str, actor: AbstractBaseUser | None, reason: str, via: Transition | None
) -> None:
    audit_append(
        actor=actor,
        action="version.stage_change",
        object_type="model_version",
        object_id=f"{version.model.name}/{version.version}",
        model_name=version.model.name,
        before={"stage": before},
        after={"stage": version.stage, "transition": via.pk if via else None},
        reason=reason,
    )


def _production_close(*, model: RegisteredModel, ended: ProductionEnd, at: datetime) -> None:
    ProductionRecord.objects.filter(model=model, ended_at__isnull=True).update(ended_at=at, ended_reason=ended)


def stage_apply(
    *,
    model: RegisteredModel,
    version: ModelVersion,
    to: str,
    actor: AbstractBaseUser | None,
    reason: str,
    via: Transition | None = None,
    production_end: ProductionEnd = ProductionEnd.REPLACED,
    at: datetime | None = None,
) -> ModelVersion:
    """Move a version to a stage, with everything that goes with it, in the caller's
    transaction (which must hold the model's row lock): the previous production version
    is archived and the production history updated, stage aliases move here and (through
    the outbox) in MLflow, and each change is audited. ``at`` is the moment of the change
    (now by default), shared by the steps of one change so the history has no hole."""
    now = at or timezone.now()
    locked = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    before = locked.stage
    if before == to:
        return locked
    if to == Stage.PRODUCTION:
        current = ModelVersion.objects.select_for_update().filter(model=model, stage=Stage.PRODUCTION).first()
        if current is not None:
            current.stage, current.stage_changed_at = Stage.ARCHIVED, now
            current.save(update_fields=["stage", "stage_changed_at", "updated_at"])
            _stage_audit(
                version=current, before=Stage.PRODUCTION, actor=actor, reason=f"replaced by v{locked.version}", via=via
            )
        _production_close(model=model, ended=ProductionEnd.REPLACED, at=now)
    if before == Stage.PRODUCTION:
        _production_close(model=model, ended=production_end, at=now)
    locked.stage, locked.stage_changed_at = to, now
    locked.save(update_fields=["stage", "stage_changed_at", "updated_at"])
    if to == Stage.PRODUCTION:
        ProductionRecord.objects.create(model=model, version=locked, started_at=now, transition=via, started_by=actor)
    for stage, alias in STAGE_ALIASES.items():
        if to == stage:
            alias_point(model=model, name=alias, version=locked)
            mlflow_alias_enqueue(model=model, alias=alias)
        elif before == stage:
            # The alias leaves with the version; the newest other version in that stage takes it.
            successor = ModelVersion.objects.filter(model=model, stage=stage).order_by("-stage_changed_at").first()
            alias_point(model=model, name=alias, version=successor)
            mlflow_alias_enqueue(model=model, alias=alias)
    version_documents_refresh(versions=[locked, current if to == Stage.PRODUCTION else None])
    _stage_audit(version=locked, before=before, actor=actor, reason=reason, via=via)
    if to == Stage.PRODUCTION:
        production_changed.send(sender=ModelVersion, model=model, version=locked, actor=actor, reason=reason)
    return locked


def _evaluate(transition: Transition, now: datetime) -> str:
    """Run the model's policy for this transition; store and return the overall outcome."""
    policy = rules.parse_policy(transition.model.policy or {})
    results = rules.evaluate_policy(policy, selectors.gate_context(transition=transition, now=now))
    transition.gates = [result.to_dict() for result in results]
    return rules.overall_status(results)


def _decide(
    transition: Transition, *, actor: AbstractBaseUser | None, now: datetime, requested: bool = False
) -> Transition:
    """Evaluate the gates and move the transition on: applied, pending or blocked.

    Publishes ``transition.requested`` for a new request (with its gates), then
    ``transition.applied`` or ``transition.blocked``; staying or becoming pending is no
    event of its own (``transition.pending`` is not an event type webhooks can name)."""
    outcome = _evaluate(transition, now)
    if outcome == "passed":
        current_stage = ModelVersion.objects.filter(pk=transition.version_id).values_list("stage", flat=True).get()
        if current_stage != transition.from_stage:
            transition.status = TransitionStatus.BLOCKED
            transition.status_detail = (
                f"the version moved from {transition.from_stage} to {current_stage} since the request; request again"
            )
        else:
            stage_apply(
                model=transition.model,
                version=transition.version,
                to=transition.to_stage,
                actor=actor,
                reason=transition.reason,
                via=transition,
            )
            transition.status = TransitionStatus.APPLIED
            transition.status_detail = f"applied: v{transition.version.version} is now in {transition.to_stage}"
            transition.decided_at = now
    elif outcome == "waiting":
        transition.status = TransitionStatus.PENDING
        waiting = [g["detail"] for g in transition.gates if g["status"] == "waiting"]
        transition.status_detail = "waiting: " + "; ".join(waiting)
    else:
        transition.status = TransitionStatus.BLOCKED
        failed = [f"{g['rule']}: {g['detail']}" for g in transition.gates if g["status"] == "failed"]
        transition.status_detail = "blocked by " + "; ".join(failed)
        needs_evaluation = any(g.get("needs") == "evaluation" for g in transition.gates if g["status"] == "failed")
        if needs_evaluation and actor is None:
            # The platform's own recheck follows an evaluation that just ended: one more of
            # the same would find the same (a figure this model cannot yield, a parent not
            # scored on the data) and start the next, for ever. A person's recheck starts one.
            transition.status_detail += "; recheck it once the version has what the gates need"
        elif needs_evaluation:
            answers = evaluation_wanted.send(
                sender=Transition, version=transition.version, actor=transition.requested_by
            )
            for _, job in answers:
                if job is not None:
                    transition.status_detail += (
                        f"; evaluation job {job.pk} started, the gates are rechecked when it ends"
                    )
    transition.save()
    if requested:
        event_publish(
            team=transition.model.team, event_type="transition.requested", data=transition_payload(transition)
        )
    if transition.status != TransitionStatus.PENDING:
        event_publish(
            team=transition.model.team,
            event_type=f"transition.{transition.status}",
            data=transition_payload(transition),
        )
    return transition


def transition_request(*, version: ModelVersion, to: str, reason: str, actor: AbstractBaseUser) -> Transition:
    """Ask to move a version to a stage; gates are evaluated at once."""
    model = version.model
    require_role(actor, model.team, Role.DEVELOPER, action="requesting a stage transition")
    if to not in Stage.values:
        raise InvalidInput(
            f"unknown stage {to!r}; expected one of {', '.join(Stage.values)}", details={"to": "unknown stage"}
        )
    with transaction.atomic():
        model = _lock_model(model)
        # After the lock: a request that waited behind other promotions is decided now.
        now = timezone.now()
        version = ModelVersion.objects.select_related("model").get(pk=version.pk)
        if not allowed_transition(version.stage, to):
            raise Conflict(
                f"v{version.version} is in {version.stage}; it cannot move to {to}",
                code="invalid_transition",
                details={"from": version.stage, "to": to},
            )
        if to == Stage.ARCHIVED and version.stage == Stage.PRODUCTION:
            raise Conflict("the production version is archived only by promoting its replacement or by a rollback")
        open_request = Transition.objects.filter(
            version=version, to_stage=to, status__in=OPEN_TRANSITION_STATUSES
        ).first()
        if open_request is not None:
            raise Conflict(
                f"request #{open_request.pk} to move v{version.version} to {to} is already {open_request.status}",
                code="transition_open",
                details={"transition": open_request.pk},
            )
        try:
            with transaction.atomic():
                transition = Transition.objects.create(
                    model=model,
                    version=version,
                    from_stage=version.stage,
                    to_stage=to,
                    status=TransitionStatus.PENDING,
                    reason=reason or "",
                    requested_by=actor,
                )
        except IntegrityError as exc:
            raise Conflict(f"a request to move v{version.version} to {to} is already open") from exc
        audit_append(
            actor=actor,
            action="transition.request",
            object_type="transition",
            object_id=transition.pk,
            model_name=model.name,
            after={"version": version.version, "from": version.stage, "to": to},
            reason=reason,
        )
        return _decide(transition, actor=actor, now=now, requested=True)


def _lock_transition(transition: Transition) -> Transition:
    _lock_model(transition.model)
    return (
        Transition.objects.select_for_update(of=("self",))
        .select_related("model", "model__team", "model__dataset", "version", "requested_by")
        .get(pk=transition.pk)
    )


def _require_open(transition: Transition, verb: str) -> None:
    if transition.status not in OPEN_TRANSITION_STATUSES:
        raise Conflict(f"transition #{transition.pk} is {transition.status}; it cannot be {verb}", code="stale_state")


def transition_approve(*, transition: Transition, actor: AbstractBaseUser, comment: str = "") -> Transition:
    """Record an approval; the transition is applied once its gates all pass."""
    require_role(actor, transition.model.team, Role.APPROVER, action="approving a transition")
    with transaction.atomic():
        transition = _lock_transition(transition)
        if transition.requested_by_id == actor.pk:
            raise Forbidden("the requester of a transition can never approve it")
        _require_open(transition, "approved")
        if Approval.objects.filter(transition=transition, user=actor).exists():
            raise Conflict(f"you have already decided on transition #{transition.pk}", code="already_decided")
        Approval.objects.create(
            transition=transition,
            user=actor,
            decision=Decision.APPROVE,
            role=role_in(actor, transition.model.team) or Role.VIEWER,
            comment=comment or "",
        )
        audit_append(
            actor=actor,
            action="transition.approve",
            object_type="transition",
            object_id=transition.pk,
            model_name=transition.model.name,
            before={"status": transition.status},
            reason=comment,
        )
        event_publish(
            team=transition.model.team,
            event_type="transition.approved",
            data={**transition_payload(transition), "approved_by": actor.get_username(), "comment": comment},
        )
        return _decide(transition, actor=actor, now=timezone.now())


def _close(transition: Transition, *, actor: AbstractBaseUser, status: str, verb: str, comment: str) -> Transition:
    """End an open transition without applying it (rejected or cancelled): record who and
    why, audit it and publish the event, inside the caller's locked transaction."""
    before = transition.status
    transition.status = status
    transition.status_detail = f"{status} by {actor.get_username()}" + (f": {comment}" if comment else "")
    transition.decided_at = timezone.now()
    transition.save()
    audit_append(
        actor=actor,
        action=f"transition.{verb}",
        object_type="transition",
        object_id=transition.pk,
        model_name=transition.model.name,
        before={"status": before},
        after={"status": transition.status},
        reason=comment,
    )
    event_publish(team=transition.model.team, event_type=f"transition.{status}", data=transition_payload(transition))
    return transition


def transition_reject(*, transition: Transition, actor: AbstractBaseUser, comment: str = "") -> Transition:
    """Turn a request down; the version stays where it is."""
    require_role(actor, transition.model.team, Role.APPROVER, action="rejecting a transition")
    with transaction.atomic():
        transition = _lock_transition(transition)
        if transition.requested_by_id == actor.pk:
            raise Forbidden("the requester of a transition cannot decide on it; cancel it instead")
        _require_open(transition, "rejected")
        Approval.objects.create(
            transition=transition,
            user=actor,
            decision=Decision.REJECT,
            role=role_in(actor, transition.model.team) or Role.VIEWER,
            comment=comment or "",
        )
        return _close(transition, actor=actor, status=TransitionStatus.REJECTED, verb="reject", comment=comment)


def transition_recheck(*, transition: Transition, actor: AbstractBaseUser) -> Transition:
    """Evaluate an open transition's gates again (after new evaluation results, say)."""
    require_role(actor, transition.model.team, Role.DEVELOPER, action="rechecking a transition")
    with transaction.atomic():
        transition = _lock_transition(transition)
        _require_open(transition, "rechecked")
        before = transition.status
        result = _decide(transition, actor=actor, now=timezone.now())
        audit_append(
            actor=actor,
            action="transition.recheck",
            object_type="transition",
            object_id=transition.pk,
            model_name=transition.model.name,
            before={"status": before},
            after={"status": result.status},
        )
        return result


def transitions_recheck_for_version(*, version: ModelVersion) -> list[Transition]:
    """After new evaluation results: recheck the version's open transitions (by the
    platform itself, on behalf of each requester)."""
    rechecked = []
    for pk in Transition.objects.filter(version=version, status__in=OPEN_TRANSITION_STATUSES).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            transition = _lock_transition(Transition.objects.get(pk=pk))
            if transition.status not in OPEN_TRANSITION_STATUSES:
                continue
            before = transition.status
            result = _decide(transition, actor=None, now=timezone.now())
            audit_append(
                actor=None,
                action="transition.recheck",
                object_type="transition",
                object_id=transition.pk,
                model_name=transition.model.name,
                before={"status": before},
                after={"status": result.status},
                reason="new evaluation results",
            )
            rechecked.append(result)
    return rechecked


def transition_cancel(*, transition: Transition, actor: AbstractBaseUser, comment: str = "") -> Transition:
    """Withdraw an open request: its requester, or an admin of the team."""
    if transition.requested_by_id != actor.pk:
        require_role(actor, transition.model.team, Role.ADMIN, action="cancelling someone else's transition")
    with transaction.atomic():
        transition = _lock_transition(transition)
        _require_open(transition, "cancelled")
        return _close(transition, actor=actor, status=TransitionStatus.CANCELLED, verb="cancel", comment=comment)


def model_rollback(
    *, model: RegisteredModel, actor: AbstractBaseUser, reason: str, to_version: int | None = None
) -> Transition:
    """Emergency: put the previous production version (or a named one that was once in
    production) back, at once and atomically. Approvers and admins only; always audited."""
    require_role(actor, model.team, Role.APPROVER, action="rolling back production")
    if not (reason or "").strip():
        raise InvalidInput("a rollback needs a reason", details={"reason": "required"})
    with transaction.atomic():
        model = _lock_model(model)
        current = ModelVersion.objects.select_for_update().filter(model=model, stage=Stage.PRODUCTION).first()
        if current is None:
            raise Conflict(f"model {model.name!r} has no production version to roll back", code="no_production")
        spans = ProductionRecord.objects.filter(model=model).exclude(version=current).select_related("version")
        if to_version is not None:
            span = spans.filter(version__version=to_version).order_by("-started_at").first()
            if span is None:
                problem = "is in production now" if to_version == current.version else "was never in production"
                raise InvalidInput(
                    f"v{to_version} {problem}; a rollback returns to an earlier production version",
                    details={"to_version": problem},
                )
        else:
            span = spans.order_by("-started_at", "-id").first()
            if span is None:
                raise Conflict(f"v{current.version} is the only version ever in production; nothing to roll back to")
        target = span.version
        # One instant for both halves: the rolled-back span ends where the restored one starts.
        now = timezone.now()
        rollback = Transition.objects.create(
            model=model,
            version=target,
            kind=TransitionKind.ROLLBACK,
            from_stage=target.stage,
            to_stage=Stage.PRODUCTION,
            status=TransitionStatus.APPLIED,
            reason=reason,
            requested_by=actor,
            status_detail=f"rolled back from v{current.version} to v{target.version}",
            decided_at=now,
        )
        stage_apply(
            model=model,
            version=current,
            to=Stage.ROLLED_BACK,
            actor=actor,
            reason=reason,
            via=rollback,
            production_end=ProductionEnd.ROLLED_BACK,
            at=now,
        )
        stage_apply(model=model, version=target, to=Stage.PRODUCTION, actor=actor, reason=reason, via=rollback, at=now)
        audit_append(
            actor=actor,
            action="model.rollback",
            object_type="model",
            object_id=model.name,
            model_name=model.name,
            before={"production": current.version},
            after={"production": target.version},
            reason=reason,
        )
        event_publish(
            team=model.team,
            event_type="model.rolled_back",
            data={"model": model.name, "from_version": current.version, "to_version": target.version, "reason": reason},
        )
        return rollback
