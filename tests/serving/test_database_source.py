"""The gateway reading the route table the control plane publishes, from the database
(``database_source`` over ``route_table_document()``), in front of real MLflow scoring
servers: the newest publication is served, and a new one reaches callers within the
refresh period."""

from __future__ import annotations

import time

import httpx
import pytest

from lifecycle.deployments.models import RouteTablePublication
from serving.database import database_source
from serving.settings import GatewaySettings
from tests.serving.conftest import (
    SERVE_TOKEN,
    V1_ANSWER_FOR_VIRGINICA,
    V2_ANSWER_FOR_VIRGINICA,
    VIRGINICA,
    route,
    split_payload,
    table,
)

pytestmark = [
    pytest.mark.services,
    pytest.mark.postgres,
    # The gateway reads on a thread of its own: it must see committed rows.
    pytest.mark.django_db(transaction=True),
]


def publish(*routes: dict) -> int:
    """A publication as the control plane makes one: its id is the revision."""
    publication = RouteTablePublication.objects.create(document={})
    publication.document = table(publication.pk, *routes)
    publication.save(update_fields=["document"])
    return publication.pk


def test_the_gateway_serves_the_newest_publication_and_follows_the_next(replicas, gateway_factory):
    v1a, v2 = replicas.require("v1a", "v2")
    first = publish(route(1, 1.0, "primary", [v1a], replicas.signature))
    server = gateway_factory(None, source=database_source(), settings=GatewaySettings(refresh_seconds=0.5))
    headers = {"Authorization": f"Bearer {SERVE_TOKEN}"}
    with httpx.Client(timeout=30, headers=headers) as client:
        answer = client.post(server.invocations(), json=split_payload([VIRGINICA]))
        assert answer.json() == {"predictions": [V1_ANSWER_FOR_VIRGINICA]}
        assert answer.headers["X-ModelGate-Route-Revision"] == str(first)

        second = publish(route(2, 1.0, "primary", [v2], replicas.signature))
        published = time.monotonic()
        while answer.headers["X-ModelGate-Route-Revision"] != str(second):
            assert time.monotonic() - published < 5, "the new publication was not followed within 5 s"
            time.sleep(0.05)
            answer = client.post(server.invocations(), json=split_payload([VIRGINICA]))
    assert answer.json() == {"predictions": [V2_ANSWER_FOR_VIRGINICA]}
    assert answer.headers["X-ModelGate-Version"] == "2"
    assert httpx.get(f"{server.url}/serve/-/health").json() == {"status": "ok", "revision": second, "deployments": 1}


def test_with_nothing_published_the_gateway_is_up_and_knows_no_model(gateway_factory):
    server = gateway_factory(None, source=database_source())
    assert httpx.get(f"{server.url}/serve/-/health").json() == {"status": "ok", "revision": 0, "deployments": 0}
    answer = httpx.post(
        server.invocations(), json=split_payload([VIRGINICA]), headers={"Authorization": f"Bearer {SERVE_TOKEN}"}
    )
    assert answer.status_code == 404
