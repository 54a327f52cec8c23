"""``manage.py demo_loop``: the lifecycle loop on the seeded demo model, through the
platform's own jobs: train a first version, evaluate it, promote it (its gates pass and
the demo approver approves), then train a second one that is evaluated against it and
left waiting for approval with its gate results. Does nothing once the demo has run."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from lifecycle.governance.models import Transition
from lifecycle.governance.services.transitions import transition_approve
from lifecycle.training.services import training_submit
from registry.models import RegisteredModel

DEMO_MODEL = "breast-cancer-classifier"


class Command(BaseCommand):
    help = "Run the demo's train → evaluate → approve → promote loop (after seed_demo)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=600)

    def _wait_for_request(self, model: RegisteredModel, known: set[int], timeout: float) -> Transition:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = (
                Transition.objects.filter(model=model, to_stage="production", status__in=["pending", "blocked"])
                .exclude(pk__in=known)
                .select_related("version", "model", "model__team", "requested_by")
                .first()
            )
            if found is not None:
                return found
            time.sleep(1)
        raise CommandError("the demo's jobs did not finish in time; see the worker's log")

    def _say(self, transition: Transition) -> None:
        self.stdout.write(f"v{transition.version.version} → production: {transition.status}")
        for gate in transition.gates:
            self.stdout.write(f"  [{gate['status']}] {gate['rule']}: {gate['detail']}")

    def handle(self, *args: Any, **options: Any) -> None:
        model = RegisteredModel.objects.select_related("team", "dataset").filter(name=DEMO_MODEL).first()
        if model is None:
            raise CommandError("run seed_demo first")
        if model.versions.exists():
            self.stdout.write("the demo loop has already run")
            return
        users = get_user_model().objects
        alice, bob = users.get(username="alice"), users.get(username="bob")
        training_submit(
            actor=alice,
            model=model,
            estimator="LogisticRegression",
            estimator_params={"C": 1.0, "max_iter": 2000},
            request_stage="production",
        )
        self.stdout.write("training v1 (logistic regression) on the local worker…")
        first = self._wait_for_request(model, set(), options["timeout"])
        self._say(first)
        if first.status == "pending":
            first = transition_approve(transition=first, actor=bob, comment="demo: gates passed, approved")
            self.stdout.write(
                f"bob approved: v{first.version.version} is {first.version.stage if first.status != 'applied' else 'in production'}"
            )
        training_submit(
            actor=alice,
            model=model,
            estimator="RandomForestClassifier",
            estimator_params={"n_estimators": 100, "random_state": 0},
            request_stage="production",
        )
        self.stdout.write("training v2 (random forest) and evaluating it against the champion…")
        second = self._wait_for_request(model, {first.pk}, options["timeout"])
        self._say(second)
        self.stdout.write("open the approvals inbox to decide on it")
