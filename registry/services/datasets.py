"""Datasets a team evaluates its models on: read once at registration for a digest and
a profile, and looked up by name for the models and versions that name them."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from registry import storage
from registry.choices import DatasetFormat, Role
from registry.datasets import content_digest, dataset_load, format_for, frame_profile
from registry.errors import Conflict, InvalidInput
from registry.models import Dataset, Team
from registry.permissions import require_role
from registry.services.changes import change_announce
from registry.services.validation import name_validate
from registry.version_documents import version_documents_refresh


def dataset_create(
    *, actor: AbstractBaseUser, team: Team, name: str, uri: str, format: str | None = None, target: str = ""
) -> Dataset:
    """Register a dataset: read it once for its digest and profile."""
    require_role(actor, team, Role.DEVELOPER, action="creating a dataset")
    name_validate(name)
    if not isinstance(uri, str) or not uri.strip() or len(uri) > 1024:
        raise InvalidInput("uri must be a non-empty string of at most 1024 characters", details={"uri": "required"})
    if format is not None and format not in DatasetFormat.values:
        raise InvalidInput(f"format {format!r} is not one of {DatasetFormat.values}", details={"format": "invalid"})
    fmt = format_for(uri, format)
    storage.local_source_check(uri, field="uri")
    if Dataset.objects.filter(team=team, name=name).exists():
        raise Conflict(f"team {team.name!r} already has a dataset named {name!r}")
    frame, data = dataset_load(uri, fmt)
    if target and target not in frame.columns:
        raise InvalidInput(f"target column {target!r} is not in the dataset", details={"target": "no such column"})
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                team=team,
                name=name,
                uri=uri,
                format=fmt,
                target=target,
                digest=content_digest(data),
                size_bytes=len(data),
                profile=frame_profile(frame),
                created_by=actor,
            )
            change_announce(
                "dataset.create", actor=actor, target=dataset, before=None, after={"uri": uri, "digest": dataset.digest}
            )
    except IntegrityError as exc:
        raise Conflict(f"team {team.name!r} already has a dataset named {name!r}") from exc
    return dataset


def dataset_in_team(team: Team, name: Any) -> Dataset | None:
    """The team's dataset with this name; ``None`` when no name is given, and
    ``InvalidInput`` (the caller's ``dataset`` field) when the team has none by it."""
    if name in (None, ""):
        return None
    dataset = Dataset.objects.filter(team=team, name=str(name)).first()
    if dataset is None:
        raise InvalidInput(f"team {team.name!r} has no dataset {name!r}", details={"dataset": "unknown dataset"})
    return dataset


def dataset_digest_refresh(*, dataset: Dataset, digest: str) -> Dataset:
    """Record that a dataset's file now has another digest (read by an evaluation)."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.digest == digest:
            return locked
        before = {"digest": locked.digest}
        locked.digest = digest
        locked.save(update_fields=["digest"])
        # Every version trained or evaluated on it shows the dataset's digest.
        version_documents_refresh(versions=locked.versions.values_list("pk", flat=True))
        change_announce("dataset.digest_change", actor=None, target=locked, before=before, after={"digest": digest})
    return locked
