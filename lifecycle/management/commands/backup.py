"""``manage.py backup DEST``: a consistent snapshot of the database, the artifacts and
MLflow's registry (lifecycle/backup/services.py)."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from lifecycle.backup.services import BackupError, backup_write
from registry.errors import ArtifactIntegrityError, DependencyUnavailable, NotFound


class Command(BaseCommand):
    help = "Write a backup (database, artifacts with digests, MLflow registry) into DEST, a new or empty directory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", type=Path)
        parser.add_argument("--workers", type=int, default=8, help="artifacts copied side by side")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = backup_write(destination=options["destination"].resolve(), workers=options["workers"])
        except (BackupError, ArtifactIntegrityError, DependencyUnavailable, NotFound, DatabaseError) as exc:
            raise CommandError(f"backup failed: {exc}") from exc
        self.stdout.write(
            f"backup written to {report.path}: {report.rows} rows ({report.database_bytes} bytes), "
            f"{report.versions} versions with {report.artifacts} distinct artifacts ({report.artifact_bytes} bytes), "
            f"{report.total_bytes} bytes in all, in {report.seconds:.1f}s"
        )
