"""What a job worker does besides running tasks: register its inventory when it is
ready, heartbeat from a background thread, and say goodbye when it shuts down.

Only a worker started with ``MODELGATE_WORKER_NAME`` (``manage.py job_worker``) is a job
worker; the embedded worker of ``make run`` registers as ``embedded`` with the host's
inventory.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)
_stop = threading.Event()


def _name() -> str | None:
    return os.environ.get("MODELGATE_WORKER_NAME") or None


def _heartbeat_loop(name: str, interval: float) -> None:
    from lifecycle.jobs.services import worker_heartbeat

    while not _stop.wait(interval):
        try:
            close_old_connections()
            worker_heartbeat(name=name)
        except Exception as exc:  # a database blip: try again next beat
            logger.warning("heartbeat of %s failed: %s", name, exc)


@worker_ready.connect
def _register(sender: Any = None, **_: Any) -> None:
    name = _name()
    if name is None:
        return
    from lifecycle.jobs import inventory
    from lifecycle.jobs.services import worker_register

    found = inventory.detect()
    worker_register(
        name=name,
        pool=os.environ.get("MODELGATE_WORKER_POOL", "default"),
        inventory=found,
        slots=int(os.environ.get("MODELGATE_WORKER_SLOTS", "4")),
        address=os.environ.get("MODELGATE_WORKER_ADDRESS", ""),
    )
    logger.info("registered worker %s: %d GPUs (%s)", name, len(found.gpus), found.source)
    threading.Thread(
        target=_heartbeat_loop, args=(name, settings.MODELGATE_WORKER_HEARTBEAT_SECONDS), daemon=True, name="heartbeat"
    ).start()


@worker_shutting_down.connect
def _goodbye(sig: Any = None, how: Any = None, exitcode: Any = None, **_: Any) -> None:
    name = _name()
    if name is None:
        return
    _stop.set()
    from lifecycle.jobs.choices import WorkerState
    from lifecycle.jobs.services import worker_set_state

    try:
        close_old_connections()
        worker_set_state(name=name, state=WorkerState.DRAINING)
    except Exception as exc:  # shutting down anyway; the reaper marks it offline
        logger.warning("could not mark %s draining: %s", name, exc)
