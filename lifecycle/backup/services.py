"""Backup, restore and verification of an installation.

A backup is a directory::

    backup.json            what it holds: format, migrations, row counts, file digests
    database.jsonl         every row, from one read-only snapshot (lifecycle/backup/database.py)
    artifacts/manifest.json  each version's artifact: URI, digest and per-file manifest
    artifacts/<digest>/    the artifact's files, copied and verified against that digest
    mlflow.json            MLflow's registry: registered models, versions, aliases, tags

It is written under ``<DEST>.partial`` and renamed when complete, so a directory named
``DEST`` is always a whole backup. The artifacts and MLflow are read after the database
snapshot: an artifact never changes once registered (it is verified against the digest
the snapshot recorded), and MLflow's registry mirrors what the snapshot holds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import serializers
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from lifecycle.backup.database import (
    applied_migrations,
    database_dump,
    database_load,
    nonempty_tables,
    read_snapshot,
)
from lifecycle.governance.models import AuditRecord
from lifecycle.governance.services.audit import ChainReport, audit_append, audit_chain_check, audit_verify
from registry import mlflow_gateway, storage
from registry.errors import ArtifactIntegrityError, DependencyUnavailable, NotFound
from registry.models import ModelVersion

FORMAT = "modelgate-backup/1"
DATABASE_FILE = "database.jsonl"
ARTIFACT_MANIFEST = "artifacts/manifest.json"
MLFLOW_FILE = "mlflow.json"
META_FILE = "backup.json"


class BackupError(Exception):
    """A backup, restore or verification that cannot proceed, with the reason."""


@dataclass
class BackupReport:
    path: Path
    versions: int
    artifacts: int
    artifact_bytes: int
    database_bytes: int
    total_bytes: int
    rows: int
    seconds: float


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(storage.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _json_write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=True))


def _copy_artifact(root: Path, entry: dict[str, Any], listing: storage.Listing | None) -> dict[str, Any]:
    """Download one artifact into ``artifacts/<digest>/``, verified file by file."""
    target = root / "artifacts" / entry["digest"]
    storage.artifact_download(entry["artifact_uri"], entry["manifest"], target, listing=listing)
    if set(entry["manifest"]) == {""}:
        # A single-file artifact: the manifest describes the file itself.
        (single,) = list(target.iterdir())
        return {**entry, "path": single.relative_to(root).as_posix()}
    return {**entry, "path": target.relative_to(root).as_posix()}


def backup_write(*, destination: Path, workers: int = 8) -> BackupReport:
    """Write a consistent backup of the database, the artifacts and MLflow's registry."""
    started = time.monotonic()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise BackupError(f"{destination} already exists and is not an empty directory")
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with read_snapshot():
            taken_at = timezone.now()
            dump = database_dump(staging / DATABASE_FILE)
            migrations = applied_migrations()
            versions = [
                {"model": name, "version": number, "artifact_uri": uri, "digest": digest, "manifest": manifest}
                for name, number, uri, digest, manifest in ModelVersion.objects.order_by(
                    "model__name", "version"
                ).values_list("model__name", "version", "artifact_uri", "digest", "manifest")
            ]
        unique = {entry["digest"]: entry for entry in versions if entry["manifest"] and entry["digest"]}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelgate-backup-mlflow") as exporter:
            # MLflow's registry is read while the artifacts are copied: the two wait on
            # different servers.
            exported = exporter.submit(mlflow_gateway.registry_export)
            listings = storage.s3_listings(
                [e["artifact_uri"] for e in unique.values() if storage.is_s3(e["artifact_uri"])], workers=workers
            )
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelgate-backup") as pool:
                copied = {
                    e["digest"]: e
                    for e in pool.map(
                        lambda e: _copy_artifact(staging, e, listings.get(e["artifact_uri"])), unique.values()
                    )
                }
            registry = exported.result()
        entries = [
            {**entry, "path": copied[entry["digest"]]["path"] if entry["digest"] in copied else None}
            for entry in versions
        ]
        _json_write(staging / ARTIFACT_MANIFEST, {"versions": entries})
        _json_write(staging / MLFLOW_FILE, {"registered_models": registry})
        artifact_bytes = sum(storage.manifest_size(entry["manifest"]) for entry in unique.values())
        meta = {
            "format": FORMAT,
            "id": uuid.uuid4().hex,
            "taken_at": taken_at.isoformat(),
            "database": {
                "file": DATABASE_FILE,
                "sha256": dump.sha256,
                "bytes": dump.size,
                "counts": dump.counts,
                "snapshot": "repeatable read" if connection.vendor == "postgresql" else "one transaction",
                "vendor": connection.vendor,
            },
            "migrations": migrations,
            "artifacts": {
                "file": ARTIFACT_MANIFEST,
                "sha256": _file_sha256(staging / ARTIFACT_MANIFEST),
                "versions": len(versions),
                "unique": len(unique),
                "bytes": artifact_bytes,
            },
            "mlflow": {
                "file": MLFLOW_FILE,
                "sha256": _file_sha256(staging / MLFLOW_FILE),
                "registered_models": len(registry),
                "versions": sum(len(m["versions"]) for m in registry),
            },
        }
        _json_write(staging / META_FILE, meta)
        if destination.exists():
            destination.rmdir()
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    total = sum(p.stat().st_size for p in destination.rglob("*") if p.is_file())
    return BackupReport(
        path=destination,
        versions=len(versions),
        artifacts=len(unique),
        artifact_bytes=artifact_bytes,
        database_bytes=dump.size,
        total_bytes=total,
        rows=sum(dump.counts.values()),
        seconds=time.monotonic() - started,
    )


