"""Audit records and events for changes made by the registry's services, written in the
same transaction through the ``registry_changed`` signal."""

from __future__ import annotations

from typing import Any

from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.outbox import event_publish
from registry.models import Alias, Dataset, ModelVersion, RegisteredModel

# Registry actions that are also platform events for webhooks.
_EVENTS = {
    "model.create": "model.created",
    "model.update": "model.updated",
    "model.policy_change": "model.policy_changed",
    "version.register": "version.registered",
    "version.sync": "version.registered",
}


def _describe(target: Any) -> tuple[str, str, RegisteredModel | None, Any]:
    """``(object type, object id, model, team)`` of a registry object."""
    if isinstance(target, RegisteredModel):
        return "model", target.name, target, target.team
    if isinstance(target, ModelVersion):
        return "model_version", f"{target.model.name}/{target.version}", target.model, target.model.team
    if isinstance(target, Alias):
        return "alias", f"{target.model.name}@{target.name}", target.model, target.model.team
    if isinstance(target, Dataset):
        return "dataset", f"{target.team.name}/{target.name}", None, target.team
    return type(target).__name__.lower(), str(getattr(target, "pk", "")), None, None


def on_registry_changed(
    sender: Any, *, action: str, actor: Any, target: Any, before: Any, after: Any, reason: str = "", **_: Any
) -> None:
    object_type, object_id, model, team = _describe(target)
    audit_append(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        model_name=model.name if model is not None else "",
        before=before,
        after=after,
        reason=reason,
    )
    event_type = _EVENTS.get(action)
    if event_type and team is not None:
        event_publish(team=team, event_type=event_type, data={"object": object_id, **(after or {})})
