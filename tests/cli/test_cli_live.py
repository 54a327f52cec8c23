"""The ``modelgate`` command as a CI job runs it: a real subprocess against the live
server (Django's live server thread on PostgreSQL), with versions registered from runs
logged to a real MLflow server whose artifacts are on a real S3 endpoint (moto).

Deployments' replicas are reported ready by hand here, as their program does; the real
scoring servers are in ``tests/lifecycle/test_replicas.py``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from lifecycle.deployments import services as deployment_services
from lifecycle.deployments.choices import ReplicaState
from lifecycle.deployments.models import Replica
from lifecycle.governance.models import AuditRecord, Transition
from registry import storage
from registry.models import ModelVersion, RegisteredModel
from registry.services import model_create, team_ensure
from tests.conftest import BIN, Actor

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("mlflow")]

ROOT = Path(__file__).resolve().parents[2]
# The console script that `make` installs; `python -m modelgate` runs the same main()
# where the project is not installed in this environment.
COMMAND = [str(BIN / "modelgate")] if (BIN / "modelgate").exists() else [sys.executable, "-m", "modelgate"]


@pytest.fixture(autouse=True)
def no_scheduling_pass(monkeypatch) -> None:
    """Replica jobs are queued, never placed: the tests report replicas ready by hand."""
    from lifecycle.jobs import dispatch

    monkeypatch.setattr(dispatch, "scheduler_kick", lambda: None)


@dataclass
class Cli:
    url: str
    config: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
        return {**env, "MODELGATE_CONFIG": str(self.config), **extra}

    def start(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*COMMAND, *args],
            cwd=ROOT,
            env=self.env(**env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __call__(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
        process = self.start(*args, **env)
        stdout, stderr = process.communicate(stdin, timeout=180)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def json(self, *args: str, expect: int = 0, **env: str) -> Any:
        result = self(*args, "--json", **env)
        assert result.returncode == expect, (result.stdout, result.stderr)
        return json.loads(result.stdout)

    def login(self, actor: Actor) -> None:
        result = self("login", "--url", self.url, "--token-stdin", stdin=actor.token + "\n")
        assert result.returncode == 0, result.stderr


@pytest.fixture
def cli(transactional_db, live_server, live_services, tmp_path: Path) -> Cli:
    return Cli(url=live_server.url, config=tmp_path / "home" / "modelgate" / "config.json")


def _model(owner: Actor, name: str, rules: list[dict[str, Any]]) -> RegisteredModel:
    return model_create(
        actor=owner.user,
        name=name,
        team=team_ensure(name="fraud"),
        description="",
        primary_metric="f1",
        policy={"rules": rules},
    )


def _trained_run(c: float = 1.0) -> tuple[str, float]:
    """An MLflow run that logged a scikit-learn model and its f1."""
    data = load_breast_cancer()
    model = LogisticRegression(C=c, max_iter=5000).fit(data.data, data.target)
    f1 = f1_score(data.target, model.predict(data.data))
    mlflow.set_experiment("cli-training")
    with mlflow.start_run() as run:
        mlflow.log_metric("f1", f1)
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(data.data, model.predict(data.data)))
    return run.info.run_id, f1


THRESHOLD = {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8}
APPROVAL = {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]}


def test_login_saves_the_server_and_token_for_the_owner_only_and_status_shows_the_registered_version(cli, owner):
    _model(owner, "fraud-detector", [THRESHOLD])
    run_id, f1 = _trained_run()

    cli.login(owner)

    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    assert json.loads(cli.config.read_text()) == {"url": cli.url, "token": owner.token}
    registered = cli("register", "--model", "fraud-detector", "--run-id", run_id, "--wait")
    assert registered.returncode == 0, registered.stderr
    assert "Registered fraud-detector v1 (training, ready)" in registered.stdout
    status = cli("status", "--model", "fraud-detector")
    assert status.returncode == 0, status.stderr
    assert "production: none" in status.stdout
    assert f"{1:>7}  {'training':<11}  {'ready':<7}  {f1:>10.4f}" in status.stdout
    document = cli.json("status", "--model", "fraud-detector")
    assert [(v["version"], v["stage"], v["run_id"]) for v in document["versions"]] == [(1, "training", run_id)]
    assert document["model"]["team"] == "fraud"


def test_a_run_is_registered_promoted_to_staging_and_into_production_once_an_approver_approves(cli, owner, approver):
    _model(owner, "fraud-detector", [THRESHOLD, APPROVAL])
    run_id, f1 = _trained_run()
    cli.login(owner)

    version = cli.json(
        "register", "--model", "fraud-detector", "--run-id", run_id, "--artifact-path", "model", "--wait"
    )
    assert (version["version"], version["stage"], version["metrics"]["f1"]) == (1, "training", pytest.approx(f1))

    staged = cli.json("promote", "--model", "fraud-detector", "--version", "1", "--to", "staging", "--wait")
    assert (staged["from_stage"], staged["to"], staged["status"]) == ("evaluation", "staging", "applied")
    assert [(g["rule"], g["status"]) for g in staged["gates"]] == [("metric_threshold", "passed")]

    undecided = cli("promote", "--model", "fraud-detector", "--version", "1", "--to", "production",
                    "--reason", "better recall", "--wait", "--timeout", "1", "--json")  # fmt: skip
    assert undecided.returncode == 3, (undecided.stdout, undecided.stderr)
    assert json.loads(undecided.stdout)["status"] == "pending"
    assert json.loads(undecided.stderr)["error"]["code"] == "timeout"
    (pending,) = Transition.objects.filter(to_stage="production", status="pending")

    # Run again (the CI job retried): it follows the open request, rechecked once.
    waiting = cli.start(
        "promote", "--model", "fraud-detector", "--version", "1", "--to", "production", "--reason", "better recall",
        "--wait", "--poll", "0.5", "--timeout", "120",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not AuditRecord.objects.filter(action="transition.recheck", object_id=str(pending.pk)).exists():
        assert waiting.poll() is None and time.monotonic() < deadline, waiting.communicate()
        time.sleep(0.2)
    response = approver.client.post(f"/api/v1/transitions/{pending.pk}/approve/", {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.json()
    stdout, stderr = waiting.communicate(timeout=60)

    assert waiting.returncode == 0, (stdout, stderr)
    assert f"request #{pending.pk}: waiting: 0 of 1 approval" in stderr
    assert f"fraud-detector v1: staging -> production: applied (request #{pending.pk})" in stdout
    assert "approved by approver (approver): ok" in stdout
    assert ModelVersion.objects.get(version=1).stage == "production"
    assert Transition.objects.filter(to_stage="production").count() == 1
    assert "aliases: champion -> v1" in cli("status", "--model", "fraud-detector").stdout


def test_a_promotion_blocked_by_a_gate_exits_2_and_prints_the_gate_with_its_numbers(cli, owner):
    _model(owner, "fraud-detector", [{**THRESHOLD, "value": 0.999}])
    run_id, f1 = _trained_run()
    cli.login(owner)
    assert cli("register", "--model", "fraud-detector", "--run-id", run_id).returncode == 0

    blocked = cli("promote", "--model", "fraud-detector", "--version", "1", "--to", "staging", "--wait")

    assert blocked.returncode == 2, (blocked.stdout, blocked.stderr)
    assert "fraud-detector v1: training -> evaluation: applied" in blocked.stdout
    assert "fraud-detector v1: evaluation -> staging: blocked" in blocked.stdout
    gate = next(line for line in blocked.stdout.splitlines() if "metric_threshold" in line)
    assert gate.startswith("  [FAILED ] metric_threshold: f1 = 0.9")
    assert ">= 0.999" in gate

    # Run again (a CI job retried): the open request is rechecked, not duplicated.
    again = cli.json("promote", "--model", "fraud-detector", "--version", "1", "--to", "staging", expect=2)
    assert again["status"] == "blocked"
    failed = [g for g in again["gates"] if g["status"] == "failed"]
    assert [(g["rule"], g["data"]["threshold"], g["data"]["value"]) for g in failed] == [
        ("metric_threshold", 0.999, pytest.approx(f1))
    ]
    assert Transition.objects.filter(to_stage="staging").count() == 1


def test_rollback_puts_the_previous_production_version_back_and_needs_an_approver(cli, owner, approver):
    _model(owner, "fraud-detector", [THRESHOLD])
    cli.login(owner)
    for c in (1.0, 0.5):
        run_id, _ = _trained_run(c)
        assert cli("register", "--model", "fraud-detector", "--run-id", run_id).returncode == 0
    for number in ("1", "2"):
        promoted = cli("promote", "--model", "fraud-detector", "--version", number, "--to", "production", "--wait")
        assert promoted.returncode == 0, (promoted.stdout, promoted.stderr)

    refused = cli("rollback", "--model", "fraud-detector", "--reason", "latency")
    assert refused.returncode == 1
    assert "HTTP 403" in refused.stderr and "rolling back production" in refused.stderr

    rolled = cli.json("rollback", "--model", "fraud-detector", "--reason", "latency", MODELGATE_TOKEN=approver.token)
    assert (rolled["kind"], rolled["version"], rolled["status"]) == ("rollback", 1, "applied")
    assert {v.version: v.stage for v in ModelVersion.objects.all()} == {1: "production", 2: "rolled_back"}
    assert "production: v1" in cli("status", "--model", "fraud-detector").stdout


def test_a_wrong_token_exits_1_naming_the_problem_and_is_not_saved(cli, owner):
    refused = cli("login", "--url", cli.url, "--token-stdin", stdin="mg_000000000000_not-a-token\n")

    assert refused.returncode == 1
    assert "invalid token" in refused.stderr and "HTTP 401" in refused.stderr
    assert not cli.config.exists()

    as_json = cli("status", "--model", "fraud-detector", "--json", MODELGATE_URL=cli.url, MODELGATE_TOKEN="mg_x_y")
    assert as_json.returncode == 1
    assert as_json.stdout == ""
    assert json.loads(as_json.stderr)["error"] == {
        "status": 401,
        "code": "unauthenticated",
        "message": "invalid token",
        "details": None,
    }


def test_a_model_of_another_team_is_not_found(cli, owner, outsider):
    _model(owner, "fraud-detector", [THRESHOLD])
    cli.login(outsider)

    result = cli("status", "--model", "fraud-detector")

    assert result.returncode == 1
    assert "HTTP 404" in result.stderr


def _report_replicas_ready(deployment_id: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replicas = list(Replica.objects.filter(deployment_id=deployment_id, state=ReplicaState.STARTING))
        if replicas:
            for replica in replicas:
                deployment_services.replica_ready(replica_id=replica.pk, url="http://127.0.0.1:9", host="127.0.0.1")
            return
        time.sleep(0.2)


def test_deploy_waits_until_the_replicas_are_ready_and_a_stalled_one_exits_3(cli, owner):
    _model(owner, "fraud-detector", [THRESHOLD])
    run_id, _ = _trained_run()
    cli.login(owner)
    assert cli("register", "--model", "fraud-detector", "--run-id", run_id).returncode == 0
    assert cli("promote", "--model", "fraud-detector", "--version", "1", "--to", "staging").returncode == 0

    stalled = cli(
        "deploy", "--model", "fraud-detector", "--version", "1", "--name", "stalled", "--wait", "--timeout", "2"
    )
    assert stalled.returncode == 3, (stalled.stdout, stalled.stderr)
    assert "is still starting after 2s" in stalled.stderr

    waiting = cli.start("deploy", "--model", "fraud-detector", "--version", "1", "--replicas", "2", "--wait", "--json")
    deadline = time.monotonic() + 60
    while _deployment_id("production") is None:
        assert waiting.poll() is None and time.monotonic() < deadline, waiting.communicate()
        time.sleep(0.2)
    reporter = threading.Thread(target=_report_replicas_ready, args=(_deployment_id("production"),))
    reporter.start()
    stdout, stderr = waiting.communicate(timeout=60)
    reporter.join()

    assert waiting.returncode == 0, (stdout, stderr)
    deployment = json.loads(stdout)
    assert deployment["state"] == "ready"
    assert [(r["version"], r["mode"], r["weight"]) for r in deployment["routes"]] == [(1, "primary", 1.0)]
    assert [r["state"] for r in deployment["replicas"]] == ["ready", "ready"]


def _deployment_id(name: str) -> int | None:
    from lifecycle.deployments.models import Deployment

    return Deployment.objects.filter(name=name).values_list("pk", flat=True).first()


def test_verify_checks_the_audit_chain_and_names_a_changed_artifact_file(cli, owner, s3_endpoint):
    _model(owner, "fraud-detector", [THRESHOLD])
    run_id, _ = _trained_run()
    cli.login(owner)
    assert cli("register", "--model", "fraud-detector", "--run-id", run_id).returncode == 0

    chain = cli("verify")
    assert chain.returncode == 0, chain.stderr
    assert "hash chain intact" in chain.stdout
    assert cli.json("verify", "--model", "fraud-detector", "--version", "1")["valid"] is True

    location = storage.parse_s3(ModelVersion.objects.get(version=1).artifact_uri)
    s3_endpoint.client().put_object(Bucket=location.bucket, Key=f"{location.key.rstrip('/')}/MLmodel", Body=b"x")

    changed = cli("verify", "--model", "fraud-detector", "--version", "1")
    assert changed.returncode == 2
    assert "does NOT match" in changed.stdout
    assert "changed: MLmodel" in changed.stdout
