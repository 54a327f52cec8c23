"""The monitoring part of ``manage.py demo_loop``: monitors join the demo model's policy,
the deployed model gets a stream of the bundled data through the serving gateway, then a
stream with every feature scaled by 1.5, and the monitoring pass (the one the worker runs
every ``MODELGATE_MONITOR_SECONDS``) stores the windows, fires the drift alerts and runs
their actions: the canary is aborted, production is retrained."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from lifecycle.deployments.models import Deployment
from lifecycle.monitoring.models import Alert, MonitorWindow
from lifecycle.monitoring.services.runs import monitoring_pass
from registry.models import RegisteredModel
from registry.services import model_update

DEMO_MONITORS = [
    {"type": "drift", "features": "*", "statistic": "psi", "windows": 2, "min_rows": 50, "action": "retrain"},
    {"type": "error_rate", "op": ">", "value": 0.05, "windows": 2},
]
ROWS_PER_CALL = 25
WINDOWS_PER_PHASE = 2


def _until_next_window(step: float) -> None:
    time.sleep(step - time.time() % step + 0.2)


def _stream(*, url: str, token: str, scale: float, seconds: float, tag: str) -> dict[str, int]:
    """Calls of ROWS_PER_CALL rows of the bundled data (features times ``scale``) until
    ``seconds`` have passed; rows answered per version."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]) * scale
    served: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    call = 0
    while time.monotonic() < deadline:
        rows = frame.sample(ROWS_PER_CALL, random_state=call, replace=True)
        response = requests.post(
            url,
            json={"dataframe_split": rows.to_dict(orient="split")},
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": f"demo-{tag}-{call}"},
            timeout=10,
        )
        response.raise_for_status()
        version = response.headers.get("X-ModelGate-Version", "?")
        served[version] = served.get(version, 0) + ROWS_PER_CALL
        call += 1
        # Leave the two shared cores some room: a steady trickle is enough for a window.
        time.sleep(0.05)
    return served


def _stored(model: RegisteredModel, say: Callable[[str], None]) -> None:
    # The worker's periodic pass may have stored the windows first: what counts is what is there.
    windows = MonitorWindow.objects.filter(model=model).exclude(rows=0).count()
    alerts = Alert.objects.filter(model=model).count()
    say(f"monitoring: {windows} windows with traffic stored so far, {alerts} alert{'s' if alerts != 1 else ''}")


def _alerts_said(model: RegisteredModel, say: Callable[[str], None]) -> None:
    for alert in Alert.objects.filter(model=model).select_related("version").order_by("id"):
        result = alert.action_result or {}
        outcome = (
            f"production back to v{result['to_version']}"
            if "to_version" in result
            else f"retrain job {result['job']}"
            if "job" in result
            else "canary aborted"
            if "deployment" in result
            else result.get("error", "")
        )
        say(f"  alert #{alert.pk} on v{alert.version.version} ({alert.status}): {alert.detail}")
        say(f"    action {alert.action}: {alert.action_state}{' — ' + outcome if outcome else ''}")


def monitoring_demo(
    *,
    model: RegisteredModel,
    deployment: Deployment,
    approver: AbstractBaseUser,
    gateway: str,
    token: str,
    say: Callable[[str], Any],
) -> None:
    """Add monitors, stream unshifted then shifted data, and show the alerts and actions."""
    step = float(settings.MODELGATE_MONITOR_WINDOW_SECONDS)
    model.refresh_from_db()
    model_update(
        actor=approver,
        model=model,
        changes={"policy": {**(model.policy or {}), "monitors": DEMO_MONITORS}},
        reason="demo: watch drift and errors",
    )
    say(
        f"bob adds monitors to the policy: drift (PSI > 0.2 on any feature in {DEMO_MONITORS[0]['windows']} "
        f"windows in a row → retrain) and error rate (> 5%); windows are {step:g} s here"
    )
    url = f"{gateway}/serve/{model.name}/invocations"
    flush = float(settings.MODELGATE_PREDICTION_LOG_FLUSH_SECONDS) + 2
    _until_next_window(step)
    served = _stream(url=url, token=token, scale=1.0, seconds=WINDOWS_PER_PHASE * step, tag="plain")
    say("an unshifted stream: " + ", ".join(f"v{v}: {n} rows" for v, n in sorted(served.items())))
    time.sleep(flush)
    monitoring_pass()
    _stored(model, say)
    _until_next_window(step)
    served = _stream(url=url, token=token, scale=1.5, seconds=WINDOWS_PER_PHASE * step, tag="shifted")
    say("a shifted stream (every feature × 1.5): " + ", ".join(f"v{v}: {n} rows" for v, n in sorted(served.items())))
    time.sleep(flush)
    monitoring_pass()
    _stored(model, say)
    _alerts_said(model, say)
    say(
        "see them at /models/breast-cancer-classifier/monitoring/ (acknowledge or resolve as bob), "
        "in the audit trail (/audit/) and on /metrics"
    )
