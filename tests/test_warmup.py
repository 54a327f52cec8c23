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


def test_modules_mlflow_probes_for_are_remembered_as_absent_and_still_fail_to_import(monkeypatch):
    import importlib
    import sys

    from config.warmup import absent_modules_remembered

    monkeypatch.delitem(sys.modules, "modelgate_not_installed", raising=False)
    monkeypatch.delitem(sys.modules, "json", raising=False)

    marked = absent_modules_remembered(("modelgate_not_installed", "json"))

    assert marked == ["modelgate_not_installed"]  # json is installed: left alone
    assert sys.modules["modelgate_not_installed"] is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("modelgate_not_installed")
    assert importlib.import_module("json").dumps([]) == "[]"
    monkeypatch.delitem(sys.modules, "modelgate_not_installed")
