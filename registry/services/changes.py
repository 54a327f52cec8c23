"""What every registry write does with the rows it changes: tags replaced as a whole
set, and the change announced inside the writer's transaction."""

from __future__ import annotations

from typing import Any

from registry.models import ModelTag, VersionTag
from registry.signals import registry_changed


def tags_replace(
    rows_model: type[ModelTag] | type[VersionTag], owner_field: str, owner: Any, tags: dict[str, str]
) -> None:
    """Make ``owner``'s tag rows exactly ``tags``: others deleted, the rest written."""
    rows_model.objects.filter(**{owner_field: owner}).exclude(key__in=list(tags)).delete()
    for key, value in tags.items():
        rows_model.objects.update_or_create(**{owner_field: owner, "key": key}, defaults={"value": value})


def change_announce(
    action: str, *, actor: Any, target: Any, before: dict | None, after: dict | None, reason: str = ""
) -> None:
    """Send ``registry_changed``: the lifecycle app records the audit entry and outbox
    events in the caller's transaction, without the registry importing it."""
    registry_changed.send(
        sender=type(target), action=action, actor=actor, target=target, before=before, after=after, reason=reason
    )
