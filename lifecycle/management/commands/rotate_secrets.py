"""``manage.py rotate_secrets``: re-encrypt every stored credential with the newest key."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.encryption import SecretDecryptionError, encrypted_fields, secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt stored credentials (webhook secrets) with the first key of MODELGATE_SECRET_KEYS, "
        "so that older keys can then be removed. Safe to rerun."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = secrets_rotate()
        except SecretDecryptionError as exc:
            raise CommandError(str(exc)) from exc
        columns = ", ".join(f"{model._meta.label}.{column}" for model, column in encrypted_fields())
        self.stdout.write(
            f"{report.rewritten} of {report.rows} stored credentials re-encrypted with the first key "
            f"({report.plaintext} were plaintext); columns: {columns}"
        )
