"""What a deployment's card shows, on the model page and on the deployment's own page:
its routes in serving order with their share of traffic, its replicas with their
health, its monitoring and logging settings, its latest revisions, and the forms the
user may use on it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from frontend import selectors as ui_selectors
from frontend.affordances import User, canary_versions, deployment_actions, shadow_versions
from lifecycle.deployments import selectors as deployment_selectors
from lifecycle.deployments.choices import REPLICA_FINAL_STATES, ReplicaState, RouteMode
from lifecycle.deployments.models import Deployment, Replica
from registry.models import RegisteredModel

# A replica's program checks its scoring server every couple of seconds and reports each
# check; one that has reported nothing for this long is flagged "silent" on the page.
REPLICA_SILENT_AFTER_SECONDS = 30.0
# Replicas that answer or should (a silent one among them is flagged).
_REPORTING_STATES = frozenset({ReplicaState.READY, ReplicaState.UNHEALTHY})
_MODE_ORDER = {RouteMode.PRIMARY: 0, RouteMode.CANARY: 1, RouteMode.SHADOW: 2}


def replica_silent(replica: Replica, *, now: datetime) -> bool:
    """A replica that should be reporting its health has not for too long."""
    if replica.state not in _REPORTING_STATES:
        return False
    stale_before = now - timedelta(seconds=REPLICA_SILENT_AFTER_SECONDS)
    return replica.last_heartbeat is None or replica.last_heartbeat < stale_before


def deployment_cards(
    user: User,
    model: RegisteredModel,
    deployments: Iterable[Deployment],
    *,
    revisions: int = 0,
    ended_replicas: bool = False,
) -> list[dict[str, Any]]:
    """One card per deployment of the model (from ``deployments_visible_to``, routes and
    replicas prefetched), in three queries however many there are.

    ``revisions``: how many of the latest revisions each card lists (none for 0);
    ``ended_replicas``: list stopped and failed replicas too (else they are counted)."""
    deployments = list(deployments)
    if not deployments:
        return []
    deployable = deployment_selectors.deployable_versions(model=model)
    # A canary whose version has an open production request is being promoted already.
    promotions = ui_selectors.open_promotions(user=user, model=model)
    latest = deployment_selectors.deployment_revisions_latest(deployments, limit=revisions) if revisions else {}
    now = timezone.now()
    cards = []
    for deployment in deployments:
        routes = sorted(deployment.routes.all(), key=lambda route: _MODE_ORDER.get(route.mode, 3))
        by_mode = {route.mode: route for route in routes}
        replicas = sorted(
            deployment.replica_set.all(), key=lambda r: (r.state in REPLICA_FINAL_STATES, r.version.version, r.pk)
        )
        shown = [r for r in replicas if ended_replicas or r.state not in REPLICA_FINAL_STATES]
        canary = by_mode.get(RouteMode.CANARY)
        cards.append(
            {
                "deployment": deployment,
                "routes": routes,
                "primary": by_mode.get(RouteMode.PRIMARY),
                "canary": canary,
                "shadow": by_mode.get(RouteMode.SHADOW),
                "replicas": [{"replica": r, "silent": replica_silent(r, now=now)} for r in shown],
                "ready_replicas": sum(1 for r in replicas if r.state == ReplicaState.READY),
                "ended_replicas": len(replicas) - len(shown),
                "revisions": latest.get(deployment.pk, []),
                "actions": deployment_actions(user, deployment),
                "canary_versions": canary_versions(deployment, deployable),
                "shadow_versions": shadow_versions(deployment, deployable),
                "promotion": promotions.get(canary.version_id) if canary is not None else None,
                "silent_after": REPLICA_SILENT_AFTER_SECONDS,
                "default_window_minutes": settings.MODELGATE_MONITOR_WINDOW_SECONDS / 60,
            }
        )
    return cards
