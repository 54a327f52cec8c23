"""Reads of the deployment stage, and the route table built for the serving gateway."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import F, Prefetch, QuerySet, Window
from django.db.models.functions import RowNumber

from lifecycle.deployments.choices import DEPLOYABLE_STAGES, DeploymentState, ReplicaState, RouteMode
from lifecycle.deployments.models import Deployment, DeploymentRevision, Replica, Route, RouteTablePublication
from registry.errors import NotFound
from registry.models import ModelVersion, RegisteredModel
from registry.permissions import visible_team_ids

User = AbstractBaseUser | AnonymousUser
_MODE_ORDER = {RouteMode.PRIMARY: 0, RouteMode.CANARY: 1, RouteMode.SHADOW: 2}


def deployments_visible_to(user: User) -> QuerySet[Deployment]:
    teams = visible_team_ids(user)
    qs = Deployment.objects.select_related("model", "model__team", "created_by").prefetch_related(
        Prefetch("routes", queryset=Route.objects.select_related("version")),
        Prefetch("replica_set", queryset=Replica.objects.select_related("version", "job")),
    )
    return qs if teams is None else qs.filter(model__team_id__in=teams)


def deployment_list(*, user: User, model: RegisteredModel) -> QuerySet[Deployment]:
    return deployments_visible_to(user).filter(model=model).order_by("-id")


def deployment_get(*, user: User, pk: int | str) -> Deployment:
    try:
        key = int(pk)
    except (TypeError, ValueError):
        raise NotFound(f"no deployment {pk!r}") from None
    found = deployments_visible_to(user).filter(pk=key).first()
    if found is None:
        raise NotFound(f"no deployment {key}")
    return found


def deployment_revisions(*, deployment: Deployment) -> QuerySet[DeploymentRevision]:
    return deployment.revisions.select_related("actor").order_by("-number")


def deployment_revisions_latest(deployments: list[Deployment], *, limit: int) -> dict[int, list[DeploymentRevision]]:
    """The newest ``limit`` revisions of each deployment, in one query, newest first.
    The caller has the deployments from ``deployments_visible_to``."""
    ids = [deployment.pk for deployment in deployments]
    if not ids:
        return {}
    ranked = (
        DeploymentRevision.objects.filter(deployment_id__in=ids)
        .annotate(rank=Window(RowNumber(), partition_by=F("deployment_id"), order_by=F("number").desc()))
        .filter(rank__lte=limit)
        .select_related("actor")
        .order_by("deployment_id", "-number")
    )
    found: dict[int, list[DeploymentRevision]] = {pk: [] for pk in ids}
    for revision in ranked:
        found[revision.deployment_id].append(revision)
    return found


def deployable_versions(*, model: RegisteredModel) -> list[ModelVersion]:
    """The model's versions a route may serve (staging and production), newest first:
    the choices of the canary and shadow forms (the services check the one chosen)."""
    return list(ModelVersion.objects.filter(model=model, stage__in=DEPLOYABLE_STAGES).order_by("-version"))


def _route_document(route: Route, replicas: list[Replica]) -> dict[str, Any]:
    return {
        "version": route.version.version,
        "weight": route.weight,
        "mode": route.mode,
        "signature": route.version.signature,
        "replicas": [
            {"id": r.pk, "url": r.url, "healthy": r.state == ReplicaState.READY}
            for r in replicas
            if r.version_id == route.version_id and r.url
        ],
    }


def _pii_columns(model: RegisteredModel) -> list[str]:
    policy = model.policy if isinstance(model.policy, dict) else {}
    return [str(column) for column in policy.get("pii") or ()]


def route_table_build(*, revision: int, at: datetime) -> dict[str, Any]:
    """The route table of every running deployment: each route with the replicas that
    answer. While a new primary has no ready replica yet, the previous primary keeps
    serving under its own version number."""
    deployments = (
        Deployment.objects.exclude(state=DeploymentState.STOPPED)
        .select_related("model", "previous_primary")
        .prefetch_related(
            Prefetch("routes", queryset=Route.objects.select_related("version")),
            Prefetch(
                "replica_set",
                queryset=Replica.objects.filter(state__in=[ReplicaState.READY, ReplicaState.UNHEALTHY]),
            ),
        )
        .order_by("id")
    )
    documents = []
    for deployment in deployments:
        replicas = list(deployment.replica_set.all())
        routes = []
        for route in sorted(deployment.routes.all(), key=lambda r: _MODE_ORDER[r.mode]):
            document = _route_document(route, replicas)
            previous = deployment.previous_primary
            if route.mode == RouteMode.PRIMARY and previous is not None and not document["replicas"]:
                stand_in = Route(version=previous, mode=RouteMode.PRIMARY, weight=route.weight)
                if any(r.version_id == previous.pk and r.url for r in replicas):
                    document = _route_document(stand_in, replicas)
            routes.append(document)
        documents.append(
            {
                "id": deployment.pk,
                "model": deployment.model.name,
                "name": deployment.name,
                "default": deployment.is_default,
                "state": deployment.state,
                "cache": deployment.cache,
                "log": {"sample_rate": deployment.log_sample_rate, "pii": _pii_columns(deployment.model)},
                "routes": routes,
            }
        )
    return {"revision": revision, "published_at": at.isoformat(), "deployments": documents}


def route_table_document() -> dict[str, Any] | None:
    """The route table in force (the newest publication), for the gateway."""
    latest = RouteTablePublication.objects.order_by("-id").values_list("document", flat=True).first()
    return latest
