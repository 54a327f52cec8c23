"""Celery entry points of the deployment stage: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from lifecycle.deployments.services import deployments_reconcile


@shared_task(name="lifecycle.reconcile_deployments", ignore_result=True)
def reconcile_deployments() -> dict[str, int]:
    """Keep each deployment's replicas as its routes need them (periodic, from the beat)."""
    return deployments_reconcile()
