"""``manage.py verify``: every artifact against its digest and the audit chain, of this
installation or (``--backup SRC``) of a backup; exit 1 on any problem."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from lifecycle.backup.services import BackupError, backup_verify, installation_verify


class Command(BaseCommand):
    help = "Check every version's artifact against its recorded digest and the audit hash chain."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backup", type=Path, help="check this backup directory instead of the installation")
        parser.add_argument("--workers", type=int, default=8, help="artifacts read side by side")

    def handle(self, *args: Any, **options: Any) -> None:
        what = f"backup {options['backup']}" if options["backup"] else "installation"
        try:
            workers = options["workers"]
            report = (
                backup_verify(source=options["backup"], workers=workers)
                if options["backup"]
                else installation_verify(workers=workers)
            )
        except (BackupError, DatabaseError) as exc:
            raise CommandError(str(exc)) from exc
        for problem in report.problems:
            self.stderr.write(problem)
        chain = (
            f"audit chain valid ({report.audit.records} records)"
            if report.audit.valid
            else f"audit chain broken at record {report.audit.first_bad}: {report.audit.problem}"
        )
        summary = f"{what}: {report.artifacts_checked} artifacts checked, {len(report.problems)} problems; {chain}"
        if not report.valid:
            raise CommandError(summary)
        self.stdout.write(summary)
