"""Artifact storage: S3 through boto3, or a local directory, addressed by URI.

An artifact is a file or a directory tree. Its *manifest* maps each relative path to
its sha256 and size; its *digest* is the sha256 of the sorted manifest, so a directory
has one digest that changes when any byte of any file does. The manifest is kept at
registration so that a failed verification can name the file that changed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from django.conf import settings

from registry.errors import ArtifactIntegrityError, DependencyUnavailable, InvalidInput, NotFound

CHUNK = 1024 * 1024
Manifest = dict[str, dict[str, Any]]
# MLflow writes this file into a model's directory when it loads the model by its
# registry URI, which on a local artifact store is the stored artifact itself; it is not
# part of what was registered.
MLFLOW_MANAGED_FILES = frozenset({"registered_model_meta"})


def _registered_content(relative: str) -> bool:
    return relative not in MLFLOW_MANAGED_FILES


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3(uri: str) -> S3Location:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InvalidInput(f"{uri!r} is not an s3://bucket/key URI", details={"uri": "not an s3 URI"})
    return S3Location(parsed.netloc, parsed.path.lstrip("/"))


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def local_path(uri: str) -> Path | None:
    """The filesystem path of a ``file://`` URI or a plain path, else ``None``."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri)
    return None


def local_source_check(uri: str, *, field: str) -> None:
    """Refuse a path on the server outside ``MODELGATE_LOCAL_SOURCE_ROOTS`` (after
    following links): what a caller names is read, and may be copied into MLflow."""
    path = local_path(uri)
    if path is None:
        return
    resolved = path.expanduser().resolve()
    roots = settings.MODELGATE_LOCAL_SOURCE_ROOTS
    if any(resolved == root or root in resolved.parents for root in roots):
        return
    allowed = ", ".join(str(root) for root in roots) or "none"
    raise InvalidInput(
        f"{field} {uri!r} is outside the server directories ModelGate reads from "
        f"(MODELGATE_LOCAL_SOURCE_ROOTS: {allowed}); use an s3:// URI",
        details={field: "outside the directories the server may read"},
    )


@lru_cache(maxsize=4)
def _s3_client(endpoint_url: str | None, region: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(
            signature_version="s3v4",
            connect_timeout=3,
            read_timeout=30,
            # A registry request should fail fast with 503, not retry for a minute.
            retries={"max_attempts": 2, "mode": "standard"},
            # One client serves every thread: backup, restore and verify read with a pool
            # of workers, each of whose artifacts may read its files side by side.
            max_pool_connections=32,
        ),
    )


def s3_client() -> Any:
    return _s3_client(settings.AWS_ENDPOINT_URL, settings.AWS_DEFAULT_REGION)


