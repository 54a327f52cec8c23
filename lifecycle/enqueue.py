"""Enqueue a Celery task by its registered name.

Services sit below the task modules that call them, so they never import a task to send
it: they name it. Celery finds the task modules through ``CELERY_IMPORTS`` in settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import current_app


def task_enqueue(name: str, *, args: Sequence[Any] = (), queue: str | None = None) -> None:
    """Send task ``name`` to the broker (to ``queue`` when given), or run it inline when
    ``CELERY_TASK_ALWAYS_EAGER`` is set. Broker errors propagate to the caller."""
    app = current_app
    if app.conf.task_always_eager:
        app.loader.import_default_modules()
        app.tasks[name].apply(args=list(args))
        return
    app.send_task(name, args=list(args), **({"queue": queue} if queue else {}))
