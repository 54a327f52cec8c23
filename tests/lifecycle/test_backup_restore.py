"""Backup, wipe, restore: a model taken to production and rolled back, backed up from a
real MLflow server and S3 endpoint, comes back into a new database, a new artifact
bucket and a new MLflow registry with every row, the production history, the audit
chain and MLflow's versions, tags and aliases as they were."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from lifecycle.governance.models import AuditRecord, ProductionRecord
from lifecycle.governance.services.outbox import outbox_relay
from lifecycle.governance.services.webhooks import webhook_create
from registry.models import ModelVersion, Team
from tests.conftest import _postgres_admin
from tests.lifecycle.test_governance_flow import evaluate, request, rollback
from tests.lifecycle.test_outbox import trained_run

pytestmark = [
    pytest.mark.services,
    pytest.mark.postgres,
    pytest.mark.xdist_group("mlflow"),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "backup-webhook-secret-0123456789"


def register(owner, model, body: dict[str, Any]) -> int:
    response = owner.client.post(f"/api/v1/models/{model.name}/versions/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["version"]


def model_directory(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    (path / "weights.bin").write_bytes(os.urandom(4096))
    (path / "nested").mkdir()
    (path / "nested" / "vocab.txt").write_text("a\nb\nc\n")
    return path


def rows_of(backup: Path) -> dict[tuple[str, Any], dict[str, Any]]:
    """Every dumped row by (model, primary key), without what a restore rightly changes:
    row revisions (random per write) and a version's artifact location."""
    rows = {}
    for line in (backup / "database.jsonl").read_text().splitlines():
        item = json.loads(line)
        fields = dict(item["fields"])
        fields.pop("revision", None)
        if item["model"] == "registry.modelversion":
            fields.pop("artifact_uri")
        if item["model"] == "lifecycle.webhook":
            fields.pop("secret")  # ciphertext: a fresh IV on every write
        rows[(item["model"], item["pk"])] = fields
    return rows


def mlflow_of(backup: Path) -> list[dict[str, Any]]:
    models = json.loads((backup / "mlflow.json").read_text())["registered_models"]
    return [
        {
            **{key: model[key] for key in ("name", "description", "tags", "aliases")},
            "versions": [{k: v[k] for k in ("version", "tags", "description", "status")} for v in model["versions"]],
        }
        for model in models
    ]


class Installation:
    """A second, empty installation: its own PostgreSQL database, artifact bucket and
    MLflow registry (a SQLite store), driven through ``manage.py`` in subprocesses."""

    def __init__(self, root: Path, s3_url: str, bucket: str) -> None:
        self.database = f"restore_{uuid.uuid4().hex[:10]}"
        root.mkdir(parents=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.database}",
            "MODELGATE_ARTIFACT_ROOT": f"s3://{bucket}/root",
            "AWS_ENDPOINT_URL": s3_url,
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.sqlite3'}",
            "MODELGATE_VAR_DIR": str(root / "var"),
            "MODELGATE_ENV": "test",
        }
        with _postgres_admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def drop(self) -> None:
        with _postgres_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def test_a_backup_restored_into_an_empty_installation_matches_record_for_record(
    live_services, s3_endpoint, owner, approver, fraud_admin, fraud_model, tmp_path
):
    run_id = trained_run()
    first = register(owner, fraud_model, {"run_id": run_id, "tags": {"team": "fraud"}})
    second = register(owner, fraud_model, {"run_id": run_id, "description": "more data"})
    third = register(owner, fraud_model, {"source": str(model_directory(tmp_path / "local-model"))})
    for number, f1 in ((first, 0.91), (second, 0.93)):
        evaluate(ModelVersion.objects.get(model=fraud_model, version=number), f1)
        assert request(owner, fraud_model, number, "evaluation").json()["status"] == "applied"
        assert request(owner, fraud_model, number, "production").json()["status"] == "applied"
    assert rollback(approver, fraud_model, reason="v2 doubles the false positives").status_code == 200
    webhook_create(
        actor=fraud_admin.user, team=Team.objects.get(name="fraud"), url="http://127.0.0.1:9/", secret=WEBHOOK_SECRET
    )
    outbox_relay()
    call_command("verify")

    backup = tmp_path / "backup"
    call_command("backup", str(backup))
    call_command("verify", backup=backup)
    assert WEBHOOK_SECRET not in (backup / "database.jsonl").read_text(), "credentials leave only encrypted"
    assert ProductionRecord.objects.count() == 3

    restored = Installation(
        tmp_path / "restored", s3_endpoint.url, s3_endpoint.bucket(f"restored-{uuid.uuid4().hex[:8]}")
    )
    try:
        done = restored.manage("restore", str(backup))
        assert done.returncode == 0, done.stderr
        assert "restored" in done.stdout and "3 versions" in done.stdout
        checked = restored.manage("verify")
        assert checked.returncode == 0, checked.stderr
        assert "3 artifacts checked, 0 problems; audit chain valid" in checked.stdout

        again = tmp_path / "backup-of-restored"
        taken = restored.manage("backup", str(again))
        assert taken.returncode == 0, taken.stderr

        before, after = rows_of(backup), rows_of(again)
        audits = sorted(pk for model, pk in after if model == "lifecycle.auditrecord")
        restore_record = after.pop(("lifecycle.auditrecord", audits[-1]))
        assert restore_record["action"] == "backup.restore"
        assert restore_record["prev_hash"] == before[("lifecycle.auditrecord", audits[-2])]["hash"]
        assert after == before
        assert sum(1 for model, _ in before if model == "lifecycle.productionrecord") == 3
        assert mlflow_of(again) == mlflow_of(backup)
        exported = json.loads((again / "mlflow.json").read_text())["registered_models"]
        assert [m["aliases"] for m in exported] == [{"champion": first}]
        assert [v["version"] for v in exported[0]["versions"]] == [first, second, third]
        assert all(v["source"].startswith(restored.env["MODELGATE_ARTIFACT_ROOT"]) for v in exported[0]["versions"])

        refused = restored.manage("restore", str(backup))
        assert refused.returncode != 0
        assert "restore needs an empty installation" in refused.stderr
    finally:
        restored.drop()