@contextmanager
def s3_errors(uri: str) -> Iterator[None]:
    """Translate boto3 failures into the registry's errors, naming the URI."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in {"NoSuchKey", "NoSuchBucket", "404", "NotFound"} or status == 404:
            raise NotFound(f"no artifact at {uri} ({code or status})") from exc
        if code in {"AccessDenied", "403"} or status == 403:
            raise DependencyUnavailable("artifacts", f"access to {uri} was denied by the S3 endpoint") from exc
        raise DependencyUnavailable("artifacts", f"S3 failed for {uri}: {code or status}") from exc
    except (EndpointConnectionError, BotoCoreError) as exc:
        raise DependencyUnavailable("artifacts", f"S3 endpoint unreachable for {uri}: {exc}") from exc


def sse_arguments() -> dict[str, str]:
    """Server-side encryption arguments for every object ModelGate writes."""
    if not settings.MODELGATE_S3_SSE:
        return {}
    args = {"ServerSideEncryption": settings.MODELGATE_S3_SSE}
    if settings.MODELGATE_S3_SSE == "aws:kms" and settings.MODELGATE_S3_SSE_KMS_KEY_ID:
        args["SSEKMSKeyId"] = settings.MODELGATE_S3_SSE_KMS_KEY_ID
    return args


def _hash_stream(stream: IO[bytes], sink: IO[bytes] | None = None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), size


def manifest_digest(manifest: Manifest) -> str:
    """sha256 over ``path\\tsha256\\tsize`` lines in path order."""
    lines = "".join(f"{path}\t{entry['sha256']}\t{entry['size']}\n" for path, entry in sorted(manifest.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def manifest_size(manifest: Manifest) -> int:
    return sum(int(entry["size"]) for entry in manifest.values())


def _s3_keys(location: S3Location) -> list[tuple[str, str]]:
    """``(relative path, key)`` of every object under the location ("" for a single object)."""
    client = s3_client()
    prefix = location.key.rstrip("/")
    keys: list[tuple[str, str]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=f"{prefix}/" if prefix else ""):
        for item in page.get("Contents", []):
            keys.append((item["Key"][len(prefix) + 1 if prefix else 0 :], item["Key"]))
    if not keys and prefix:
        client.head_object(Bucket=location.bucket, Key=prefix)
        keys.append(("", prefix))
    return keys


Listing = list[tuple[str, str]]
# A parent prefix is listed once for all its artifacts only while it holds few objects
# besides theirs: past this many others (plus a few per artifact) each artifact is
# listed by itself, so a prefix full of unrelated objects costs no more than before.
_FOREIGN_KEYS_ALLOWED = 1000


def _parent(key: str) -> str:
    return key.rsplit("/", 1)[0] + "/" if "/" in key else ""


def _listing_by_parent(bucket: str, parent: str, artifact_keys: Collection[str]) -> dict[str, Listing] | None:
    """The objects of artifacts that share ``parent``, from one paginated listing of it;
    ``None`` when the parent holds too many other objects to be worth it."""
    children: dict[str, Listing] = {key: [] for key in artifact_keys}
    single: dict[str, str] = {}
    foreign = 0
    allowed = _FOREIGN_KEYS_ALLOWED + 10 * len(children)
    paginator = s3_client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=parent):
        for item in page.get("Contents", []):
            key = item["Key"]
            artifact_key = parent + key[len(parent) :].split("/", 1)[0]
            if artifact_key not in children:
                foreign += 1
                if foreign > allowed:
                    return None
            elif key == artifact_key:
                single[artifact_key] = key
            else:
                children[artifact_key].append((key[len(artifact_key) + 1 :], key))
    # As ``_s3_keys``: the objects under ``key/``, else the object ``key`` itself.
    return {key: found or ([("", single[key])] if key in single else []) for key, found in children.items()}


def s3_listings(uris: Collection[str], *, workers: int = 8) -> dict[str, Listing]:
    """``(relative path, key)`` of every object of each S3 artifact in ``uris`` (an empty
    list for an artifact with none), with as few list requests as their layout allows.

    Artifacts whose keys share a parent (``…/models/fraud/1``, ``…/models/fraud/2``,
    ``…/restored/<digest>``) are listed together, a thousand objects a request, instead
    of one request each: what a backup or a verification of every version costs in
    listing grows with the number of objects, not with the number of artifacts.
    """
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for uri in uris:
        location = parse_s3(uri)
        key = location.key.rstrip("/")
        groups.setdefault((location.bucket, _parent(key) if key else ""), {})[key] = uri
    found: dict[str, Listing] = {}

    def alone(bucket: str, key: str) -> Listing:
        try:
            with s3_errors(f"s3://{bucket}/{key}"):
                return _s3_keys(S3Location(bucket, key))
        except NotFound:
            return []

    def list_group(bucket: str, parent: str, members: dict[str, str]) -> dict[str, Listing]:
        listed = None
        if len(members) > 1 and all(members):
            try:
                with s3_errors(f"s3://{bucket}/{parent}"):
                    listed = _listing_by_parent(bucket, parent, members)
            except NotFound:
                listed = None  # no such bucket: each artifact is then found missing by itself
        if listed is None:
            listed = {key: alone(bucket, key) for key in members}
        return {members[key]: listing for key, listing in listed.items()}

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="modelgate-s3-list") as pool:
        for result in pool.map(lambda group: list_group(*group[0], group[1]), groups.items()):
            found.update(result)
    return found


def _local_files(root: Path) -> list[tuple[str, Path]]:
    if root.is_file():
        return [("", root)]
    if not root.is_dir():
        raise NotFound(f"no artifact at {root}")
    return sorted((path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file())


@contextmanager
def _materialised(uri: str) -> Iterator[Path]:
    """A local copy of an artifact that is neither on S3 nor on this filesystem
    (``mlflow-artifacts:``, ``runs:``, ``models:``), fetched through MLflow."""
    from registry import mlflow_gateway

    with tempfile.TemporaryDirectory(prefix="modelgate-artifact-") as tmp:
        yield mlflow_gateway.artifacts_download(uri, Path(tmp))


@dataclass
class ArtifactScan:
    """What one read of an artifact gives: its manifest, and the bytes of the files it
    was asked to keep (small ones such as ``MLmodel``)."""

    manifest: Manifest
    kept: dict[str, bytes]


# Reads the files of an S3 artifact side by side: a model directory of many small files
# costs one round trip more than its largest file, not one per file.
_S3_READERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="modelgate-s3-read")


def _listed(uri: str, location: S3Location, listing: Listing | None) -> Listing:
    """The artifact's objects: as listed already (``s3_listings``), else listed now."""
    if listing is None:
        return _s3_keys(location)
    if not listing:
        raise NotFound(f"no artifact at {uri}")
    return listing


