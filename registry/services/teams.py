"""Teams and who belongs to them with which role."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from registry.choices import Role
from registry.errors import InvalidInput
from registry.models import Membership, Team
from registry.services.validation import TEAM_NAME_RE


def team_ensure(*, name: str) -> Team:
    """The team with this name, created when missing."""
    if not TEAM_NAME_RE.match(name or ""):
        raise InvalidInput(
            f"team name {name!r} is invalid: lower-case letters, digits, '-' or '_'", details={"team": "invalid"}
        )
    team, _ = Team.objects.get_or_create(name=name)
    return team


def membership_set(*, user: AbstractBaseUser, team: Team, role: str) -> Membership:
    """Give ``user`` this role in ``team``, replacing the role they had there."""
    if role not in Role.values:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(Role.values)}", details={"role": "invalid"})
    membership, _ = Membership.objects.update_or_create(user=user, team=team, defaults={"role": role})
    return membership
