"""Where a deployment's monitoring windows begin and end: their length (the deployment's
``monitor_every_minutes``, else ``MODELGATE_MONITOR_WINDOW_SECONDS``) and their alignment
on multiples of that length since the epoch, so that every worker agrees on where one
starts. The deployment stage owns these settings (set at creation, changed by
``deployment_settings_update``); the monitoring stage reads its windows by them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings

from lifecycle.deployments.models import Deployment


def window_step(deployment: Deployment | None = None) -> timedelta:
    """The length of a deployment's windows (its own, else the settings' default)."""
    if deployment is not None and deployment.monitor_every_minutes:
        return timedelta(minutes=deployment.monitor_every_minutes)
    return timedelta(seconds=settings.MODELGATE_MONITOR_WINDOW_SECONDS)


def window_floor(moment: datetime, step: timedelta) -> datetime:
    """The start of the aligned window holding ``moment``."""
    seconds = step.total_seconds()
    epoch = moment.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def window_next_end(deployment: Deployment, now: datetime) -> datetime:
    """When the deployment's window holding ``now`` ends: the moment its periodic pass is
    due next, once the windows ended by ``now`` are stored."""
    step = window_step(deployment)
    return window_floor(now, step) + step
