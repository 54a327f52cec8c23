"""A model's monitor rules changed one at a time: add one, remove one.

Both rewrite the ``"monitors"`` list of the model's policy through the registry's
``model_update``, the service ``PATCH models/{name}/`` calls: the same policy validator
(a bad rule, or a ``derive`` action's bad ``params``, is an ``InvalidInput`` naming
``policy.monitors[i].field``, and nothing is stored), the same approver check, the same
``model.policy_change`` audit record. The model row is locked first, so two changes made
at once each see the other's result instead of overwriting it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from registry.choices import Role
from registry.errors import Conflict, InvalidInput
from registry.models import RegisteredModel
from registry.permissions import require_role
from registry.services import model_update


def _locked(model: RegisteredModel) -> RegisteredModel:
    # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the dataset join.
    return RegisteredModel.objects.select_for_update(of=("self",)).select_related("team", "dataset").get(pk=model.pk)


def model_monitor_add(
    *, model: RegisteredModel, monitor: dict[str, Any], actor: AbstractBaseUser, reason: str = ""
) -> RegisteredModel:
    """Append ``monitor`` to the model's monitor rules (approvers and admins); the policy
    comes back with it in canonical form, every default filled in."""
    require_role(actor, model.team, Role.APPROVER, action="changing a model's monitor rules")
    with transaction.atomic():
        locked = _locked(model)
        policy = dict(locked.policy or {})
        policy["monitors"] = [*policy.get("monitors", []), monitor]
        return model_update(actor=actor, model=locked, changes={"policy": policy}, reason=reason)


def model_monitor_remove(
    *, model: RegisteredModel, index: int, expected: dict[str, Any], actor: AbstractBaseUser, reason: str = ""
) -> RegisteredModel:
    """Remove the monitor rule at ``index`` (approvers and admins), provided it is still
    ``expected``: a list changed since it was read is a ``Conflict``, never the removal of
    another rule."""
    require_role(actor, model.team, Role.APPROVER, action="changing a model's monitor rules")
    with transaction.atomic():
        locked = _locked(model)
        policy = dict(locked.policy or {})
        monitors = list(policy.get("monitors", []))
        if not 0 <= index < len(monitors):
            raise InvalidInput(f"the model has no monitor rule #{index + 1}", details={"index": "unknown"})
        if monitors[index] != expected:
            raise Conflict(f"the monitor rules of {locked.name} changed since they were shown; reload and try again")
        del monitors[index]
        if monitors:
            policy["monitors"] = monitors
        else:
            policy.pop("monitors", None)
        return model_update(actor=actor, model=locked, changes={"policy": policy}, reason=reason)
