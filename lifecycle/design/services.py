"""Every write of the design stage: a model card changed (a new revision), and design
completed (the gated transition of the model from ``design`` to ``active``).

Both lock the model's row, so card changes and completion are serialised per model; both
write their audit record and event in the same transaction.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from lifecycle.design.card import CardError, card_diff, card_empty, card_missing, card_parse, seeded_rules
from lifecycle.design.choices import DesignAction, DesignEvent, ModelStage, allowed_model_transition
from lifecycle.design.models import DesignCard, DesignCardRevision
from lifecycle.design.selectors import design_missing_fields
from lifecycle.governance.rules import RULE_TYPES
from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.outbox import event_publish
from registry.choices import Role
from registry.design_gate import card_writer_install, missing_fields_install
from registry.errors import Conflict, InvalidInput
from registry.models import Dataset, RegisteredModel
from registry.permissions import require_role
from registry.services import model_policy_extend, model_update


def _lock_model(model: RegisteredModel) -> RegisteredModel:
    # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the dataset join.
    return RegisteredModel.objects.select_for_update(of=("self",)).select_related("team").get(pk=model.pk)


def _card_clean(raw: Any) -> dict[str, Any]:
    try:
        return card_parse(raw)
    except CardError as exc:
        details = {"card" if path == "card" else f"card.{path}": message for path, message in exc.problems.items()}
        first = next(iter(details.items()))
        raise InvalidInput(f"invalid model card: {first[0]}: {first[1]}", details=details) from exc


def _datasets_check(model: RegisteredModel, card: dict[str, Any]) -> None:
    names = {entry["name"] for entry in card["datasets"]}
    known = set(Dataset.objects.filter(team=model.team, name__in=names).values_list("name", flat=True))
    details = {
        f"card.datasets[{i}].name": f"team {model.team.name!r} has no dataset named {entry['name']!r}"
        for i, entry in enumerate(card["datasets"])
        if entry["name"] not in known
    }
    if details:
        raise InvalidInput(next(iter(details.values())), details=details)


def design_card_update(
    *,
    model: RegisteredModel,
    card: Any,
    actor: AbstractBaseUser,
    expected_revision: int | None,
    reason: str = "",
) -> DesignCard:
    """Replace a model's card with ``card`` as a new revision.

    ``expected_revision`` is the revision the caller edited (0 before the first save);
    if the card moved on since, the change is refused (409 ``stale_revision``) and
    nothing is lost. A card may be saved incomplete; a malformed one is a 400 naming
    each bad field. Saving the same content again makes no revision.
    """
    require_role(actor, model.team, Role.DEVELOPER, action="editing a model card")
    clean = _card_clean(card)
    if expected_revision is not None and (
        isinstance(expected_revision, bool) or not isinstance(expected_revision, int)
    ):
        raise InvalidInput("revision must be a whole number", details={"revision": "not a whole number"})
    _datasets_check(model, clean)
    with transaction.atomic():
        locked = _lock_model(model)
        row = DesignCard.objects.filter(model=locked).first()
        current = row.revision if row is not None else 0
        if expected_revision is None and current > 0:
            raise InvalidInput(
                f"give the revision you edited (the card is at revision {current}) in 'revision' or If-Match",
                details={"revision": "required once the card has been saved"},
            )
        if expected_revision is not None and expected_revision != current:
            raise Conflict(
                f"the card of {locked.name!r} is at revision {current}, not {expected_revision}: "
                "someone changed it since you read it; read it again and reapply your change",
                code="stale_revision",
                details={"revision": current},
            )
        before = dict(row.content) if row is not None else card_empty()
        diff = card_diff(before, clean)
        if row is not None and not diff:
            return row
        if row is None:
            row = DesignCard(model=locked)
        row.content = clean
        row.revision = current + 1
        row.updated_by = actor
        row.save()
        DesignCardRevision.objects.create(
            card=row, number=row.revision, content=clean, diff=diff, actor=actor, reason=reason or ""
        )
        missing = card_missing(clean)
        audit_append(
            actor=actor,
            action=DesignAction.CARD_UPDATE,
            object_type="design_card",
            object_id=locked.name,
            model_name=locked.name,
            before={"revision": current, "changed": {name: change["before"] for name, change in diff.items()}},
            after={
                "revision": row.revision,
                "changed": {name: change["after"] for name, change in diff.items()},
                "missing": missing,
            },
            reason=reason,
        )
        event_publish(
            team=locked.team,
            event_type=DesignEvent.UPDATED,
            data={"model": locked.name, "revision": row.revision, "changed": sorted(diff), "missing": missing},
        )
    return row


def _definition_changes(model: RegisteredModel, card: dict[str, Any]) -> dict[str, Any]:
    """The model's fields a completed card defines where the model does not yet."""
    changes: dict[str, Any] = {}
    if card["task"] and card["task"] != model.task:
        changes["task"] = card["task"]
    if not model.primary_metric and card["success_criteria"]:
        changes["primary_metric"] = card["success_criteria"][0]["metric"]
    if model.dataset_id is None:
        evaluation = [d["name"] for d in card["datasets"] if d["role"] == "evaluation"]
        if evaluation:
            changes["dataset"] = evaluation[0]
    return changes


