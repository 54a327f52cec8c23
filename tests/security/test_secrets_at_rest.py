"""Webhook secrets are stored encrypted with the platform's keys, rotate to a new key,
and survive a serialized dump only as ciphertext."""

from __future__ import annotations

import importlib

import pytest
from cryptography.fernet import Fernet
from django.core import serializers
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from config import env
from config.encryption import PREFIX, SecretDecryptionError, derived_key, is_encrypted
from lifecycle.governance.models import Webhook
from lifecycle.governance.services.webhooks import webhook_create
from registry.models import Team

PLAINTEXT = "webhook-signing-secret-0123456789abcdef"


def stored_secret(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM lifecycle_webhook WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def subscribe(fraud_admin, secret: str = PLAINTEXT) -> Webhook:
    return webhook_create(
        actor=fraud_admin.user, team=Team.objects.get(name="fraud"), url="http://127.0.0.1:9/hook", secret=secret
    )


def fernet_open(key: bytes, stored: str) -> str:
    return Fernet(key).decrypt(stored[len(PREFIX) :].encode()).decode()


def test_a_webhook_secret_is_stored_as_ciphertext_and_read_as_plaintext(fraud_admin, settings):
    settings.MODELGATE_SECRET_KEYS = ()
    webhook = subscribe(fraud_admin)
    stored = stored_secret(webhook.pk)
    assert stored.startswith(PREFIX) and PLAINTEXT not in stored
    # With nothing configured the key derived from SECRET_KEY encrypts.
    assert fernet_open(derived_key(settings.SECRET_KEY), stored) == PLAINTEXT
    assert Webhook.objects.get(pk=webhook.pk).secret == PLAINTEXT


def test_each_write_encrypts_with_a_fresh_iv(fraud_admin):
    first, second = subscribe(fraud_admin), subscribe(fraud_admin)
    assert stored_secret(first.pk) != stored_secret(second.pk)


def test_rotation_re_encrypts_with_the_first_key_so_the_old_one_can_go(fraud_admin, settings, capsys):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    settings.MODELGATE_SECRET_KEYS = (old,)
    webhook = subscribe(fraud_admin)
    assert fernet_open(old, stored_secret(webhook.pk)) == PLAINTEXT

    settings.MODELGATE_SECRET_KEYS = (new, old)
    assert Webhook.objects.get(pk=webhook.pk).secret == PLAINTEXT, "older keys still decrypt"
    call_command("rotate_secrets")
    assert "1 of 1 stored credentials re-encrypted" in capsys.readouterr().out
    assert fernet_open(new, stored_secret(webhook.pk)) == PLAINTEXT

    settings.MODELGATE_SECRET_KEYS = (new,)
    assert Webhook.objects.get(pk=webhook.pk).secret == PLAINTEXT
    call_command("rotate_secrets")
    assert "0 of 1 stored credentials re-encrypted" in capsys.readouterr().out


def test_a_secret_no_key_decrypts_is_a_clear_error(fraud_admin, settings):
    settings.MODELGATE_SECRET_KEYS = (Fernet.generate_key(),)
    webhook = subscribe(fraud_admin)
    settings.MODELGATE_SECRET_KEYS = (Fernet.generate_key(),)
    settings.SECRET_KEY = "another-secret-key-of-another-installation-000000"
    with pytest.raises(SecretDecryptionError, match="MODELGATE_SECRET_KEYS"):
        Webhook.objects.get(pk=webhook.pk)
    with pytest.raises(Exception, match="cannot be decrypted"):
        call_command("rotate_secrets")


def test_rotation_and_the_migration_encrypt_secrets_left_in_plaintext(fraud_admin, settings):
    webhook, other = subscribe(fraud_admin), subscribe(fraud_admin, secret="another-plaintext-secret-xyz")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE lifecycle_webhook SET secret = %s WHERE id = %s", [PLAINTEXT, webhook.pk])
        cursor.execute(
            "UPDATE lifecycle_webhook SET secret = %s WHERE id = %s", ["another-plaintext-secret-xyz", other.pk]
        )
    assert Webhook.objects.get(pk=webhook.pk).secret == PLAINTEXT, "a plaintext row is still read"

    migration = importlib.import_module("lifecycle.migrations.0008_secbackup_webhook_secret_encrypted")
    migration.encrypt_plaintext(None, connection.schema_editor())
    assert is_encrypted(stored_secret(webhook.pk)) and is_encrypted(stored_secret(other.pk))
    assert Webhook.objects.get(pk=other.pk).secret == "another-plaintext-secret-xyz"

    migration.decrypt_to_plaintext(None, connection.schema_editor())
    assert stored_secret(webhook.pk) == PLAINTEXT
    call_command("rotate_secrets")
    assert is_encrypted(stored_secret(webhook.pk))
    assert Webhook.objects.get(pk=webhook.pk).secret == PLAINTEXT


def test_a_serialized_dump_holds_only_ciphertext_and_loads_back(fraud_admin):
    webhook = subscribe(fraud_admin)
    dump = serializers.serialize("json", Webhook.objects.filter(pk=webhook.pk))
    assert PLAINTEXT not in dump and PREFIX in dump
    Webhook.objects.filter(pk=webhook.pk).delete()
    for item in serializers.deserialize("json", dump):
        item.save()
    assert Webhook.objects.get(pk=webhook.pk).secret == PLAINTEXT


def test_malformed_keys_are_refused_at_start_up_without_echoing_them(monkeypatch):
    monkeypatch.setenv("MODELGATE_SECRET_KEYS", f"{Fernet.generate_key().decode()},not-a-key-but-a-secret")
    with pytest.raises(ImproperlyConfigured, match="key 2 is not a Fernet key") as caught:
        env.fernet_keys("MODELGATE_SECRET_KEYS")
    assert "not-a-key-but-a-secret" not in str(caught.value)


def test_keys_may_come_from_a_file(monkeypatch, tmp_path):
    first, second = Fernet.generate_key(), Fernet.generate_key()
    path = tmp_path / "keys"
    path.write_text(f"{first.decode()}, {second.decode()}\n")
    monkeypatch.delenv("MODELGATE_SECRET_KEYS", raising=False)
    monkeypatch.setenv("MODELGATE_SECRET_KEYS_FILE", str(path))
    assert env.fernet_keys("MODELGATE_SECRET_KEYS") == (first, second)