def test_verify_names_a_changed_artifact_and_a_tampered_audit_record_of_a_backup(
    live_services, owner, fraud_model, tmp_path
):
    number = register(owner, fraud_model, {"source": str(model_directory(tmp_path / "local-model"))})
    backup = tmp_path / "backup"
    call_command("backup", str(backup))
    call_command("verify", backup=backup)

    changed = tmp_path / "changed"
    shutil.copytree(backup, changed)
    (entry,) = json.loads((changed / "artifacts" / "manifest.json").read_text())["versions"]
    (changed / entry["path"] / "weights.bin").write_bytes(b"not the registered weights")
    with pytest.raises(CommandError, match="1 problems"):
        call_command("verify", backup=changed)

    tampered = tmp_path / "tampered"
    shutil.copytree(backup, tampered)
    lines = (tampered / "database.jsonl").read_text().splitlines()
    for index, line in enumerate(lines):
        item = json.loads(line)
        if item["model"] == "lifecycle.auditrecord":
            item["fields"]["actor_name"] = "somebody-else"
            lines[index] = json.dumps(item)
            break
    (tampered / "database.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match="audit chain broken"):
        call_command("verify", backup=tampered)
    assert AuditRecord.objects.filter(object_id=f"{fraud_model.name}/{number}").exists()


def test_a_backup_is_never_written_over_another(live_services, fraud_model, tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "something").write_text("kept")
    with pytest.raises(CommandError, match="not an empty directory"):
        call_command("backup", str(backup))
    assert (backup / "something").read_text() == "kept"
    assert not (tmp_path / "backup.partial").exists()


@pytest.fixture
def s3_artifacts(settings, s3_endpoint):
    from registry import storage

    settings.AWS_ENDPOINT_URL = s3_endpoint.url
    settings.MODELGATE_S3_SSE = ""
    storage._s3_client.cache_clear()
    yield s3_endpoint
    storage._s3_client.cache_clear()


def test_verify_reads_many_artifacts_side_by_side_and_names_exactly_those_that_differ(
    s3_artifacts, fraud_model, tmp_path
):
    from registry import storage

    bucket = s3_artifacts.bucket("modelgate-verify")
    parent = f"models/{uuid.uuid4().hex}"
    client = s3_artifacts.client()
    for number in range(1, 13):
        for name, body in (("MLmodel", b"artifact_path: model\n"), ("model.pkl", f"weights {number}".encode())):
            client.put_object(Bucket=bucket, Key=f"{parent}/{number}/{name}", Body=body)
        uri = f"s3://{bucket}/{parent}/{number}"
        manifest = storage.artifact_manifest(uri)
        ModelVersion.objects.create(
            model=fraud_model,
            version=number,
            source=uri,
            artifact_uri=uri,
            manifest=manifest,
            digest=storage.manifest_digest(manifest),
            size_bytes=storage.manifest_size(manifest),
        )
    call_command("verify", workers=4)

    client.put_object(Bucket=bucket, Key=f"{parent}/5/model.pkl", Body=b"swapped weights")
    client.delete_object(Bucket=bucket, Key=f"{parent}/9/MLmodel")
    client.put_object(Bucket=bucket, Key=f"{parent}/11/extra.txt", Body=b"added later")
    errors = io.StringIO()
    with pytest.raises(CommandError, match="12 artifacts checked, 3 problems"):
        call_command("verify", workers=4, stderr=errors)

    lines = errors.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("fraud-detector v5: ") and "'changed': ['model.pkl']" in lines[0]
    assert lines[1].startswith("fraud-detector v9: ") and "'missing': ['MLmodel']" in lines[1]
    assert lines[2].startswith("fraud-detector v11: ") and "'unexpected': ['extra.txt']" in lines[2]


def backup_json(path: Path, **changes: Any) -> Path:
    """A ``backup.json`` as ``backup`` writes it for this schema, with ``changes``."""
    from lifecycle.backup.database import applied_migrations
    from lifecycle.backup.services import FORMAT

    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "id": uuid.uuid4().hex,
        "taken_at": "2026-12-03T12:00:00+00:00",
        "migrations": applied_migrations(),
        **{
            section: {"file": name, "sha256": "0" * 64}
            for section, name in (
                ("database", "database.jsonl"),
                ("artifacts", "artifacts/manifest.json"),
                ("mlflow", "mlflow.json"),
            )
        },
        **changes,
    }
    (path / "backup.json").write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: None, "is not a ModelGate backup \\(no backup.json\\)"),
        (lambda path: (path / "backup.json").write_text('{"format": "modelgate-backup/1", '), "is not readable JSON"),
        (lambda path: backup_json(path, database={"file": "database.jsonl"}), "lacks database.sha256"),
        (lambda path: backup_json(path), "database.jsonl is missing; the backup is incomplete"),
        (
            lambda path: (backup_json(path), (path / "database.jsonl").write_text("{}\n")),
            "database.jsonl does not match the digest in backup.json",
        ),
    ],
    ids=["no-meta", "meta-not-json", "meta-without-digest", "dump-missing", "dump-changed"],
)
def test_a_damaged_or_incomplete_backup_is_refused_naming_what_is_wrong(fraud_model, tmp_path, damage, message):
    backup = tmp_path / "backup"
    backup.mkdir()
    damage(backup)
    with pytest.raises(CommandError, match=message):
        call_command("restore", str(backup))
    assert ModelVersion.objects.count() == 0 and Team.objects.filter(name="fraud").exists(), "nothing written"


