"""Celery entry points of governance: thin, each calls one service."""

from __future__ import annotations

from celery import shared_task

from lifecycle.governance.services.outbox import outbox_relay


@shared_task(name="lifecycle.relay_outbox", ignore_result=True)
def relay_outbox() -> dict[str, int]:
    """Deliver due outbox rows (kicked after each commit, and scheduled in settings)."""
    report = outbox_relay()
    return {"aliases": report.aliases, "delivered": report.delivered, "failed": report.failed, "dead": report.dead}
