"""Aliases: named pointers at a model's versions, kept the same here and in MLflow.

``champion`` and ``challenger`` follow the production and staging stages: stage
changes move them (``alias_point``, mirrored to MLflow by ``alias_mirror`` through the
outbox), never a request to set an alias.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from registry import mlflow_gateway
from registry.choices import STAGE_ALIASES, Role
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import Alias, ModelVersion, RegisteredModel
from registry.permissions import require_role
from registry.services.changes import change_announce
from registry.services.validation import ALIAS_RE
from registry.version_documents import version_documents_refresh


def alias_set(
    *,
    actor: AbstractBaseUser | None,
    model: RegisteredModel,
    name: str,
    version: ModelVersion,
    stage_move: bool = False,
) -> Alias:
    """Point an alias at a version here and in MLflow. ``champion`` and ``challenger``
    follow the production and staging stages and move only with them."""
    if actor is not None:
        require_role(actor, model.team, Role.DEVELOPER, action="setting an alias")
    if not ALIAS_RE.match(name or ""):
        raise InvalidInput(
            f"alias {name!r} is invalid: lower-case letters, digits, '-' or '_'", details={"alias": "invalid"}
        )
    if name in STAGE_ALIASES.values() and not stage_move:
        raise Conflict(f"alias {name!r} follows the stage of a version; request a stage transition instead")
    if version.model_id != model.pk:
        raise InvalidInput(
            f"version {version.version} is not a version of {model.name!r}", details={"version": "wrong model"}
        )
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(model=model, name=name).first()
        before = {"version": alias.version.version} if alias else None
        previous = alias.version_id if alias else None
        if alias is None:
            alias = Alias.objects.create(model=model, name=name, version=version)
        else:
            alias.version = version
            alias.save()
        version_documents_refresh(versions=[previous, version])
        change_announce(
            "alias.set", actor=actor, target=alias, before=before, after={"alias": name, "version": version.version}
        )
        # Inside the transaction: when MLflow refuses, the alias does not move here either.
        mlflow_gateway.alias_set(model.name, name, version.version)
    return alias


def alias_delete(*, actor: AbstractBaseUser, model: RegisteredModel, name: str) -> None:
    """Remove an alias here and in MLflow; the stage aliases cannot be removed so."""
    require_role(actor, model.team, Role.DEVELOPER, action="deleting an alias")
    if name in STAGE_ALIASES.values():
        raise Conflict(f"alias {name!r} follows the stage of a version; request a stage transition instead")
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(model=model, name=name).first()
        if alias is None:
            raise NotFound(f"model {model.name!r} has no alias {name!r}")
        change_announce(
            "alias.delete", actor=actor, target=alias, before={"version": alias.version.version}, after=None
        )
        alias.delete()
        version_documents_refresh(versions=[alias.version_id])
        mlflow_gateway.alias_delete(model.name, name)


def alias_point(*, model: RegisteredModel, name: str, version: ModelVersion | None) -> None:
    """Move or remove an alias in ModelGate's tables only, inside the caller's transaction.

    Used by stage changes, which mirror the move to MLflow through the outbox
    (``alias_mirror``) after commit instead of calling MLflow while holding locks.
    """
    previous = Alias.objects.filter(model=model, name=name).values_list("version_id", flat=True).first()
    if version is None:
        Alias.objects.filter(model=model, name=name).delete()
    else:
        Alias.objects.update_or_create(model=model, name=name, defaults={"version": version})
    version_documents_refresh(versions=[previous, version])


def alias_mirror(*, model_name: str, alias: str) -> None:
    """Make MLflow's alias match ModelGate's current one (idempotent, order-independent)."""
    current = Alias.objects.filter(model__name=model_name, name=alias).select_related("version").first()
    if current is None:
        mlflow_gateway.alias_delete(model_name, alias)
    else:
        mlflow_gateway.alias_set(model_name, alias, current.version.version)
