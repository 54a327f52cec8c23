"""Registered models: their definition (the DESIGN phase) and changes to it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from registry.choices import ModelStage, Role, TaskType
from registry.design_gate import model_card_write
from registry.errors import Conflict, InvalidInput
from registry.models import ModelTag, RegisteredModel, Team
from registry.permissions import require_role
from registry.policy import policy_validate
from registry.services.changes import change_announce, tags_replace
from registry.services.datasets import dataset_in_team
from registry.services.validation import metric_name_validate, name_validate, tags_validate, task_validate


def model_snapshot(model: RegisteredModel) -> dict[str, Any]:
    """A model's definition as the audit trail records it before and after a change."""
    return {
        "name": model.name,
        "team": model.team.name,
        "description": model.description,
        "task": model.task,
        "stage": model.stage,
        "primary_metric": model.primary_metric,
        "policy": model.policy,
        "dataset": model.dataset.name if model.dataset_id else None,
        "tags": dict(model.tag_rows.values_list("key", "value")) if model.pk else {},
    }


def model_create(
    *,
    actor: AbstractBaseUser,
    name: str,
    team: Team,
    description: str = "",
    task: str = TaskType.CLASSIFICATION,
    primary_metric: str = "",
    policy: Any = None,
    dataset: str | None = None,
    tags: Any = None,
    stage: str = ModelStage.ACTIVE,
    design: Any = None,
) -> RegisteredModel:
    """Define a model: owner team, task, primary metric, dataset, policy.

    ``stage="design"`` starts it in the design stage: no version may be registered or
    trained until its model card is complete and design is completed
    (``lifecycle.design``). The default, ``active``, is what callers that register
    versions at once have always had. ``design``, a model card, is stored as the card's
    first revision in the same transaction: a bad card creates nothing."""
    require_role(actor, team, Role.DEVELOPER, action="creating a model")
    name_validate(name)
    if stage not in ModelStage.values:
        raise InvalidInput(f"stage {stage!r} is not one of {ModelStage.values}", details={"stage": "invalid"})
    canonical_policy = policy_validate({} if policy is None else policy)
    clean_tags = tags_validate(tags)
    dataset_obj = dataset_in_team(team, dataset)
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name,
                team=team,
                description=description or "",
                task=task_validate(task),
                stage=stage,
                primary_metric=metric_name_validate(primary_metric, "primary_metric"),
                policy=canonical_policy,
                dataset=dataset_obj,
                created_by=actor,
            )
            tags_replace(ModelTag, "model", model, clean_tags)
            change_announce("model.create", actor=actor, target=model, before=None, after=model_snapshot(model))
            if design is not None:
                model_card_write(model=model, card=design, actor=actor)
    except IntegrityError as exc:
        raise Conflict(f"a model named {name!r} already exists") from exc
    return model


_MODEL_FIELDS = {"description", "task", "primary_metric", "policy", "dataset", "tags"}


def model_update(
    *, actor: AbstractBaseUser, model: RegisteredModel, changes: dict[str, Any], reason: str = ""
) -> RegisteredModel:
    """Change a model's definition. Changing the policy is a governance act: approvers
    and admins only."""
    unknown = set(changes) - _MODEL_FIELDS
    if unknown:
        raise InvalidInput(
            f"cannot change {', '.join(sorted(unknown))}",
            details={name: "cannot be changed" for name in sorted(unknown)},
        )
    require_role(actor, model.team, Role.DEVELOPER, action="changing a model")
    if "policy" in changes:
        require_role(actor, model.team, Role.APPROVER, action="changing a model's policy")
    with transaction.atomic():
        # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the dataset join.
        locked = (
            RegisteredModel.objects.select_for_update(of=("self",)).select_related("team", "dataset").get(pk=model.pk)
        )
        before = model_snapshot(locked)
        if "description" in changes:
            locked.description = str(changes["description"] or "")
        if "task" in changes:
            locked.task = task_validate(changes["task"])
        if "primary_metric" in changes:
            locked.primary_metric = metric_name_validate(changes["primary_metric"], "primary_metric")
        if "policy" in changes:
            locked.policy = policy_validate({} if changes["policy"] is None else changes["policy"])
        if "dataset" in changes:
            locked.dataset = dataset_in_team(locked.team, changes["dataset"])
        locked.save()
        if "tags" in changes:
            tags_replace(ModelTag, "model", locked, tags_validate(changes["tags"]))
        after = model_snapshot(locked)
        action = "model.policy_change" if before["policy"] != after["policy"] else "model.update"
        change_announce(action, actor=actor, target=locked, before=before, after=after, reason=reason)
    return locked


def model_policy_extend(
    *, actor: AbstractBaseUser, model: RegisteredModel, rules: list[dict[str, Any]], reason: str
) -> RegisteredModel:
    """Add gates to a model's policy, never removing or changing one: the rules not
    already in it (in canonical form) are appended, validated and audited like any
    policy change (``model.policy_change``).

    Adding a gate only makes promotion stricter, so developers may do it (this is how a
    completed design card seeds its success criteria); changing or removing gates stays
    with approvers (``model_update``)."""
    require_role(actor, model.team, Role.DEVELOPER, action="adding gates to a model's policy")
    with transaction.atomic():
        locked = (
            RegisteredModel.objects.select_for_update(of=("self",)).select_related("team", "dataset").get(pk=model.pk)
        )
        before = model_snapshot(locked)
        current = policy_validate(locked.policy or {})
        existing = list(current.get("rules", []))
        added = policy_validate({"rules": list(rules)}).get("rules", [])
        fresh = [rule for rule in added if rule not in existing]
        if not fresh:
            return locked
        # Everything else the policy holds (its monitors, its pii columns) stays as it was.
        locked.policy = policy_validate({**current, "rules": existing + fresh})
        locked.save(update_fields=["policy", "updated_at"])
        change_announce(
            "model.policy_change",
            actor=actor,
            target=locked,
            before=before,
            after=model_snapshot(locked),
            reason=reason,
        )
    return locked
