"""One monitoring pass, what the periodic task runs: the ended windows of every served
version whose deployment is due stored, late labels folded into the windows they
belong to, the monitors judged again where a window changed, actions whose worker
stopped mid-way taken over, and the actions of new alerts run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from lifecycle.monitoring.choices import ActionState
from lifecycle.monitoring.models import Alert
from lifecycle.monitoring.services.actions import alert_action_run, alert_actions_reap
from lifecycle.monitoring.services.alerts import monitors_evaluate
from lifecycle.monitoring.services.windows import (
    deployment_computed,
    deployment_due,
    monitored_routes,
    route_windows_compute,
    route_windows_relabel,
)
from registry.errors import DomainError

log = logging.getLogger(__name__)


@dataclass
class MonitoringReport:
    windows: int = 0
    relabelled: int = 0
    deployments: list[int] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)
    actions: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def monitoring_pass(*, now: datetime | None = None) -> MonitoringReport:
    """Store the due windows of every primary and canary route of the deployments whose
    next window is due, compute again the windows that late labels reached, judge the
    monitors of each route with a new or changed window, take over the actions whose
    lease ran out, then run every pending alert action once."""
    now = now or timezone.now()
    report = MonitoringReport()
    failed: set[int] = set()
    computed: dict[int, object] = {}
    for route in monitored_routes():
        deployment = route.deployment
        due = deployment_due(deployment, now)
        try:
            stored = route_windows_compute(route=route, now=now) if due else []
            relabelled = route_windows_relabel(route=route, now=now)
        except DomainError as exc:
            # The prediction log's store unreachable, a dataset changed: the next pass retries.
            failed.add(deployment.pk)
            report.problems.append(f"{deployment} v{route.version.version}: {exc}")
            log.warning("monitoring %s v%s: %s", deployment, route.version.version, exc)
            continue
        if due:
            computed[deployment.pk] = deployment
        report.windows += len(stored)
        report.relabelled += len(relabelled)
        if stored or relabelled:
            opened = monitors_evaluate(version=route.version, deployment=deployment)
            report.alerts.extend(alert.pk for alert in opened)
    for pk, deployment in computed.items():
        if pk not in failed:
            deployment_computed(deployment=deployment, now=now)
            report.deployments.append(pk)
    report.actions.update(alert_actions_reap())
    for alert in Alert.objects.filter(action_state=ActionState.PENDING).order_by("fired_at", "id"):
        report.actions[alert.pk] = alert_action_run(alert=alert).action_state
    return report
