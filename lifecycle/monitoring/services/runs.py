"""One monitoring pass, what the periodic task runs: every served version's ended
windows stored, its monitors judged, and the actions of new alerts run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from lifecycle.monitoring.choices import ActionState
from lifecycle.monitoring.models import Alert
from lifecycle.monitoring.services.actions import alert_action_run
from lifecycle.monitoring.services.alerts import monitors_evaluate
from lifecycle.monitoring.services.windows import monitored_routes, route_windows_compute
from registry.errors import DomainError

log = logging.getLogger(__name__)


@dataclass
class MonitoringReport:
    windows: int = 0
    alerts: list[int] = field(default_factory=list)
    actions: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def monitoring_pass(*, now: datetime | None = None) -> MonitoringReport:
    """Store the due windows of every primary and canary route, judge the monitors of
    each route that has new windows, then run every pending alert action once."""
    now = now or timezone.now()
    report = MonitoringReport()
    for route in monitored_routes():
        try:
            stored = route_windows_compute(route=route, now=now)
        except DomainError as exc:
            # The prediction log's store unreachable, a dataset changed: the next pass retries.
            report.problems.append(f"{route.deployment} v{route.version.version}: {exc}")
            log.warning("monitoring %s v%s: %s", route.deployment, route.version.version, exc)
            continue
        report.windows += len(stored)
        if stored:
            opened = monitors_evaluate(version=route.version, deployment=route.deployment)
            report.alerts.extend(alert.pk for alert in opened)
    for alert in Alert.objects.filter(action_state=ActionState.PENDING).order_by("fired_at", "id"):
        report.actions[alert.pk] = alert_action_run(alert=alert).action_state
    return report
