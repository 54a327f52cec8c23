"""Credentials stored encrypted at rest: a keyring of Fernet keys and a model field.

The keys come from ``MODELGATE_SECRET_KEYS`` (or ``MODELGATE_SECRET_KEYS_FILE``):
comma-separated Fernet keys, the first of which encrypts while every one decrypts, so a
key is rotated by putting the new one first, running ``manage.py rotate_secrets`` and
then dropping the old one. A key derived from ``SECRET_KEY`` is always the last key of
the ring: with nothing configured it is the only one (the embedded default works as
is), and an installation that starts setting ``MODELGATE_SECRET_KEYS`` still reads what
was written before.

A stored value is ``enc:v1:<Fernet token>``. A value without the prefix is a plaintext
left from before encryption: it is read as it is and encrypted by the next write (the
migration that introduced the field and ``rotate_secrets`` rewrite every such row).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction

PREFIX = "enc:v1:"
# Label of the key derived from SECRET_KEY: another use of SECRET_KEY never yields it.
_DERIVATION_LABEL = b"modelgate.secret-keys.v1"


class SecretDecryptionError(ImproperlyConfigured):
    """A stored value that none of the configured keys decrypts (a key was dropped too
    early, or the database came from an installation with other keys)."""


def derived_key(secret_key: str) -> bytes:
    """The Fernet key derived from ``SECRET_KEY`` (HMAC-SHA256 under a fixed label)."""
    digest = hmac.new(secret_key.encode(), _DERIVATION_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest)


@dataclass(frozen=True)
class Keyring:
    """The keys in order: ``keys[0]`` encrypts, all of them decrypt."""

    keys: tuple[bytes, ...]

    @property
    def fernet(self) -> MultiFernet:
        return _multi(self.keys)

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self.fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not is_encrypted(stored):
            return stored
        try:
            return self.fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretDecryptionError(
                "a stored credential cannot be decrypted with any key of MODELGATE_SECRET_KEYS "
                "(or the key derived from SECRET_KEY); restore the key that encrypted it"
            ) from exc

    def is_current(self, stored: str) -> bool:
        """Encrypted with the first key (nothing for ``rotate_secrets`` to do)."""
        if not is_encrypted(stored):
            return False
        try:
            Fernet(self.keys[0]).decrypt(stored[len(PREFIX) :].encode())
        except InvalidToken:
            return False
        return True


@lru_cache(maxsize=8)
def _multi(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def keyring() -> Keyring:
    """The keyring of the current settings (read on every call: tests change settings)."""
    configured = tuple(dict.fromkeys(getattr(settings, "MODELGATE_SECRET_KEYS", ()) or ()))
    derived = derived_key(settings.SECRET_KEY)
    return Keyring(configured if derived in configured else (*configured, derived))


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext)


def decrypt(stored: str) -> str:
    return keyring().decrypt(stored)


class EncryptedTextField(models.TextField):
    """A text column holding a credential: Python sees the plaintext, the database (and
    a serialized dump of it) only ``enc:v1:`` ciphertext. Not searchable: each write
    encrypts with a fresh random IV."""

    description = "Text encrypted at rest with the platform's Fernet keys"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return None if value is None else decrypt(value)

    def to_python(self, value: Any) -> str | None:
        # Deserializing a dump (``value_to_string`` below) gives ciphertext.
        if value is None:
            return None
        return decrypt(str(value))

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None or is_encrypted(value):
            return value
        return encrypt(value)

    def value_to_string(self, obj: models.Model) -> str:
        value = self.value_from_object(obj)
        return "" if value is None else self.get_prep_value(value)


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """``(model, column attribute)`` of every encrypted field of the installed apps."""
    from django.apps import apps

    return [
        (model, field.attname)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField)
    ]


@dataclass
class RotationReport:
    rows: int = 0
    rewritten: int = 0
    plaintext: int = 0


def secrets_rotate(*, batch: int = 500) -> RotationReport:
    """Re-encrypt every stored credential with the first key (and encrypt any left in
    plaintext). Rows already under the first key are left alone, so a rerun after an
    interruption continues where it stopped."""
    from django.db import connection

    ring = keyring()
    report = RotationReport()
    for model, column in encrypted_fields():
        table = connection.ops.quote_name(model._meta.db_table)
        name = connection.ops.quote_name(model._meta.get_field(column).column)
        pk = connection.ops.quote_name(model._meta.pk.column)
        last = None
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                where, params = (f"WHERE {pk} > %s", [last]) if last is not None else ("", [])
                cursor.execute(f"SELECT {pk}, {name} FROM {table} {where} ORDER BY {pk} LIMIT %s", [*params, batch])
                rows = cursor.fetchall()
                for key, stored in rows:
                    report.rows += 1
                    if stored is None or ring.is_current(stored):
                        continue
                    report.plaintext += not is_encrypted(stored)
                    cursor.execute(
                        f"UPDATE {table} SET {name} = %s WHERE {pk} = %s", [ring.encrypt(ring.decrypt(stored)), key]
                    )
                    report.rewritten += 1
            if len(rows) < batch:
                break
            last = rows[-1][0]
    return report
