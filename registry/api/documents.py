"""Versions rendered once: the JSON of ``VersionOut`` kept per process, keyed by the
revisions of every row shown of a version (``selectors.version_refs``).

A list page, a version or an alias lookup reads only those keys (one indexed query)
and serves the rendered bytes of the versions it has seen in that state before; the rest
are built by ``VersionOut`` as always and kept. A change to a version, its tags,
metrics, aliases or dataset gives those rows new revisions in the database itself
(``registry/revisions.py``), so a kept rendering is never served for a state it does
not show, whichever process or code path made the change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from registry import selectors
from registry.api.serializers import VersionOut

_KEY_FIELDS = ("pk", "key_version", "key_dataset", "key_creator", "key_tags", "key_metrics", "key_aliases")


class RenderedVersions:
    """A bounded, thread-safe LRU of rendered versions."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get_many(self, keys: Sequence[Hashable]) -> list[bytes | None]:
        with self._lock:
            found = [self._items.get(key) for key in keys]
            for key, value in zip(keys, found, strict=True):
                if value is not None:
                    self._items.move_to_end(key)
        return found

    def put(self, key: Hashable, value: bytes) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


rendered_versions = RenderedVersions(settings.MODELGATE_RENDERED_VERSIONS)
_renderer = JSONRenderer()


def render_json(data: Any) -> bytes:
    """What the API's JSON renderer makes of ``data``, the same bytes."""
    return b"null" if data is None else _renderer.render(data)


def versions_render(refs: Sequence[dict[str, Any]]) -> list[bytes]:
    """The JSON of each version in ``refs`` (rows of ``selectors.version_refs``), in order."""
    # What else a rendering depends on: where MLflow's UI is, the time zone of dates.
    context = (settings.MLFLOW_UI_URL, timezone.get_current_timezone_name())
    keys = [(*(ref[field] for field in _KEY_FIELDS), *context) for ref in refs]
    found = rendered_versions.get_many(keys)
    missing = {ref["pk"]: key for ref, key, value in zip(refs, keys, found, strict=True) if value is None}
    if missing:
        built = {}
        versions = selectors.versions_for_output(missing)
        for version, data in zip(versions, VersionOut(versions, many=True).data, strict=True):
            built[version.pk] = rendered = render_json(data)
            # Read after the key: at least as new as what the key says, never older.
            rendered_versions.put(missing[version.pk], rendered)
        found = [value if value is not None else built.get(ref["pk"]) for ref, value in zip(refs, found, strict=True)]
    return [value for value in found if value is not None]


class RenderedJSONResponse(HttpResponse):
    """A response whose JSON body is already rendered."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        super().__init__(body, status=status, content_type="application/json")


def version_response(ref: dict[str, Any], status: int = 200) -> HttpResponse:
    return RenderedJSONResponse(versions_render([ref])[0], status=status)


def version_page_response(
    refs: Sequence[dict[str, Any]], *, next_link: str | None, previous_link: str | None
) -> HttpResponse:
    """``{"results": [...], "next": ..., "previous": ...}`` as the paginator writes it."""
    results = b",".join(versions_render(refs))
    body = b"".join(
        (
            b'{"results":[',
            results,
            b'],"next":',
            render_json(next_link),
            b',"previous":',
            render_json(previous_link),
            b"}",
        )
    )
    return RenderedJSONResponse(body)
