"""``manage.py demo_loop``: the lifecycle loop on the seeded demo model, through the
platform's own jobs: write its model card and complete its design, train a first version, evaluate it, promote it (its gates pass and
the demo approver approves), deploy it and send it predictions through the serving
gateway, then train a second one that is evaluated against it, goes to staging, takes
20% of live traffic as a canary, and is left waiting for approval of its promotion with
its gate results. It derives an ONNX version of the champion on the worker and prints its
comparison with the champion (scores on the same data, size, latency, memory). Then
monitors join the policy, a stream and a shifted stream of the data go through the
gateway, and the drift alerts fire: the canary is aborted and production retrained
(``lifecycle.management.demo_monitoring``). Does nothing once the demo has run."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import requests
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from sklearn.datasets import load_breast_cancer

from lifecycle.deployments.choices import DeploymentState
from lifecycle.deployments.models import Deployment
from lifecycle.deployments.selectors import route_table_document
from lifecycle.deployments.services import canary_promote, canary_set, deployment_create
from lifecycle.derivations.models import Derivation
from lifecycle.derivations.services import version_derive
from lifecycle.design.selectors import design_state
from lifecycle.design.services import design_card_update, model_design_complete
from lifecycle.governance.models import Transition
from lifecycle.governance.services.transitions import transition_approve
from lifecycle.management.demo_monitoring import monitoring_demo
from lifecycle.training.services import training_submit
from registry.choices import ModelStage
from registry.models import ModelVersion, RegisteredModel

DEMO_MODEL = "breast-cancer-classifier"
DEMO_CARD = {
    "intended_use": "Second opinion on whether a breast mass is malignant, from the 30 Wisconsin measurements "
    "of a fine-needle aspirate, for a clinician who reads the same image.",
    "out_of_scope_uses": ["diagnosis without a clinician", "other tissue or imaging types"],
    "owner": "alice (demo team)",
    "task": "classification",
    # Every column the model takes: completing design makes this an input_schema gate.
    "input_schema": [{"name": str(name), "type": "double"} for name in load_breast_cancer().feature_names],
    "output_schema": [{"name": "prediction", "type": "long"}],
    "datasets": [{"name": "breast-cancer", "role": "training"}, {"name": "breast-cancer", "role": "evaluation"}],
    "success_criteria": [{"metric": "f1", "op": ">=", "value": 0.9}],
    "risks": ["a missed malignancy (false negative) delays treatment", "569 samples from one clinic"],
    "fairness": "The dataset records no patient attributes, so no group can be compared; recall is watched instead.",
    "resource_budget": {"latency_p95_ms": 200, "memory_mb": 512, "artifact_mb": 20},
}


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

    def _wait_for_stage(self, model: RegisteredModel, *, version: int, stage: str, timeout: float) -> ModelVersion:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = model.versions.filter(version=version, stage=stage).first()
            if found is not None:
                return found
            time.sleep(1)
        raise CommandError(f"v{version} did not reach {stage} in time; see the worker's log")

    def _wait_ready(self, deployment: Deployment, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            deployment.refresh_from_db()
            if deployment.state == DeploymentState.READY:
                return
            if deployment.state == DeploymentState.FAILED:
                raise CommandError(f"deployment {deployment.pk} failed: {deployment.state_detail}")
            time.sleep(1)
        raise CommandError("the deployment's replicas did not start in time; see the worker's log")

    _curl_shown = False

    def _wait_gateway(self, gateway: str, timeout: float = 30) -> None:
        """Until the gateway serves the newest route table (it reloads every second)."""
        newest = (route_table_document() or {}).get("revision", 0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if requests.get(f"{gateway}/serve/-/health", timeout=5).json().get("revision", 0) >= newest:
                return
            time.sleep(0.2)
        raise CommandError(f"the gateway did not load route table {newest} in {timeout:.0f}s; see its log")

    def _predict(self, model: RegisteredModel, *, count: int) -> None:
        """Send rows of the bundled dataset through the gateway, as a client would."""
        gateway, token = os.environ.get("MODELGATE_GATEWAY_URL"), os.environ.get("MODELGATE_DEMO_TOKEN")
        if not gateway or not token:
            self.stdout.write("no gateway to call (MODELGATE_GATEWAY_URL, MODELGATE_DEMO_TOKEN)")
            return
        from sklearn.datasets import load_breast_cancer

        frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
        self._wait_gateway(gateway)
        served: dict[str, int] = {}
        url = f"{gateway}/serve/{model.name}/invocations"
        for i in range(count):
            rows = frame.iloc[[i]]
            response = requests.post(
                url,
                json={"dataframe_split": rows.to_dict(orient="split")},
                headers={"Authorization": f"Bearer {token}", "X-Request-Id": f"demo-{i}"},
                timeout=10,
            )
            response.raise_for_status()
            version = response.headers.get("X-ModelGate-Version", "?")
            served[version] = served.get(version, 0) + 1
        self.stdout.write(
            f"{count} predictions through the gateway: " + ", ".join(f"v{v}: {n}" for v, n in sorted(served.items()))
        )
        if self._curl_shown:
            return
        self._curl_shown = True
        self.stdout.write(
            f"  try: curl -X POST {url} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
            f"""-d '{{"dataframe_split": {json.dumps(frame.iloc[[0]].to_dict(orient="split"))}}}'"""
        )

    def _derive_onnx(self, model: RegisteredModel, *, actor: Any, timeout: float) -> None:
        champion = model.versions.filter(stage="production").first()
        if champion is None:
            return
        job = version_derive(version=champion, method="onnx", params={}, actor=actor, reason="demo: ONNX for serving")
        self.stdout.write(f"deriving an ONNX version of the champion v{champion.version} (job {job.pk})…")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = Derivation.objects.filter(job=job).exclude(state="running").select_related("version").first()
            if found is not None and (found.state == "failed" or found.version.stage != "training"):
                break
            time.sleep(1)
        else:
            raise CommandError("the ONNX derivation did not finish in time; see the worker's log")
        if found.state == "failed":
            raise CommandError(f"the ONNX derivation failed: {found.job.state_detail if found.job else ''}")
        parent, derived = found.comparison["parent"], found.comparison["derived"]
        self.stdout.write(f"v{found.version.version} = ONNX of v{champion.version}, served by onnxruntime:")
        rows = [
            ("size (bytes)", "model_bytes", "{:,.0f}"),
            ("single row p50 (ms)", "latency_p50_ms", "{:.3f}"),
            ("single row p95 (ms)", "latency_p95_ms", "{:.3f}"),
            ("batch of 1,000 p50 (ms)", "batch_latency_p50_ms", "{:.3f}"),
            ("peak memory (MB)", "peak_memory_mb", "{:.1f}"),
        ]
        for label, key, fmt in rows:
            before = fmt.format(parent[key]) if parent.get(key) is not None else "n/a"
            after = fmt.format(derived[key]) if derived.get(key) is not None else "n/a"
            self.stdout.write(f"  {label:<24} v{champion.version} {before:>10}   v{found.version.version} {after:>10}")
        primary = model.primary_metric or "f1"
        self.stdout.write(
            f"  {primary} delta {found.metric_deltas.get(primary, 0.0):+.6f}; labels agree on "
            f"{found.agreement.get('label_agreement', 0) * 100:.1f}% of the test rows"
        )

    def design_complete(self, model: RegisteredModel, alice: Any) -> RegisteredModel:
        """Alice writes the demo model's card and completes its design (the design stage)."""
        if model.stage != ModelStage.DESIGN:
            return model
        state = design_state(model=model)
        if state.missing:
            design_card_update(
                model=model, card=DEMO_CARD, actor=alice, expected_revision=state.revision, reason="demo card"
            )
        model = model_design_complete(model=model, actor=alice, reason="demo: card written")
        self.stdout.write(f"alice wrote the model card and completed design: {model.name} is {model.stage}")
        return model

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
        model = self.design_complete(model, alice)
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
        # Half a core for each scoring server of a linear model: the embedded worker has two,
        # and the champion's and the canary's replicas must leave it one for the ONNX
        # derivation and the retraining the demo runs while they serve.
        deployment = deployment_create(actor=alice, model=model, resources={"cpus": 0.5, "memory_mb": 512})
        self.stdout.write(f"deploying the champion: deployment {deployment.pk}, one MLflow scoring server…")
        self._wait_ready(deployment, options["timeout"])
        self._predict(model, count=5)
        training_submit(
            actor=alice,
            model=model,
            estimator="RandomForestClassifier",
            estimator_params={"n_estimators": 100, "random_state": 0},
            request_stage="staging",
        )
        self.stdout.write("training v2 (random forest), evaluating it against the champion, staging it…")
        second = self._wait_for_stage(model, version=2, stage="staging", timeout=options["timeout"])
        canary_set(actor=bob, deployment=deployment, version=second.version, weight=0.2, reason="demo canary")
        self.stdout.write(f"bob starts v{second.version} as a 20% canary…")
        self._wait_ready(deployment, options["timeout"])
        self._predict(model, count=20)
        promotion = canary_promote(actor=bob, deployment=deployment, reason="demo: canary looks healthy")
        self._say(promotion)
        if promotion.status == "pending":
            self.stdout.write("open the approvals inbox to decide on it (someone other than bob must approve)")
        else:
            self.stdout.write("the canary keeps its 20% until bob aborts it or a better version comes")
        self._derive_onnx(model, actor=alice, timeout=options["timeout"])
        gateway, token = os.environ.get("MODELGATE_GATEWAY_URL"), os.environ.get("MODELGATE_DEMO_TOKEN")
        if gateway and token:
            monitoring_demo(
                model=model, deployment=deployment, approver=bob, gateway=gateway, token=token, say=self.stdout.write
            )