def backup_meta(source: Path) -> dict[str, Any]:
    """The backup's ``backup.json``, checked to be one this release reads."""
    path = source / META_FILE
    if not path.is_file():
        raise BackupError(f"{source} is not a ModelGate backup (no {META_FILE})")
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not readable JSON ({exc}); the backup is damaged") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise BackupError(f"{source} is a backup of format {found!r}; this release reads {FORMAT}")
    lacking = [key for key in ("id", "taken_at", "migrations", "database", "artifacts", "mlflow") if key not in meta]
    lacking += [
        f"{section}.{key}"
        for section in ("database", "artifacts", "mlflow")
        if isinstance(meta.get(section), dict)
        for key in ("file", "sha256")
        if key not in meta[section]
    ]
    if lacking:
        raise BackupError(f"{path} lacks {', '.join(lacking)}; the backup is damaged")
    return meta


def _schema_check(meta: dict[str, Any]) -> None:
    """Rows load only into the schema they were dumped from."""
    disk = {tuple(key) for key in MigrationLoader(None, ignore_no_migrations=True).disk_migrations}
    taken = {tuple(key) for key in meta["migrations"]}
    unknown, newer = sorted(taken - disk), sorted(disk - taken)
    if unknown:
        raise BackupError(
            "the backup was taken by a newer release (migrations unknown here: "
            + ", ".join(f"{a}.{n}" for a, n in unknown[:5])
            + "); restore it with that release"
        )
    if newer:
        raise BackupError(
            "the backup was taken before migrations "
            + ", ".join(f"{a}.{n}" for a, n in newer[:5])
            + "; restore it with the release that took it, then upgrade"
        )


@dataclass
class RestoreReport:
    rows: int
    versions: int
    artifacts: int
    registered_models: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)


def _label(entry: dict[str, Any]) -> str:
    return f"{entry['model']} v{entry['version']}"


def _restored_s3_uri(root: str, source: Path, entry: dict[str, Any]) -> tuple[str, str]:
    """``(prefix the files go to, URI of the restored artifact)`` on an S3 root: known
    before anything is uploaded, so MLflow's versions can be created meanwhile."""
    target = f"{root.rstrip('/')}/restored/{entry['digest']}"
    local = source / entry["path"]
    return target, f"{target}/{local.name}" if local.is_file() else target


def _artifact_upload(source: Path, entry: dict[str, Any]) -> str:
    """Put one backed-up artifact where this installation keeps artifacts, each file
    checked against the recorded manifest as it is read, and return its new URI."""
    local = source / entry["path"]
    root = settings.MODELGATE_ARTIFACT_ROOT
    try:
        if storage.is_s3(root):
            target, uri = _restored_s3_uri(root, source, entry)
            storage.upload_directory(local, target, expected=entry["manifest"])
            return uri
        _check_local_copy(local, entry)
        # MLflow refuses local paths as version sources: the artifact is logged into
        # MLflow's own store, as registration does with a local source.
        _, uri = mlflow_gateway.source_import(local, model_name=entry["model"])
        return uri
    except ArtifactIntegrityError as exc:
        raise BackupError(f"the backup's copy of {_label(entry)} ({local}) is damaged: {exc.details}") from exc
    except NotFound as exc:
        raise BackupError(f"the backup's copy of {_label(entry)} is missing: {exc}") from exc


def _check_local_copy(local: Path, entry: dict[str, Any]) -> None:
    try:
        check = storage.artifact_verify(str(local), entry["manifest"])
    except NotFound as exc:
        raise BackupError(f"the backup's copy of {_label(entry)} is missing: {local}") from exc
    if not check["valid"]:
        kinds = {k: check[k] for k in ("changed", "missing", "unexpected") if check[k]}
        raise BackupError(f"the backup's copy of {_label(entry)} ({local}) is damaged: {kinds}")