def artifact_scan(uri: str, *, keep: Collection[str] = (), listing: Listing | None = None) -> ArtifactScan:
    """Read every byte of the artifact once: its manifest, and the files named in ``keep``.
    ``listing`` is the artifact's objects when ``s3_listings`` found them already."""
    entries: list[tuple[str, str, int, bytes | None]] = []

    def digest(relative: str, stream: IO[bytes]) -> tuple[str, str, int, bytes | None]:
        sink = io.BytesIO() if relative in keep else None
        sha, size = _hash_stream(stream, sink)
        return relative, sha, size, None if sink is None else sink.getvalue()

    if is_s3(uri):
        location = parse_s3(uri)
        client = s3_client()

        def read(relative: str, key: str) -> tuple[str, str, int, bytes | None]:
            return digest(relative, client.get_object(Bucket=location.bucket, Key=key)["Body"])

        with s3_errors(uri):
            keys = [
                (relative, key) for relative, key in _listed(uri, location, listing) if _registered_content(relative)
            ]
            if len(keys) == 1:
                entries = [read(*keys[0])]
            else:
                entries = [future.result() for future in [_S3_READERS.submit(read, *item) for item in keys]]
    elif (path := local_path(uri)) is not None:
        for relative, file in _local_files(path):
            if _registered_content(relative):
                with file.open("rb") as stream:
                    entries.append(digest(relative, stream))
    else:
        with _materialised(uri) as root:
            return artifact_scan(str(root), keep=keep)
    if not entries:
        raise NotFound(f"the artifact at {uri} is empty")
    return ArtifactScan(
        manifest={relative: {"sha256": sha, "size": size} for relative, sha, size, _ in entries},
        kept={relative: content for relative, _, _, content in entries if content is not None},
    )


def artifact_manifest(uri: str, *, listing: Listing | None = None) -> Manifest:
    """Read every byte of the artifact once and return its manifest."""
    return artifact_scan(uri, listing=listing).manifest


def _object_key(location: S3Location, relative: str) -> str:
    if not relative:
        return location.key
    return f"{location.key.rstrip('/')}/{relative}" if location.key else relative


def read_file(uri: str, relative: str = "") -> bytes | None:
    """One file of an artifact (``MLmodel``; ``""`` for a single-file artifact), or
    ``None`` when it has none."""
    try:
        if is_s3(uri):
            location = parse_s3(uri)
            with s3_errors(uri):
                return (
                    s3_client().get_object(Bucket=location.bucket, Key=_object_key(location, relative))["Body"].read()
                )
        if (path := local_path(uri)) is not None:
            target = path / relative if relative else path
            return target.read_bytes() if target.is_file() else None
        with _materialised(uri) as root:
            target = root / relative if relative else root
            return target.read_bytes() if target.is_file() else None
    except NotFound:
        return None


def compare_manifests(expected: Manifest, actual: Manifest) -> dict[str, list[str]]:
    """The differences that make an artifact fail verification, by kind."""
    return {
        "changed": sorted(p for p in expected.keys() & actual.keys() if expected[p]["sha256"] != actual[p]["sha256"]),
        "missing": sorted(expected.keys() - actual.keys()),
        "unexpected": sorted(actual.keys() - expected.keys()),
    }


def artifact_verify(uri: str, expected: Manifest, *, listing: Listing | None = None) -> dict[str, Any]:
    """Re-read the artifact and report whether it still matches its manifest."""
    actual = artifact_manifest(uri, listing=listing)
    problems = compare_manifests(expected, actual)
    valid = not any(problems.values())
    return {"valid": valid, "digest": manifest_digest(actual), **problems}


