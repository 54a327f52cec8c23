"""``manage.py version_documents_rebuild [MODEL ...]``: store every version's document.

Versions written before documents were stored (or changed around the services since)
are built on each read until their next write; this stores them all at once, in
batches, each in a transaction of its own. Safe to run at any time and any number of
times.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from registry.models import ModelVersion
from registry.services import version_documents_refresh

BATCH = 500


class Command(BaseCommand):
    help = "Store the rendered JSON document of every version (or of these models' versions)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("models", nargs="*", help="only the versions of these registered models")

    def handle(self, *args: Any, **options: Any) -> None:
        versions = ModelVersion.objects.order_by("pk")
        if options["models"]:
            versions = versions.filter(model__name__in=options["models"])
        pks = list(versions.values_list("pk", flat=True))
        for offset in range(0, len(pks), BATCH):
            with transaction.atomic():
                version_documents_refresh(versions=pks[offset : offset + BATCH])
        self.stdout.write(f"{len(pks)} version documents stored")
