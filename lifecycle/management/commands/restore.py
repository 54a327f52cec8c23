"""``manage.py restore SRC``: bring a backup back into an empty installation."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from lifecycle.backup.services import BackupError, backup_restore
from registry.errors import DependencyUnavailable


class Command(BaseCommand):
    help = (
        "Restore a backup written by `backup` into this installation, which must be empty "
        "(no rows in the database, no models in MLflow's registry)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", type=Path)
        parser.add_argument(
            "--workers", type=int, default=8, help="artifacts uploaded, and models restored in MLflow, side by side"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = backup_restore(source=options["source"].resolve(), workers=options["workers"])
        except (BackupError, DependencyUnavailable, DatabaseError) as exc:
            raise CommandError(f"restore refused: {exc}") from exc
        self.stdout.write(
            f"restored {report.rows} rows, {report.versions} versions ({report.artifacts} artifacts) and "
            f"{report.registered_models} registered models in {report.seconds:.1f}s"
        )
