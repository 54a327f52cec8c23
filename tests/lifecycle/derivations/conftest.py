"""Fixtures of the update stage's tests: real job workers (see ``tests/lifecycle/workers.py``)."""

from tests.lifecycle.workers import broker, start_workers  # noqa: F401