def model_design_complete(*, model: RegisteredModel, actor: AbstractBaseUser, reason: str = "") -> RegisteredModel:
    """Leave design: the model moves from ``design`` to ``active``, so versions may be
    registered and trained.

    Refused (409 ``design_incomplete``) while the card lacks a field, naming each one.
    On success the card's success criteria (and the budgets the policy language knows)
    are added to the model's policy as gates, and the task, primary metric and
    evaluation dataset the card names are set where the model has none, each change
    through the registry's own services, so each is validated and audited.
    """
    require_role(actor, model.team, Role.DEVELOPER, action="completing a model's design")
    with transaction.atomic():
        locked = _lock_model(model)
        if not allowed_model_transition(locked.stage, ModelStage.ACTIVE):
            raise Conflict(
                f"model {locked.name!r} is {locked.stage}, not in design: there is no design to complete",
                code="not_in_design",
                details={"stage": locked.stage},
            )
        row = DesignCard.objects.select_for_update().filter(model=locked).first()
        card = dict(row.content) if row is not None else card_empty()
        missing = card_missing(card)
        if row is None or missing:
            raise Conflict(
                f"design of {locked.name!r} cannot be completed: its card lacks {', '.join(missing)}",
                code="design_incomplete",
                details={"missing": missing, "revision": row.revision if row is not None else 0},
            )
        _datasets_check(locked, card)
        # Compare-and-swap on the stage: the row lock makes it the only writer, the
        # filter makes a lost race visible instead of silent.
        if not RegisteredModel.objects.filter(pk=locked.pk, stage=ModelStage.DESIGN).update(
            stage=ModelStage.ACTIVE, updated_at=timezone.now()
        ):
            raise Conflict(f"model {locked.name!r} left design meanwhile", code="not_in_design")
        locked.stage = ModelStage.ACTIVE
        row.completed_at = timezone.now()
        row.completed_by = actor
        row.completed_revision = row.revision
        row.save(update_fields=["completed_at", "completed_by", "completed_revision", "updated_at"])
        audit_append(
            actor=actor,
            action=DesignAction.COMPLETE,
            object_type="model",
            object_id=locked.name,
            model_name=locked.name,
            before={"stage": ModelStage.DESIGN},
            after={"stage": ModelStage.ACTIVE, "card_revision": row.revision},
            reason=reason,
        )
        why = f"design of {locked.name!r} completed with card revision {row.revision}"
        changes = _definition_changes(locked, card)
        if changes:
            locked = model_update(actor=actor, model=locked, changes=changes, reason=why)
        rules = seeded_rules(card, RULE_TYPES)
        if rules:
            locked = model_policy_extend(
                actor=actor, model=locked, rules=rules, reason=f"{why}: its targets seed the gates"
            )
        event_publish(
            team=locked.team,
            event_type=DesignEvent.COMPLETED,
            data={"model": locked.name, "revision": row.revision, "seeded_rules": rules},
        )
    return locked


def model_card_create(*, model: RegisteredModel, card: Any, actor: AbstractBaseUser) -> DesignCard:
    """The card a model was created with (``POST models/ {..., "design": {...}}``), as
    its first revision, inside the creation's transaction; a bad card is a 400 naming
    ``design.<field>``, and the model is not created."""
    try:
        return design_card_update(model=model, card=card, actor=actor, expected_revision=0, reason="model created")
    except InvalidInput as exc:
        details = {
            ("design" + key[len("card") :] if key.startswith("card") else key): message
            for key, message in (exc.details or {}).items()
        }
        raise InvalidInput(exc.message.replace("card.", "design.", 1), details=details) from exc


def install() -> None:
    """Let the registry name a model's missing card fields when it refuses a version, and
    store the card a model is created with."""
    missing_fields_install(design_missing_fields)
    card_writer_install(model_card_create)