def artifact_download(uri: str, expected: Manifest, destination: Path, *, listing: Listing | None = None) -> Path:
    """Download the artifact into ``destination``, verifying every file as it arrives.

    Nothing is left in ``destination`` when verification fails. ``listing`` is the
    artifact's objects when ``s3_listings`` found them already.
    """
    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=destination))
    try:
        actual: Manifest = {}
        if is_s3(uri):
            location = parse_s3(uri)
            with s3_errors(uri):
                for relative, key in _listed(uri, location, listing):
                    if not _registered_content(relative):
                        continue
                    target = staging / (relative or Path(location.key).name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    body = s3_client().get_object(Bucket=location.bucket, Key=key)["Body"]
                    with target.open("wb") as sink:
                        sha, size = _hash_stream(body, sink)
                    actual[relative] = {"sha256": sha, "size": size}
        else:
            source = local_path(uri)
            if source is None:
                with _materialised(uri) as root:
                    return artifact_download(str(root), expected, destination)
            for relative, file in _local_files(source):
                if not _registered_content(relative):
                    continue
                target = staging / (relative or file.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                with file.open("rb") as stream, target.open("wb") as sink:
                    sha, size = _hash_stream(stream, sink)
                actual[relative] = {"sha256": sha, "size": size}
        problems = compare_manifests(expected, actual)
        if any(problems.values()):
            raise ArtifactIntegrityError(
                f"the artifact at {uri} does not match the digest recorded at registration",
                details=problems,
            )
        for item in staging.iterdir():
            final = destination / item.name
            if final.exists():
                shutil.rmtree(final) if final.is_dir() else final.unlink()
            item.rename(final)
        return destination
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def presigned_urls(uri: str, manifest: Manifest, *, expires_in: int) -> dict[str, str] | None:
    """Time-limited download URLs per file for S3 artifacts; ``None`` for local ones."""
    if not is_s3(uri):
        return None
    location = parse_s3(uri)
    client = s3_client()
    urls: dict[str, str] = {}
    with s3_errors(uri):
        for relative in manifest:
            urls[relative] = client.generate_presigned_url(
                "get_object",
                Params={"Bucket": location.bucket, "Key": _object_key(location, relative)},
                ExpiresIn=expires_in,
            )
    return urls


# Files up to this size are read once, hashed and sent in one request; larger ones go
# through boto3's multipart transfer.
_SINGLE_PUT_MAX = 16 * 1024 * 1024


def _upload_checked(
    client: Any, file: Path, bucket: str, key: str, expected: dict[str, Any] | None, relative: str
) -> None:
    """Send one file; with ``expected`` (its manifest entry), only the bytes that hash
    to it, and with that sha256 for the store to check on arrival."""
    if file.stat().st_size > _SINGLE_PUT_MAX:
        if expected is not None:
            with file.open("rb") as stream:
                sha, _ = _hash_stream(stream)
            if sha != expected["sha256"]:
                raise ArtifactIntegrityError(
                    f"{file} does not match its recorded digest", details={"changed": [relative]}
                )
        client.upload_file(str(file), bucket, key, ExtraArgs=sse_arguments() or None)
        return
    data = file.read_bytes()
    digest = hashlib.sha256(data)
    if expected is not None and digest.hexdigest() != expected["sha256"]:
        raise ArtifactIntegrityError(f"{file} does not match its recorded digest", details={"changed": [relative]})
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
        **sse_arguments(),
    )


def upload_directory(source: Path, destination_uri: str, *, expected: Manifest | None = None) -> str:
    """Copy a local file or directory to the artifact store (S3 with server-side
    encryption when configured, or a local directory) and return its URI.

    With ``expected``, the manifest the files must match, each file is checked as it is
    read, before it is sent: a file that differs or is missing is
    ``ArtifactIntegrityError`` naming it, as is one the manifest does not list.
    """
    files = _local_files(source)
    if expected is not None:
        problems = compare_manifests(
            expected, {relative: expected.get(relative, {"sha256": ""}) for relative, _ in files}
        )
        if any(problems.values()):
            raise ArtifactIntegrityError(f"{source} does not hold the files of its manifest", details=problems)
    if is_s3(destination_uri):
        location = parse_s3(destination_uri)
        client = s3_client()
        with s3_errors(destination_uri):
            for relative, file in files:
                key = f"{location.key.rstrip('/')}/{relative or file.name}"
                entry = None if expected is None else expected[relative]
                _upload_checked(client, file, location.bucket, key, entry, relative)
        return destination_uri
    target_root = local_path(destination_uri)
    if target_root is None:
        raise InvalidInput(f"cannot write artifacts to {destination_uri}")
    for relative, file in files:
        target = target_root / (relative or file.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if expected is None:
            shutil.copyfile(file, target)
            continue
        with file.open("rb") as stream, target.open("wb") as sink:
            sha, _ = _hash_stream(stream, sink)
        if sha != expected[relative]["sha256"]:
            target.unlink()
            raise ArtifactIntegrityError(f"{file} does not match its recorded digest", details={"changed": [relative]})
    return str(target_root)


def store_check() -> str:
    """``"ok"`` when the configured artifact root answers, else a reason."""
    root = settings.MODELGATE_ARTIFACT_ROOT
    try:
        if is_s3(root):
            location = parse_s3(root)
            with s3_errors(root):
                s3_client().head_bucket(Bucket=location.bucket)
            return "ok"
        path = local_path(root)
        if path is None:
            return f"unsupported artifact root {root}"
        path.mkdir(parents=True, exist_ok=True)
        return "ok" if os.access(path, os.W_OK) else f"{path} is not writable"
    except (DependencyUnavailable, NotFound) as exc:
        return str(exc)
