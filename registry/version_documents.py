"""Stored version documents: the JSON a version is shown as, kept in the database.

Every read of versions (a page of the list, one version, an alias) shows each version as
the same JSON document (``VersionOut``). Building it takes the version row, its tags,
current metrics, aliases, dataset and creator: four queries and about 0.2 ms of Python
per version, most of a first read's time. So the document is built when a version
changes, not when it is read: every service that writes something a document shows
calls ``version_documents_refresh`` in its own transaction, and ``VersionDocument``
holds the rendered JSON with the key it was rendered for.

The key is the revisions (``registry/revisions.py``) of the version row, which every
change to its tags, metric values or aliases revises too, and of its dataset, the creator's
name and the settings the rendering depends on, as ``selectors.version_refs`` reads them
with each page. A read serves a stored document only when its key is the current one;
a change made around the services (a raw ``update()``, the admin) leaves the key behind,
and that version is then built anew, as before documents were stored, until its next
write through a service stores it again. A stored document is never served stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings

from registry import selectors
from registry.models import ModelVersion, VersionDocument

# A shared, stateless field for dates outside the usual case (see ``datetime_converter``).
_DATETIME = serializers.DateTimeField()
_UNSET = object()
_renderer = JSONRenderer()
_SEPARATOR = "\x1f"


def text(value: Any) -> str | None:
    return None if value is None else str(value)


def datetime_converter() -> Callable[[Any], str | None]:
    """What ``serializers.DateTimeField().to_representation`` does, faster for the usual
    case (aware datetimes shown in UTC, ISO 8601), and the field itself otherwise."""
    if not (
        settings.USE_TZ
        and api_settings.DATETIME_FORMAT.lower() == ISO_8601
        and timezone.get_current_timezone_name() == "UTC"
    ):
        return _DATETIME.to_representation

    def to_utc_iso(value: Any) -> str | None:
        if not isinstance(value, datetime) or value.tzinfo is None:
            return _DATETIME.to_representation(value)
        iso = value.astimezone(UTC).isoformat()
        return iso[:-6] + "Z" if iso.endswith("+00:00") else iso

    return to_utc_iso


def render_json(data: Any) -> bytes:
    """What the API's JSON renderer makes of ``data``, the same bytes."""
    return b"null" if data is None else _renderer.render(data)


def parent_number(version: ModelVersion) -> int | None:
    number = getattr(version, "out_parent_version", _UNSET)  # selectors' annotation
    if number is _UNSET:
        number = version.parent.version if version.parent_id else None
    return None if number is None else int(number)


def creator_name(version: ModelVersion) -> str | None:
    username = getattr(version, "out_created_by", _UNSET)
    if username is _UNSET:
        username = version.created_by.username if version.created_by_id else None
    return text(username)


def metric_records(version: ModelVersion, to_datetime: Callable[[Any], str | None]) -> list[dict[str, Any]]:
    return [
        {
            "name": text(record["name"]),
            "value": float(record["value"]),
            "source": text(record["source"]),
            "dataset_digest": text(record["dataset_digest"]),
            "recorded_at": to_datetime(record["recorded_at"]),
        }
        for record in selectors.version_metric_records(version)
    ]


def tags_of(version: ModelVersion) -> dict[str, str]:
    tag_map = getattr(version, "tag_map", None)
    if tag_map is not None:
        return dict(tag_map)
    return {row.key: row.value for row in version.tag_rows.all()}


def aliases_of(version: ModelVersion) -> list[str]:
    names = getattr(version, "alias_names", None)
    if names is not None:
        return list(names)
    return sorted(alias.name for alias in version.aliases.all())


def dataset_of(version: ModelVersion) -> dict[str, str] | None:
    if not version.dataset_id:
        return None
    name = getattr(version, "out_dataset_name", _UNSET)  # selectors' annotations
    if name is not _UNSET:
        return {"name": name, "digest": version.out_dataset_digest}
    return {"name": version.dataset.name, "digest": version.dataset.digest}


def mlflow_url(version: ModelVersion) -> str | None:
    base = settings.MLFLOW_UI_URL
    return f"{base.rstrip('/')}/#/models/{version.model.name}/versions/{version.version}" if base else None


def version_data(version: ModelVersion, to_datetime: Callable[[Any], str | None]) -> dict[str, Any]:
    """A version as ``VersionOut`` shows it (its declared fields, in order)."""
    selectors.version_details_load([version])
    return {
        "name": text(version.model.name),
        "version": int(version.version),
        "stage": text(version.stage),
        "status": text(version.status),
        "description": text(version.description),
        "run_id": text(version.run_id),
        "source": text(version.source),
        "artifact_uri": text(version.artifact_uri),
        "digest": text(version.digest),
        "size_bytes": None if version.size_bytes is None else int(version.size_bytes),
        "signature": version.signature,
        "metrics": selectors.version_metrics(version),
        "metric_records": metric_records(version, to_datetime),
        "tags": tags_of(version),
        "aliases": aliases_of(version),
        "parent_version": parent_number(version),
        "dataset": dataset_of(version),
        "created_by": creator_name(version),
        "created_at": to_datetime(version.created_at),
        "updated_at": to_datetime(version.updated_at),
        "stage_changed_at": to_datetime(version.stage_changed_at),
        "mlflow_url": mlflow_url(version),
    }


def rendering_context() -> str:
    """The settings a rendering depends on: where MLflow's UI is, the time zone of dates."""
    return f"{settings.MLFLOW_UI_URL}{_SEPARATOR}{timezone.get_current_timezone_name()}"


def document_key(ref: dict[str, Any], context: str) -> str:
    """The key of a version's rendering in the state ``ref`` (a ``version_refs`` row) shows."""
    return f"{ref['key_version']}{_SEPARATOR}{ref['key_dataset']}{_SEPARATOR}{context}{_SEPARATOR}{ref['key_creator']}"


def versions_build(pks: Iterable[int]) -> dict[int, str]:
    """The JSON of the versions with these primary keys, built from their rows now."""
    versions = selectors.versions_for_output(pks)
    to_datetime = datetime_converter()
    return {version.pk: render_json(version_data(version, to_datetime)).decode() for version in versions}


def version_documents_refresh(*, versions: Iterable[ModelVersion | int | None]) -> None:
    """Store the current document of each version, inside the caller's transaction.

    Called by every service after it writes a version, its tags, metrics, aliases or
    dataset, so that the next read of those versions finds them rendered. The key is
    read in the same transaction as the rows the document is built from, after the
    writes: a later change gives the rows new revisions and the stored key no longer
    matches it.
    """
    pks = sorted({v.pk if isinstance(v, ModelVersion) else int(v) for v in versions if v is not None})
    if not pks:
        return
    refs = list(selectors.version_refs(ModelVersion.objects.filter(pk__in=pks).order_by()))
    bodies = versions_build(pks)
    context = rendering_context()
    VersionDocument.objects.bulk_create(
        [VersionDocument(version_id=ref["pk"], key=document_key(ref, context), body=bodies[ref["pk"]]) for ref in refs],
        update_conflicts=True,
        unique_fields=["version"],
        update_fields=["key", "body"],
    )


def documents_of(refs: Sequence[dict[str, Any]]) -> list[str | None]:
    """The stored document of each ref that is current for it, ``None`` where it is not."""
    context = rendering_context()
    return [
        ref["doc_body"] if ref["doc_key"] is not None and ref["doc_key"] == document_key(ref, context) else None
        for ref in refs
    ]