def _restored_check(entry: dict[str, Any], uri: str, listing: storage.Listing | None) -> None:
    """Re-read a restored artifact from the store against the recorded digest."""
    try:
        check = storage.artifact_verify(uri, entry["manifest"], listing=listing)
    except NotFound as exc:
        raise BackupError(f"the restored artifact of {_label(entry)} is not at {uri}") from exc
    if not check["valid"] or check["digest"] != entry["digest"]:
        raise BackupError(f"the restored artifact of {_label(entry)} at {uri} does not verify")


def backup_restore(*, source: Path, workers: int = 8) -> RestoreReport:
    """Bring a backup back into an empty installation: database, artifacts, MLflow.

    Refuses when the database holds any row or MLflow's registry any model. The
    database is loaded in one transaction that commits only after the artifacts and
    MLflow's registry are back; when either fails, the registered models it created
    are removed again.
    """
    started = time.monotonic()
    meta = backup_meta(source)
    _schema_check(meta)
    for name in (DATABASE_FILE, ARTIFACT_MANIFEST, MLFLOW_FILE):
        if not (source / name).is_file():
            raise BackupError(f"{source / name} is missing; the backup is incomplete")
        if _file_sha256(source / name) != _expected_sha(meta, name):
            raise BackupError(f"{source / name} does not match the digest in {META_FILE}; run verify --backup")
    occupied = nonempty_tables()
    if occupied:
        raise BackupError(
            "restore needs an empty installation, but the database holds rows in "
            + ", ".join(occupied[:8])
            + (" …" if len(occupied) > 8 else "")
        )
    store = storage.store_check()
    if store != "ok":
        raise BackupError(f"the artifact store {settings.MODELGATE_ARTIFACT_ROOT} cannot take the artifacts: {store}")
    if mlflow_gateway.registry_names(limit=1):
        raise BackupError("restore needs an empty installation, but MLflow's registry already holds models")
    call_command("migrate", interactive=False, verbosity=0)

    entries = json.loads((source / ARTIFACT_MANIFEST).read_text())["versions"]
    registry = json.loads((source / MLFLOW_FILE).read_text())["registered_models"]
    unique = {entry["digest"]: entry for entry in entries if entry["path"]}
    root = settings.MODELGATE_ARTIFACT_ROOT
    created: list[str] = []
    sources: dict[str, dict[int, str]] = {}

    def model_restore(exported: dict[str, Any]) -> None:
        created.append(exported["name"])
        mlflow_gateway.registered_model_restore(exported, sources.get(exported["name"], {}))

    def sources_set(new_uris: dict[str, str]) -> None:
        for entry in entries:
            if entry["digest"] in new_uris:
                sources.setdefault(entry["model"], {})[entry["version"]] = new_uris[entry["digest"]]

    uploads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelgate-restore-artifacts")
    # Models side by side; the versions of one model in order, since MLflow numbers them.
    models = ThreadPoolExecutor(max_workers=max(1, min(workers, len(registry))), thread_name_prefix="modelgate-restore")
    try:
        if storage.is_s3(root):
            # On S3 each artifact's new URI is known beforehand: MLflow's versions are
            # created while the artifacts upload, the database loads meanwhile, and
            # nothing commits before both are done and every artifact re-read.
            planned = {digest: _restored_s3_uri(root, source, entry)[1] for digest, entry in unique.items()}
            sources_set(planned)
            uploaded = [uploads.submit(_artifact_upload, source, entry) for entry in unique.values()]
            restored = [models.submit(model_restore, exported) for exported in registry]
        else:
            planned = dict(
                zip(unique, uploads.map(lambda e: _artifact_upload(source, e), unique.values()), strict=True)
            )
            sources_set(planned)
            uploaded, restored = [], [models.submit(model_restore, exported) for exported in registry]
        with transaction.atomic():
            counts = database_load(source / DATABASE_FILE)
            for future in uploaded:
                future.result()
            listings = storage.s3_listings([uri for uri in planned.values() if storage.is_s3(uri)], workers=workers)
            list(
                uploads.map(
                    lambda item: _restored_check(unique[item[0]], item[1], listings.get(item[1])), planned.items()
                )
            )
            for future in restored:
                future.result()
            by_key = {(e["model"], e["version"]): planned[e["digest"]] for e in entries if e["digest"] in planned}
            rows = list(ModelVersion.objects.select_related("model").only("id", "version", "model__name"))
            for row in rows:
                row.artifact_uri = by_key.get((row.model.name, row.version), row.artifact_uri)
            ModelVersion.objects.bulk_update(rows, ["artifact_uri"], batch_size=1000)
            audit_append(
                actor=None,
                action="backup.restore",
                object_type="installation",
                object_id=meta["id"],
                after={"taken_at": meta["taken_at"], "rows": sum(counts.values()), "versions": len(entries)},
                reason=f"restored from backup {meta['id']}",
            )
    except BaseException:
        # What is still running finishes first, so that no version lands after its model is deleted.
        uploads.shutdown(wait=True, cancel_futures=True)
        models.shutdown(wait=True, cancel_futures=True)
        for name in created:
            try:
                mlflow_gateway.registered_model_delete(name)
            except DependencyUnavailable:
                pass
        raise
    finally:
        uploads.shutdown(wait=True)
        models.shutdown(wait=True)
    return RestoreReport(
        rows=sum(counts.values()),
        versions=len(entries),
        artifacts=len(unique),
        registered_models=len(registry),
        seconds=time.monotonic() - started,
        counts=counts,
    )


