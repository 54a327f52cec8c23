"""Celery entry points of monitoring: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from lifecycle.monitoring.services.references import reference_profile_on_dataset
from lifecycle.monitoring.services.runs import monitoring_pass
from lifecycle.monitoring.services.upkeep import prediction_log_upkeep


@shared_task(name="lifecycle.monitor_deployments", ignore_result=True)
def monitor_deployments() -> dict[str, object]:
    """Store ended windows, judge monitors, run alert actions (scheduled in settings)."""
    report = monitoring_pass()
    return {
        "windows": report.windows,
        "relabelled": report.relabelled,
        "alerts": report.alerts,
        "actions": report.actions,
        "problems": report.problems,
    }


@shared_task(name="lifecycle.reference_profile", ignore_result=True)
def reference_profile(dataset_id: int) -> None:
    """Profile a newly registered dataset, the reference its versions are monitored against."""
    reference_profile_on_dataset(dataset_id=dataset_id)


@shared_task(name="lifecycle.compact_prediction_log", ignore_result=True)
def compact_prediction_log() -> dict[str, int] | None:
    """Merge the prediction log's small files and apply its retention (scheduled in settings)."""
    report = prediction_log_upkeep()
    return None if report is None else dict(vars(report))
