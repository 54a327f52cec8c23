"""Reads of alerts and of stored drift windows, scoped to what the user may see."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from lifecycle.monitoring.models import Alert, DriftResult, MonitorWindow
from registry.errors import NotFound
from registry.models import RegisteredModel
from registry.permissions import User, visible_team_ids


def alert_get(*, user: User, pk: int | str) -> Alert:
    """The alert, if the user sees its model's team; else ``NotFound`` (never a 403 that
    would tell an outsider it exists)."""
    try:
        key = int(pk)
    except (TypeError, ValueError):
        raise NotFound(f"no alert {pk!r}") from None
    qs = Alert.objects.select_related("model", "model__team", "version")
    teams = visible_team_ids(user)
    if teams is not None:
        qs = qs.filter(model__team_id__in=teams)
    found = qs.filter(pk=key).first()
    if found is None:
        raise NotFound(f"no alert {key}")
    return found


def alert_list(*, model: RegisteredModel, status: str | None = None) -> QuerySet[Alert]:
    qs = Alert.objects.filter(model=model).select_related("model", "version", "acknowledged_by", "resolved_by")
    return qs.filter(status=status) if status else qs


def drift_windows(
    *, model: RegisteredModel, version: int | None = None, feature: str | None = None, deployment_id: int | None = None
) -> QuerySet[MonitorWindow]:
    """The model's stored windows, newest first, each with its drift rows (only
    ``feature``'s when named)."""
    drift = DriftResult.objects.order_by("feature")
    if feature:
        drift = drift.filter(feature=feature)
    qs = (
        MonitorWindow.objects.filter(model=model)
        .select_related("version", "reference")
        .prefetch_related(Prefetch("drift", queryset=drift))
        .order_by("-start", "-id")
    )
    if version is not None:
        qs = qs.filter(version__version=version)
    if deployment_id is not None:
        qs = qs.filter(deployment_id=deployment_id)
    return qs


def monitored_versions(*, model: RegisteredModel) -> list[int]:
    """The model's version numbers that have stored windows, newest first."""
    return list(
        MonitorWindow.objects.filter(model=model)
        .order_by("-version__version")
        .values_list("version__version", flat=True)
        .distinct()
    )
