"""Celery entry points of the training and update stage: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from lifecycle.training.services import retrains_due


@shared_task(name="lifecycle.retrain_due", ignore_result=True)
def retrain_due() -> list[int]:
    """Start the scheduled retrains that are due (every minute, from the beat)."""
    return retrains_due()