def _expected_sha(meta: dict[str, Any], name: str) -> str:
    for section in ("database", "artifacts", "mlflow"):
        if meta[section]["file"] == name:
            return meta[section]["sha256"]
    raise BackupError(f"{META_FILE} does not name {name}")


@dataclass
class VerifyReport:
    audit: ChainReport
    artifacts_checked: int
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.audit.valid and not self.problems


def _artifact_problem(
    label: str, uri: str, manifest: dict, digest: str, listing: storage.Listing | None = None
) -> str | None:
    """What is wrong with one artifact, in a sentence naming the version; ``None`` when
    every file matches its manifest and the whole its digest."""
    try:
        check = storage.artifact_verify(uri, manifest, listing=listing)
    except (NotFound, DependencyUnavailable) as exc:
        return f"{label}: cannot read {uri}: {exc}"
    if not check["valid"]:
        kinds = {k: check[k] for k in ("changed", "missing", "unexpected") if check[k]}
        return f"{label}: {uri} does not match its manifest {kinds}"
    if digest and check["digest"] != digest:
        return f"{label}: {uri} has digest {check['digest']}, recorded {digest}"
    return None


def installation_verify(*, workers: int = 8) -> VerifyReport:
    """Re-read every version's artifact against its recorded digest and walk the
    audit chain."""
    rows = list(
        ModelVersion.objects.exclude(manifest={})
        .order_by("model__name", "version")
        .values_list("model__name", "version", "artifact_uri", "manifest", "digest")
    )
    try:
        listings = storage.s3_listings({r[2] for r in rows if storage.is_s3(r[2])}, workers=workers)
    except DependencyUnavailable as exc:
        raise BackupError(f"cannot list the artifacts: {exc}") from exc
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelgate-verify") as pool:
        # ``map`` keeps the versions' order: problems are reported model by model, version by version.
        found = pool.map(lambda r: _artifact_problem(f"{r[0]} v{r[1]}", r[2], r[3], r[4], listings.get(r[2])), rows)
        problems = [problem for problem in found if problem]
    return VerifyReport(audit=audit_verify(), artifacts_checked=len(rows), problems=problems)


def _dumped_audit_records(path: Path) -> list[AuditRecord]:
    with path.open(encoding="utf-8") as stream:
        lines = [line for line in stream if json.loads(line)["model"] == "lifecycle.auditrecord"]
    records = [item.object for item in serializers.deserialize("jsonl", lines)]
    return sorted(records, key=lambda record: record.pk)


def backup_verify(*, source: Path, workers: int = 8) -> VerifyReport:
    """Check a backup without restoring it: each file against ``backup.json``, every
    artifact file against its digest, and the audit chain as dumped."""
    meta = backup_meta(source)
    problems = []
    for name in (DATABASE_FILE, ARTIFACT_MANIFEST, MLFLOW_FILE):
        if not (source / name).is_file():
            problems.append(f"{name} is missing")
        elif _file_sha256(source / name) != _expected_sha(meta, name):
            problems.append(f"{name} does not match its digest in {META_FILE}")
    checked = 0
    if (source / ARTIFACT_MANIFEST).is_file():
        entries = json.loads((source / ARTIFACT_MANIFEST).read_text())["versions"]
        unique = {entry["digest"]: entry for entry in entries if entry["path"]}
        checked = len(unique)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelgate-verify") as pool:
            found = pool.map(
                lambda e: _artifact_problem(_label(e), str(source / e["path"]), e["manifest"], e["digest"]),
                unique.values(),
            )
            problems.extend(problem for problem in found if problem)
    records = _dumped_audit_records(source / DATABASE_FILE) if (source / DATABASE_FILE).is_file() else []
    audit = audit_chain_check(records, total=len(records))
    if len(records) != meta["database"]["counts"].get("lifecycle.auditrecord", 0):
        problems.append("the dump holds a different number of audit records than backup.json says")
    return VerifyReport(audit=audit, artifacts_checked=checked, problems=problems)
