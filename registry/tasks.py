"""Celery entry points of the registry: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from registry.idempotency import idempotency_purge
from registry.services.sync import mlflow_sync


@shared_task(name="registry.sync_mlflow", acks_late=True, autoretry_for=(), ignore_result=True)
def sync_mlflow() -> dict[str, object]:
    """Bring in versions registered straight into MLflow (scheduled in settings)."""
    report = mlflow_sync()
    return {"models": report.models, "imported": report.imported, "failed": report.failed}


@shared_task(name="registry.purge_idempotency_keys", ignore_result=True)
def purge_idempotency_keys() -> int:
    return idempotency_purge()
