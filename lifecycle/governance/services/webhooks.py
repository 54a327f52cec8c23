"""Webhook subscriptions of a team."""

from __future__ import annotations

import secrets
from urllib.parse import urlparse

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from lifecycle.governance.choices import EVENT_TYPES
from lifecycle.governance.models import Webhook
from lifecycle.governance.services.audit import audit_append
from registry.choices import Role
from registry.errors import InvalidInput
from registry.models import Team
from registry.permissions import require_role


def _events_validate(events: list[str] | None) -> list[str]:
    if not events:
        return ["*"]
    families = {event.split(".")[0] + ".*" for event in EVENT_TYPES}
    unknown = [e for e in events if e != "*" and e not in EVENT_TYPES and e not in families]
    if unknown:
        raise InvalidInput(
            f"unknown event {unknown[0]!r}; expected '*', a family like 'transition.*', or one of {', '.join(EVENT_TYPES)}",
            details={"events": "unknown event"},
        )
    return sorted(set(events))


def webhook_create(
    *,
    actor: AbstractBaseUser,
    team: Team,
    url: str,
    events: list[str] | None = None,
    secret: str | None = None,
    description: str = "",
) -> Webhook:
    """Subscribe a URL to the team's events. The secret signs each delivery (generated
    when not given; shown in the create answer only)."""
    require_role(actor, team, Role.ADMIN, action="adding a webhook")
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InvalidInput(f"webhook url {url!r} must be an http(s) URL", details={"url": "must be http(s)"})
    if secret is not None and len(secret) < 16:
        raise InvalidInput("a webhook secret must be at least 16 characters", details={"secret": "too short"})
    with transaction.atomic():
        webhook = Webhook.objects.create(
            team=team,
            url=url,
            events=_events_validate(events),
            secret=secret or secrets.token_urlsafe(32),
            description=description,
            created_by=actor,
        )
        audit_append(
            actor=actor,
            action="webhook.create",
            object_type="webhook",
            object_id=webhook.pk,
            after={"team": team.name, "url": url, "events": webhook.events},
        )
    return webhook
