"""``manage.py job_worker --name NAME [--pool POOL] [--slots N] [--gpus SPEC] [--labels k=v,…]
[--cost-per-hour X] [--scheduler]``: start a Celery worker for jobs on this host.

It consumes its own queue (``worker.NAME``, so a job can be placed on this host) and its
pool's queue (``pool.POOL``), registers its inventory (NVML, ``nvidia-smi`` or ``--gpus``)
and heartbeats. ``--scheduler`` also lets it run the platform's scheduling, reaping and
relay tasks (the default queue). Environment variables of the same names
(``MODELGATE_WORKER_*``) work too.
"""

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lifecycle.jobs.dispatch import pool_queue, worker_queue
from lifecycle.jobs.inventory import parse_declared_gpus, parse_labels


class Command(BaseCommand):
    help = "Start a job worker (a Celery worker) on this host."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--name", default=os.environ.get("MODELGATE_WORKER_NAME"))
        parser.add_argument("--pool", default=os.environ.get("MODELGATE_WORKER_POOL", "default"))
        parser.add_argument("--slots", type=int, default=int(os.environ.get("MODELGATE_WORKER_SLOTS", "4")))
        parser.add_argument(
            "--gpus", default=os.environ.get("MODELGATE_WORKER_GPUS"), help="e.g. A100:40960,A100:40960"
        )
        parser.add_argument("--labels", default=os.environ.get("MODELGATE_WORKER_LABELS", ""), help="e.g. zone=eu")
        parser.add_argument("--cost-per-hour", default=os.environ.get("MODELGATE_WORKER_COST_PER_HOUR", "0"))
        parser.add_argument("--scheduler", action="store_true", help="also run scheduling, reaping and relays")
        parser.add_argument(
            "--beat", metavar="SCHEDULE_FILE", help="also run the periodic scheduler (one per platform)"
        )
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if not name:
            raise CommandError("give --name (or MODELGATE_WORKER_NAME)")
        try:
            if options["gpus"] is not None:
                parse_declared_gpus(options["gpus"])
            parse_labels(options["labels"])
            float(options["cost_per_hour"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["slots"] < 1:
            raise CommandError("--slots must be at least 1")
        env = {
            **os.environ,
            "MODELGATE_WORKER_NAME": name,
            "MODELGATE_WORKER_POOL": options["pool"],
            "MODELGATE_WORKER_SLOTS": str(options["slots"]),
            "MODELGATE_WORKER_LABELS": options["labels"],
            "MODELGATE_WORKER_COST_PER_HOUR": str(options["cost_per_hour"]),
        }
        if options["gpus"] is not None:
            env["MODELGATE_WORKER_GPUS"] = options["gpus"]
        queues = [worker_queue(name), pool_queue(options["pool"])]
        if options["scheduler"]:
            queues.append("modelgate")
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(options["slots"] + (2 if options["scheduler"] else 0)),
            "--queues",
            ",".join(queues),
            "--hostname",
            f"{name}@%h",
            "--prefetch-multiplier",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            options["loglevel"],
        ]
        if options["beat"]:
            argv += ["--beat", "--schedule", options["beat"]]
        os.execvpe(argv[0], argv, env)
