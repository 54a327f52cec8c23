"""Tokens at the gateway, checked by the registry itself (``api_token_authenticate`` on
the test database) in front of a real MLflow scoring server: a ``serve`` token is
answered, a token without the scope is refused with 403, a missing, unknown or revoked
token with 401. (A checked token outliving a database outage: test_token_cache.py.)"""

from __future__ import annotations

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from registry.choices import TokenScope
from registry.models import ApiToken
from registry.services import api_token_issue
from serving.database import database_authenticator
from serving.settings import GatewaySettings
from tests.serving.conftest import SETOSA, route, split_payload, table

pytestmark = [
    pytest.mark.services,
    pytest.mark.postgres,
    pytest.mark.xdist_group("serving-replicas"),
    # The gateway checks tokens on a thread of its own: it must see committed rows.
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def tokens():
    user = get_user_model().objects.create_user(username="scoring-client", password="pw-scoring-client-123!")
    _, serve = api_token_issue(user=user, name="serve", scopes=[TokenScope.SERVE])
    _, read_write = api_token_issue(user=user, name="api", scopes=[TokenScope.READ, TokenScope.WRITE])
    revoked_token, revoked = api_token_issue(user=user, name="revoked", scopes=[TokenScope.SERVE])
    ApiToken.objects.filter(pk=revoked_token.pk).update(revoked_at=timezone.now())
    return {"serve": serve, "read_write": read_write, "revoked": revoked}


@pytest.fixture
def gateway(replicas, gateway_factory):
    return gateway_factory(
        table(1, route(1, 1.0, "primary", [replicas["v1a"]], replicas.signature)),
        authenticator=database_authenticator(),
        settings=GatewaySettings(refresh_seconds=0.2, token_ttl_seconds=30),
    )


def call(gateway, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(gateway.invocations(), json=split_payload([SETOSA]), headers=headers, timeout=30)


def test_a_serve_token_gets_a_prediction(tokens, gateway):
    answer = call(gateway, tokens["serve"])
    assert answer.status_code == 200
    assert answer.json() == {"predictions": [0]}
    assert ApiToken.objects.get(name="serve").last_used_at is not None


def test_a_token_without_the_serve_scope_is_forbidden(tokens, gateway):
    answer = call(gateway, tokens["read_write"])
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"
    assert answer.json()["error"]["message"] == "this token lacks the 'serve' scope"


def test_no_token_an_unknown_one_or_a_revoked_one_is_unauthenticated(tokens, gateway):
    missing = call(gateway, None)
    unknown = call(gateway, "mg_000000000000_not-a-real-token")
    revoked = call(gateway, tokens["revoked"])
    for answer in (missing, unknown, revoked):
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert unknown.json()["error"]["message"] == "invalid token"
    assert revoked.json()["error"]["message"] == "token revoked"


def test_a_checked_token_is_not_checked_again_within_its_ttl(tokens, gateway):
    for _ in range(5):
        assert call(gateway, tokens["serve"]).status_code == 200
    assert gateway.gateway.tokens.checks == 1
