"""API tokens are stored hashed: the plaintext is shown once and is nowhere in the database."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection

from registry.errors import Forbidden
from registry.models import ApiToken
from registry.services import api_token_authenticate, api_token_issue

pytestmark = pytest.mark.django_db


def test_a_token_is_stored_as_its_sha256_and_its_plaintext_is_nowhere_in_the_table(owner):
    token, plaintext = api_token_issue(user=owner.user, name="ci")

    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")
        rows = cursor.fetchall()
    assert rows and not any(plaintext in str(value) for row in rows for value in row)
    secret_part = plaintext.rsplit("_", 1)[1]
    assert not any(secret_part in str(value) for row in rows for value in row)


def test_the_hash_authenticates_the_plaintext_and_nothing_else(owner):
    token, plaintext = api_token_issue(user=owner.user)

    assert api_token_authenticate(plaintext).pk == token.pk
    with pytest.raises(Forbidden, match="invalid token"):
        api_token_authenticate(ApiToken.objects.get(pk=token.pk).token_hash)
