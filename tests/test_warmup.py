"""A server process does its one-time work when it starts, without touching the network."""

from __future__ import annotations

import gc
import socket

import pytest

from config.warmup import warm_up


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_warm_up_needs_no_reachable_dependency_and_freezes_the_start_up_heap(settings, unfrozen):
    # Nothing listens on either port: warming up must not try to connect.
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{_closed_port()}"
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{_closed_port()}"
    settings.MODELGATE_ARTIFACT_ROOT = "s3://modelgate/artifacts"

    warm_up()

    assert gc.get_freeze_count() > 0
