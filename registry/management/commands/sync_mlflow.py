"""``manage.py sync_mlflow [MODEL ...]``: import versions registered straight into MLflow."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from registry.services.sync import mlflow_sync


class Command(BaseCommand):
    help = "Bring versions registered directly in MLflow into ModelGate (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("models", nargs="*", help="only these registered models")

    def handle(self, *args: Any, **options: Any) -> None:
        report = mlflow_sync(model_names=options["models"] or None)
        for label in report.imported:
            self.stdout.write(f"imported {label}")
        for label, reason in report.failed.items():
            self.stderr.write(f"failed {label}: {reason}")
        self.stdout.write(
            f"{report.models} models checked, {len(report.imported)} versions imported, {len(report.failed)} failed"
        )
