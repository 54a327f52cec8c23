"""The demo: ``seed_demo`` creates the demo model in design, and the demo loop's first
step writes its card and completes design, so training may start."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from lifecycle.management.commands.demo_loop import DEMO_MODEL, Command
from registry.models import RegisteredModel

pytestmark = pytest.mark.django_db


def test_the_seeded_demo_model_starts_in_design_and_the_loop_completes_it(settings):
    settings.MODELGATE_ENV = "development"
    call_command("seed_demo")
    model = RegisteredModel.objects.select_related("team", "dataset").get(name=DEMO_MODEL)
    assert model.stage == "design"
    policy_before = model.policy

    done = Command().design_complete(model, get_user_model().objects.get(username="alice"))
    assert done.stage == "active"
    assert done.design_card.revision == 1 and done.design_card.completed_revision == 1
    # The card's f1 target is the seeded policy's own threshold: it is not added twice.
    thresholds = [r for r in done.policy["rules"] if r["type"] == "metric_threshold"]
    assert thresholds == [r for r in policy_before["rules"] if r["type"] == "metric_threshold"]
