"""``manage.py seed_demo``: a demo team, users, dataset and a registered model trained on
scikit-learn's bundled breast-cancer data, logged to MLflow. Safe to run again."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.choices import Role
from registry.models import Dataset, RegisteredModel
from registry.services import (
    api_token_issue,
    dataset_create,
    membership_set,
    model_create,
    model_version_register,
    team_ensure,
)

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


def train_and_log(*, c: float, experiment: str) -> str:
    """Train a logistic regression on the bundled breast-cancer data; return the run id."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    mlflow.set_experiment(experiment)
    data = load_breast_cancer(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25, random_state=7)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x_train, y_train)
    predicted = model.predict(x_test)
    with mlflow.start_run(run_name=f"logreg-C{c}") as run:
        mlflow.log_params({"C": c, "estimator": "LogisticRegression"})
        mlflow.log_metrics({"f1": f1_score(y_test, predicted), "accuracy": accuracy_score(y_test, predicted)})
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x_test, predicted))
    return run.info.run_id


class Command(BaseCommand):
    help = "Create the demo team, users, dataset and a first registered version (idempotent)."

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
        model = RegisteredModel.objects.filter(name=DEMO_MODEL).first() or model_create(
            actor=users["admin"],
            name=DEMO_MODEL,
            team=team,
            description="Flags malignant tumours from the Wisconsin breast-cancer measurements.",
            primary_metric="f1",
            policy=DEMO_POLICY,
            dataset=dataset.name,
            tags={"domain": "health", "owner": "alice"},
        )
        if not model.versions.exists():
            run_id = train_and_log(c=1.0, experiment="demo-breast-cancer")
            version = model_version_register(
                actor=alice,
                model=model,
                run_id=run_id,
                description="logistic regression, C=1.0",
                dataset=dataset.name,
                tags={"estimator": "LogisticRegression"},
            )
            self.stdout.write(f"registered {model.name} v{version.version} from run {run_id}")
        _, token = api_token_issue(user=users["admin"], name="demo")
        if options.get("token_file"):
            path = options["token_file"]
            with open(path, "w") as handle:
                handle.write(token + "\n")
            os.chmod(path, 0o600)
        self.stdout.write("demo users: " + ", ".join(f"{u} / {p} ({r})" for u, (r, p) in DEMO_USERS.items()))
        self.stdout.write(token)
