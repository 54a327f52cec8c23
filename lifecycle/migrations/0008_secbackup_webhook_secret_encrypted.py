"""Webhook secrets encrypted at rest: the column becomes an encrypted text field and
every secret stored in plaintext until now is encrypted with the first key."""

from django.db import migrations

import config.encryption


def _rewrite(schema_editor, transform) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, secret FROM lifecycle_webhook")
        for pk, stored in cursor.fetchall():
            new = transform(stored)
            if new != stored:
                cursor.execute("UPDATE lifecycle_webhook SET secret = %s WHERE id = %s", [new, pk])


def encrypt_plaintext(apps, schema_editor) -> None:
    ring = config.encryption.keyring()
    _rewrite(schema_editor, lambda stored: stored if config.encryption.is_encrypted(stored) else ring.encrypt(stored))


def decrypt_to_plaintext(apps, schema_editor) -> None:
    ring = config.encryption.keyring()
    _rewrite(schema_editor, ring.decrypt)


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0007_merge_design_update_monitoring"),
    ]

    operations = [
        migrations.AlterField(
            model_name="webhook",
            name="secret",
            field=config.encryption.EncryptedTextField(),
        ),
        migrations.RunPython(encrypt_plaintext, decrypt_to_plaintext),
    ]
