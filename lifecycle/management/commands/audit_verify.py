"""``manage.py audit_verify``: check the audit hash chain; exit 1 when it is broken."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lifecycle.governance.services.audit import audit_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain and name the first record that does not fit."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_verify()
        if not report.valid:
            raise CommandError(
                f"audit chain broken at record {report.first_bad}: {report.problem} ({report.records} records)"
            )
        self.stdout.write(f"audit chain valid: {report.records} records")
