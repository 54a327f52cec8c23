"""Read queries of the lifecycle app, shared by the API, the web UI and the services."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from lifecycle.governance import rules
from lifecycle.governance.choices import Decision
from lifecycle.governance.models import Approval, AuditRecord, ProductionRecord, Transition, Webhook, WebhookDelivery
from lifecycle.governance.signals import canary_start_wanted
from registry.choices import ROLE_RANK, Role, Stage
from registry.errors import InvalidInput, NotFound
from registry.models import ModelVersion, RegisteredModel, VersionMetric
from registry.permissions import team_roles, visible_team_ids

User = AbstractBaseUser | AnonymousUser


def _observations(version: ModelVersion) -> list[rules.MetricObservation]:
    return [
        rules.MetricObservation(
            name=row.name,
            value=row.value,
            source=row.source,
            dataset_digest=row.dataset_digest or None,
            evaluated_at=row.recorded_at,
        )
        for row in VersionMetric.objects.filter(version=version).order_by("recorded_at")
    ]


def version_artifacts(version: ModelVersion) -> frozenset[str]:
    """What ``required_artifacts`` may ask for and this version has."""
    present = set()
    if version.signature:
        present.add("signature")
    if version.description.strip():
        present.update({"description", "model_card"})
    if version.dataset_id:
        present.add("dataset")
    return frozenset(present)


def _signature_inputs(version: ModelVersion) -> list | None:
    inputs = version.signature.get("inputs") if isinstance(version.signature, dict) else None
    return inputs if isinstance(inputs, list) else None


def _canary_started_at(version: ModelVersion) -> datetime | None:
    """When the version's canary began taking live traffic, as the deployment stage says."""
    answers = [started for _, started in canary_start_wanted.send(sender=ModelVersion, version=version) if started]
    return min(answers) if answers else None


def gate_context(*, transition: Transition, now: datetime) -> rules.GateContext:
    """Everything the policy's rules look at for this transition, read now."""
    version = transition.version
    model = transition.model
    champion = (
        ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).exclude(pk=version.pk).first()
        if transition.to_stage in (Stage.PRODUCTION, Stage.STAGING)
        else None
    )
    approvals = [
        rules.Approval(user_id=str(a.user_id), role=a.role, decided_at=a.created_at, comment=a.comment)
        for a in Approval.objects.filter(transition=transition, decision=Decision.APPROVE)
    ]
    return rules.GateContext(
        target_stage=transition.to_stage,
        requester_id=str(transition.requested_by_id),
        now=now,
        candidate_metrics=_observations(version),
        champion_metrics=_observations(champion) if champion is not None else None,
        approvals=approvals,
        artifacts=version_artifacts(version),
        dataset_digest=model.dataset.digest if model.dataset_id else None,
        canary_started_at=_canary_started_at(version),
        parent_metrics=_observations(version.parent) if version.parent_id else None,
        artifact_bytes=version.size_bytes,
        signature_inputs=_signature_inputs(version),
    )


def transitions_visible_to(user: User) -> QuerySet[Transition]:
    qs = Transition.objects.select_related("model", "model__team", "version", "requested_by").prefetch_related(
        "decisions__user"
    )
    teams = visible_team_ids(user)
    return qs if teams is None else qs.filter(model__team_id__in=teams)


def transition_list(*, user: User, status: str | None = None, model: str | None = None) -> QuerySet[Transition]:
    qs = transitions_visible_to(user)
    if status:
        from lifecycle.governance.choices import TransitionStatus

        if status not in TransitionStatus.values:
            raise InvalidInput(
                f"unknown status {status!r}; expected one of {', '.join(TransitionStatus.values)}",
                details={"status": "unknown status"},
            )
        qs = qs.filter(status=status)
    if model:
        qs = qs.filter(model__name=model)
    return qs


def transition_get(*, user: User, pk: int | str) -> Transition:
    try:
        key = int(pk)
    except (TypeError, ValueError):
        raise NotFound(f"no transition {pk!r}") from None
    found = transitions_visible_to(user).filter(pk=key).first()
    if found is None:
        raise NotFound(f"no transition {pk!r}")
    return found


def approvable_by(user: User) -> Q:
    """Pending transitions of the teams where the user may approve."""
    if user.is_authenticated and getattr(user, "is_superuser", False):
        return Q()
    teams = [team for team, role in team_roles(user).items() if ROLE_RANK[role] >= ROLE_RANK[Role.APPROVER]]
    return Q(model__team_id__in=teams)


def production_history(*, model: RegisteredModel) -> QuerySet[ProductionRecord]:
    return (
        ProductionRecord.objects.filter(model=model)
        .select_related("version", "started_by")
        .order_by("-started_at", "-id")
    )


def production_at(*, model: RegisteredModel, at: datetime) -> ProductionRecord | None:
    """The production span covering the instant, if any."""
    return (
        production_history(model=model)
        .filter(started_at__lte=at)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=at))
        .first()
    )


def audit_list(
    *, user: User, model: str | None = None, actor: str | None = None, action: str | None = None
) -> QuerySet[AuditRecord]:
    """Audit records about models the user may see (all records for superusers)."""
    qs = AuditRecord.objects.all()
    teams = visible_team_ids(user)
    if teams is not None:
        visible_models = RegisteredModel.objects.filter(team_id__in=teams).values_list("name", flat=True)
        qs = qs.filter(model_name__in=visible_models)
    if model:
        qs = qs.filter(model_name=model)
    if actor:
        qs = qs.filter(actor_name=actor)
    if action:
        qs = qs.filter(action=action)
    return qs


def webhooks_visible_to(user: User) -> QuerySet[Webhook]:
    teams = visible_team_ids(user)
    qs = Webhook.objects.select_related("team")
    return qs if teams is None else qs.filter(team_id__in=teams)


def webhook_get(*, user: User, pk: int | str) -> Webhook:
    try:
        key = int(pk)
    except (TypeError, ValueError):
        raise NotFound(f"no webhook {pk!r}") from None
    found = webhooks_visible_to(user).filter(pk=key).first()
    if found is None:
        raise NotFound(f"no webhook {pk!r}")
    return found


def webhook_deliveries(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(webhook=webhook).select_related("event")
