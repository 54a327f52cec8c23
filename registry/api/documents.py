"""Versions served as rendered JSON: the document stored with each version
(``registry/version_documents.py``), served when its key is the current one, and
besides it the renderings this process has built, kept by the same key.

A list page, a version or an alias lookup reads, in one indexed query, each version's
stored document and the revisions of every row shown of it (``selectors.version_refs``),
and concatenates the documents whose key matches. A version changed around the services
(its stored document then behind) is served from what this process kept for that state,
or built by ``VersionOut``'s code and kept. A change to a version, its tags, metrics,
aliases or dataset gives those rows new revisions in the database itself
(``registry/revisions.py``), so neither a stored document nor a kept rendering is
served for a state it does not show, whichever process or code path made the change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

from django.conf import settings
from django.http import HttpResponse

from registry import version_documents


class RenderedVersions:
    """A bounded, thread-safe LRU of rendered versions."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get_many(self, keys: Sequence[Hashable]) -> list[str | None]:
        with self._lock:
            found = [self._items.get(key) for key in keys]
            for key, value in zip(keys, found, strict=True):
                if value is not None:
                    self._items.move_to_end(key)
        return found

    def put(self, key: Hashable, value: str) -> None:
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
render_json = version_documents.render_json


def versions_render(refs: Sequence[dict[str, Any]]) -> list[str]:
    """The JSON of each version in ``refs`` (rows of ``selectors.version_refs``), in order:
    its stored document where that is current, else what this process kept, else built."""
    found: list[str | None] = version_documents.documents_of(refs)
    if all(value is not None for value in found):
        return found  # type: ignore[return-value]
    context = version_documents.rendering_context()
    keys = {
        ref["pk"]: (ref["pk"], version_documents.document_key(ref, context))
        for ref, value in zip(refs, found, strict=True)
        if value is None
    }
    kept = dict(zip(keys, rendered_versions.get_many(list(keys.values())), strict=True))
    missing = [pk for pk, value in kept.items() if value is None]
    if missing:
        for pk, rendered in version_documents.versions_build(missing).items():
            kept[pk] = rendered
            # Built after the key was read: at least as new as what the key says, never older.
            rendered_versions.put(keys[pk], rendered)
    found = [value if value is not None else kept.get(ref["pk"]) for ref, value in zip(refs, found, strict=True)]
    return [value for value in found if value is not None]


class RenderedJSONResponse(HttpResponse):
    """A response whose JSON body is already rendered."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        super().__init__(body, status=status, content_type="application/json")


def version_response(ref: dict[str, Any], status: int = 200) -> HttpResponse:
    return RenderedJSONResponse(versions_render([ref])[0].encode(), status=status)


def version_page_response(
    refs: Sequence[dict[str, Any]], *, next_link: str | None, previous_link: str | None
) -> HttpResponse:
    """``{"results": [...], "next": ..., "previous": ...}`` as the paginator writes it."""
    body = "".join(
        (
            '{"results":[',
            ",".join(versions_render(refs)),
            '],"next":',
            render_json(next_link).decode(),
            ',"previous":',
            render_json(previous_link).decode(),
            "}",
        )
    )
    return RenderedJSONResponse(body.encode())