def test_a_restore_refuses_a_damaged_artifact_copy_naming_it_and_leaves_the_installation_empty(
    live_services, s3_endpoint, owner, fraud_model, tmp_path
):
    first = register(owner, fraud_model, {"source": str(model_directory(tmp_path / "first"))})
    second = register(owner, fraud_model, {"source": str(model_directory(tmp_path / "second"))})
    backup = tmp_path / "backup"
    call_command("backup", str(backup))
    entries = {e["version"]: e for e in json.loads((backup / "artifacts" / "manifest.json").read_text())["versions"]}
    weights = backup / entries[second]["path"] / "weights.bin"
    original = weights.read_bytes()
    weights.write_bytes(b"not the registered weights")

    restored = Installation(
        tmp_path / "restored", s3_endpoint.url, s3_endpoint.bucket(f"restored-{uuid.uuid4().hex[:8]}")
    )
    try:
        refused = restored.manage("restore", str(backup))
        assert refused.returncode != 0
        assert f"the backup's copy of {fraud_model.name} v{second}" in refused.stderr
        assert "'changed': ['weights.bin']" in refused.stderr

        weights.write_bytes(original)
        done = restored.manage("restore", str(backup))
        assert done.returncode == 0, f"the refused restore left something behind:\n{done.stderr}"
        checked = restored.manage("verify")
        assert "2 artifacts checked, 0 problems" in checked.stdout, checked.stderr
        assert first in entries
    finally:
        restored.drop()
