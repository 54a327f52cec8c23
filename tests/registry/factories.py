"""Registry rows written straight with the ORM, for tests of the API that only reads them.

Registering a version for real needs MLflow and an artifact store
(``test_mlflow_integration.py`` does that); these factories skip both, so a test can set
up versions with stages, metrics, tags and aliases in a few milliseconds.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from registry import selectors, storage, version_documents
from registry.choices import MetricSource, Stage
from registry.models import (
    Alias,
    Dataset,
    ModelTag,
    ModelVersion,
    RegisteredModel,
    Team,
    VersionDocument,
    VersionMetric,
    VersionTag,
)
from registry.services import api_token_issue, membership_set, team_ensure
from tests.conftest import Actor


def actor_create(
    username: str,
    memberships: dict[str, str] | None = None,
    *,
    superuser: bool = False,
    scopes: list[str] | None = None,
    expires_in: timedelta | None = None,
    revoked: bool = False,
    user: Any = None,
) -> Actor:
    """A user (or a new token of an existing ``user``) with an API client using the token."""
    if user is None:
        user = get_user_model().objects.create_user(
            username=username, password=f"pw-{username}-123!", is_superuser=superuser, is_staff=superuser
        )
    for team_name, role in (memberships or {}).items():
        membership_set(user=user, team=team_ensure(name=team_name), role=role)
    token, plaintext = api_token_issue(user=user, name=username, scopes=scopes, expires_in=expires_in)
    if revoked:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return Actor(user, plaintext, client)


def model_row_create(
    *, team: Team, name: str, description: str = "", tags: dict[str, str] | None = None, created_by: Any = None
) -> RegisteredModel:
    model = RegisteredModel.objects.create(name=name, team=team, description=description, created_by=created_by)
    ModelTag.objects.bulk_create(ModelTag(model=model, key=k, value=v) for k, v in (tags or {}).items())
    return model


def artifact_write(directory: Path, *, content: str = "model") -> Path:
    """A tiny model directory: an ``MLmodel`` file and a weights file."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: tests\n")
    (directory / "model.pkl").write_text(content)
    return directory


def version_create(
    *,
    model: RegisteredModel,
    version: int | None = None,
    stage: str = Stage.TRAINING,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    artifact_dir: Path | None = None,
    run_id: str = "",
    created_by: Any = None,
    created_at: datetime | None = None,
) -> ModelVersion:
    """A version row as registration would leave it, numbered after the model's last one.

    Without ``artifact_dir`` the artifact URI points nowhere: enough for every call that
    only reads the row.
    """
    if version is None:
        last = ModelVersion.objects.filter(model=model).order_by("-version").values_list("version", flat=True).first()
        version = (last or 0) + 1
    if artifact_dir is not None:
        uri = str(artifact_dir)
        manifest = storage.artifact_manifest(uri)
    else:
        uri = f"/nonexistent/{model.name}/{version}"
        manifest = {"MLmodel": {"sha256": "0" * 64, "size": 0}}
    row = ModelVersion.objects.create(
        model=model,
        version=version,
        stage=stage,
        run_id=run_id,
        source=uri,
        artifact_uri=uri,
        digest=storage.manifest_digest(manifest),
        size_bytes=storage.manifest_size(manifest),
        manifest=manifest,
        created_by=created_by,
    )
    if created_at is not None:
        # auto_now_add ignores a value given to create().
        ModelVersion.objects.filter(pk=row.pk).update(created_at=created_at)
        row.created_at = created_at
    now = timezone.now()
    VersionMetric.objects.bulk_create(
        VersionMetric(version=row, name=name, value=value, source=MetricSource.MANUAL, recorded_at=now)
        for name, value in (metrics or {}).items()
    )
    VersionTag.objects.bulk_create(VersionTag(version=row, key=k, value=v) for k, v in (tags or {}).items())
    return row


def alias_create(*, version: ModelVersion, name: str) -> Alias:
    return Alias.objects.create(model=version.model, name=name, version=version)


def dataset_row_create(*, team: Team, name: str, uri: str = "builtin:iris", target: str = "target") -> Dataset:
    return Dataset.objects.create(
        team=team, name=name, uri=uri, format="builtin", target=target, digest="0" * 64, profile={"rows": 0}
    )


def document_assert_current(version: ModelVersion) -> None:
    """The version's stored document shows it as it is now, under the key a read checks.

    Fails when the last write left the document behind (a writer that did not store it).
    """
    stored = VersionDocument.objects.filter(version_id=version.pk).first()
    assert stored is not None, f"v{version.version} has no stored document"
    ref = selectors.version_refs(ModelVersion.objects.filter(pk=version.pk)).get()
    assert stored.key == version_documents.document_key(ref, version_documents.rendering_context()), (
        f"v{version.version}'s stored document is behind its rows"
    )
    built = version_documents.versions_build([version.pk])[version.pk]
    assert json.loads(stored.body) == json.loads(built)
