"""Reference profiles: each dataset's per-feature profile, built once per content digest
from the dataset the registry already reads, and the profile a version is monitored
against (its own dataset, else its model's)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction

from lifecycle.enqueue import task_enqueue
from lifecycle.monitoring.models import ReferenceProfile
from lifecycle.monitoring.profiles import ReferenceProfile as Profile
from lifecycle.monitoring.profiles import profile_build, profile_from_dict
from registry.datasets import content_digest, dataset_load
from registry.errors import Conflict
from registry.models import Dataset, ModelVersion

log = logging.getLogger(__name__)


def reference_profile_build(*, dataset: Dataset) -> ReferenceProfile:
    """The stored profile of ``dataset``'s content, built from the dataset on first use.

    Every column but the target is a feature; the target's distribution is the reference
    for prediction drift (what a model trained on it should answer in the same
    proportions). The digest is checked, so a file changed since registration is a
    conflict rather than a silently different reference."""
    existing = ReferenceProfile.objects.filter(digest=dataset.digest).first()
    if existing is not None:
        return existing
    frame, data = dataset_load(dataset.uri, dataset.format)
    if content_digest(data) != dataset.digest:
        raise Conflict(
            f"dataset {dataset} changed since it was registered (digest {dataset.digest[:12]}…); register it again",
            code="dataset_changed",
        )
    features = [str(c) for c in frame.columns if str(c) != dataset.target]
    prediction = frame[dataset.target] if dataset.target and dataset.target in frame.columns else None
    profile = profile_build(frame, features=features, prediction=prediction)
    try:
        with transaction.atomic():
            return ReferenceProfile.objects.create(
                digest=dataset.digest, target=dataset.target, rows=profile.rows, profile=profile.to_dict()
            )
    except IntegrityError:
        # Another worker built the same digest's profile first; both built the same thing.
        return ReferenceProfile.objects.get(digest=dataset.digest)


def reference_profile_of_version(*, version: ModelVersion) -> tuple[ReferenceProfile, Profile] | None:
    """The stored profile a version is compared with, and its parsed form; ``None`` when
    neither the version nor its model names a dataset."""
    # Read afresh: the caller's copy may predate a change of the model's dataset.
    version = ModelVersion.objects.select_related("dataset", "model__dataset").get(pk=version.pk)
    dataset = version.dataset or version.model.dataset
    if dataset is None:
        return None
    stored = reference_profile_build(dataset=dataset)
    return stored, profile_from_dict(stored.profile)


def reference_profile_on_dataset(*, dataset_id: int) -> None:
    """Build a freshly registered dataset's profile (a task runs this after the commit)."""
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is not None:
        reference_profile_build(dataset=dataset)


def _profile_enqueue(dataset_id: int) -> None:
    try:
        task_enqueue("lifecycle.reference_profile", args=[dataset_id])
    except Exception as exc:  # the first monitoring window builds it if the broker is down now
        log.warning("could not enqueue the reference profile of dataset %s: %s", dataset_id, exc)


def on_dataset_registered(sender: Any, *, action: str, target: Any, **_: Any) -> None:
    """A registered dataset gets its reference profile built after the commit, so that
    the first window of a version trained or evaluated on it does not wait for it."""
    if action == "dataset.create":
        transaction.on_commit(partial(_profile_enqueue, target.pk))
