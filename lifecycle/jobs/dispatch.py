"""How jobs reach workers: each worker consumes its own queue and its pool's, and the
service tells a worker to run an attempt, or asks for a scheduling pass, by task name.

A send the broker refuses is logged, never raised: the periodic pass and the reaper
send again once the broker is back.
"""

from __future__ import annotations

import logging
from typing import Any

from lifecycle.enqueue import task_enqueue

logger = logging.getLogger(__name__)


def worker_queue(name: str) -> str:
    """The queue only the named worker consumes."""
    return f"worker.{name}"


def pool_queue(pool: str) -> str:
    """The queue every worker of the pool consumes."""
    return f"pool.{pool}"


def scheduler_kick() -> None:
    """Ask a worker for a scheduling pass now."""
    try:
        task_enqueue("lifecycle.schedule_jobs")
    except Exception as exc:  # the periodic pass places the job if the broker is down now
        logger.warning("could not enqueue a scheduling pass (it runs periodically anyway): %s", exc)


def job_dispatch(job_id: int, attempt: int, nodes: list[dict[str, Any]], queues: dict[str, str]) -> None:
    """Send each node of an attempt to its worker's queue (after commit, by the caller)."""
    for node in nodes:
        try:
            task_enqueue("lifecycle.run_job", args=[job_id, attempt, node["rank"]], queue=queues[node["worker"]])
        except Exception as exc:  # the reaper dispatches again when the broker is back
            logger.warning("dispatch of job %s to %s failed: %s", job_id, node["worker"], exc)
