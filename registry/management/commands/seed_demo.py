"""``manage.py seed_demo``: a demo team, users, the bundled breast-cancer dataset and a
model with a promotion policy, in the design stage. Safe to run again. ``manage.py demo_loop`` then trains,
evaluates and promotes versions of it through the platform's own jobs."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.choices import ModelStage, Role, TokenScope
from registry.models import Dataset, RegisteredModel
from registry.services.datasets import dataset_create
from registry.services.models import model_create
from registry.services.teams import membership_set, team_ensure
from registry.services.tokens import api_token_issue

DEMO_TEAM = "demo"
DEMO_MODEL = "breast-cancer-classifier"
DEMO_USERS = {
    "admin": (Role.ADMIN, "modelgate-admin"),
    "alice": (Role.DEVELOPER, "modelgate-alice"),
    "bob": (Role.APPROVER, "modelgate-bob"),
}
DEMO_POLICY = {
    "rules": [
        {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.9, "stages": ["staging", "production"]},
        {"type": "beats_champion", "metric": "f1", "min_delta": 0.0, "stages": ["production"]},
        {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]},
    ]
}


class Command(BaseCommand):
    help = "Create the demo team, users, dataset and model with its policy (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--token-file", help="also write the admin's new API token to this file")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.MODELGATE_ENV == "production":
            raise CommandError("the demo has well-known passwords; it is not seeded when MODELGATE_ENV=production")
        team = team_ensure(name=DEMO_TEAM)
        users = {}
        for username, (role, password) in DEMO_USERS.items():
            user, created = get_user_model().objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.is_staff = username == "admin"
                user.is_superuser = username == "admin"
                user.save()
            membership_set(user=user, team=team, role=role)
            users[username] = user
        alice = users["alice"]
        dataset = Dataset.objects.filter(team=team, name="breast-cancer").first() or dataset_create(
            actor=alice, team=team, name="breast-cancer", uri="builtin:breast_cancer", target="target"
        )
        if not RegisteredModel.objects.filter(name=DEMO_MODEL).exists():
            model_create(
                actor=users["admin"],
                name=DEMO_MODEL,
                team=team,
                description="Flags malignant tumours from the Wisconsin breast-cancer measurements.",
                primary_metric="f1",
                policy=DEMO_POLICY,
                dataset=dataset.name,
                tags={"domain": "health", "owner": "alice"},
                # demo_loop writes its model card and completes design before training.
                stage=ModelStage.DESIGN,
            )
        # The demo's token also calls the serving gateway (``serve``).
        _, token = api_token_issue(
            user=users["admin"], name="demo", scopes=[TokenScope.READ, TokenScope.WRITE, TokenScope.SERVE]
        )
        if options.get("token_file"):
            path = options["token_file"]
            with open(path, "w") as handle:
                handle.write(token + "\n")
            os.chmod(path, 0o600)
        self.stdout.write("demo users: " + ", ".join(f"{u} / {p} ({r})" for u, (r, p) in DEMO_USERS.items()))
        self.stdout.write(token)
