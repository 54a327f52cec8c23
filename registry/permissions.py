"""Who may do what, in one place: roles in teams, and the querysets scoped to them."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from registry.choices import ROLE_RANK, Role
from registry.errors import Forbidden
from registry.models import Dataset, Membership, RegisteredModel, Team

User = AbstractBaseUser | AnonymousUser


def team_roles(user: User) -> dict[int, str]:
    """``{team_id: role}`` for the user, cached on the user object for the request."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, "_modelgate_team_roles", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("team_id", "role"))
        user._modelgate_team_roles = cached  # type: ignore[union-attr]
    return cached


def role_in(user: User, team: Team | int) -> str | None:
    """The user's role in the team; superusers act as admins of every team."""
    if user.is_authenticated and getattr(user, "is_superuser", False):
        return Role.ADMIN
    team_id = team if isinstance(team, int) else team.pk
    return team_roles(user).get(team_id)


def has_role(user: User, team: Team | int, minimum: str) -> bool:
    role = role_in(user, team)
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[minimum]


def require_role(user: User, team: Team | int, minimum: str, *, action: str) -> None:
    """Raise ``Forbidden`` naming the action and the role it needs."""
    if not has_role(user, team, minimum):
        name = (
            team.name if isinstance(team, Team) else Team.objects.filter(pk=team).values_list("name", flat=True).first()
        )
        raise Forbidden(f"{action} needs the {minimum} role or above in team {name!r}")


def sees_every_team(user: User) -> bool:
    """Superusers see every team's objects."""
    return user.is_authenticated and bool(getattr(user, "is_superuser", False))


def visible_team_ids(user: User) -> list[int] | None:
    """Teams whose objects the user may see; ``None`` means every team (superusers)."""
    if sees_every_team(user):
        return None
    return list(team_roles(user))


def models_visible_to(user: User) -> QuerySet[RegisteredModel]:
    teams = visible_team_ids(user)
    qs = RegisteredModel.objects.all()
    return qs if teams is None else qs.filter(team_id__in=teams)


def datasets_visible_to(user: User) -> QuerySet[Dataset]:
    teams = visible_team_ids(user)
    qs = Dataset.objects.all()
    return qs if teams is None else qs.filter(team_id__in=teams)
