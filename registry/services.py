"""Every write of the registry: one function per use case, the actor passed explicitly.

External systems are called before the database transaction that records their result,
so a failure of MLflow or S3 leaves nothing half-written here; an MLflow version whose
database row was never written is picked up by ``mlflow_sync``, never lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry import mlflow_gateway, selectors, storage
from registry.choices import STAGE_ALIASES, DatasetFormat, MetricSource, Role, TaskType, TokenScope
from registry.datasets import content_digest, dataset_load, format_for, frame_profile
from registry.errors import Conflict, DependencyUnavailable, Forbidden, InvalidInput, NotFound
from registry.models import (
    NAME_PATTERN,
    Alias,
    ApiToken,
    Dataset,
    Membership,
    ModelTag,
    ModelVersion,
    RegisteredModel,
    Team,
    VersionMetric,
    VersionTag,
)
from registry.permissions import require_role
from registry.policy import policy_validate
from registry.signals import registry_changed

logger = logging.getLogger(__name__)

_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")


# --- validation shared by the use cases ---------------------------------------------


def name_validate(value: Any, *, field_name: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(
            f"{field_name} {value!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            details={field_name: "invalid name"},
        )
    return value


def tags_validate(tags: Any, *, field_name: str = "tags") -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise InvalidInput(
            f"{field_name} must be an object of string keys and values", details={field_name: "not an object"}
        )
    problems = {}
    for key, value in tags.items():
        if not _TAG_KEY.match(str(key)):
            problems[f"{field_name}.{key}"] = "tag keys are 1-128 letters, digits or _ . : / -"
        elif not isinstance(value, str | int | float | bool) or len(str(value)) > 512:
            problems[f"{field_name}.{key}"] = "tag values are strings of at most 512 characters"
    if problems:
        raise InvalidInput(f"{field_name} has invalid entries: {', '.join(problems)}", details=problems)
    return {str(k): str(v) for k, v in tags.items()}


def _tags_replace(
    rows_model: type[ModelTag] | type[VersionTag], owner_field: str, owner: Any, tags: dict[str, str]
) -> None:
    rows_model.objects.filter(**{owner_field: owner}).exclude(key__in=list(tags)).delete()
    for key, value in tags.items():
        rows_model.objects.update_or_create(**{owner_field: owner, "key": key}, defaults={"value": value})


def _changed(
    action: str, *, actor: Any, target: Any, before: dict | None, after: dict | None, reason: str = ""
) -> None:
    registry_changed.send(
        sender=type(target), action=action, actor=actor, target=target, before=before, after=after, reason=reason
    )


# --- teams, memberships and tokens --------------------------------------------------


def team_ensure(*, name: str) -> Team:
    """The team with this name, created when missing."""
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", name or ""):
        raise InvalidInput(
            f"team name {name!r} is invalid: lower-case letters, digits, '-' or '_'", details={"team": "invalid"}
        )
    team, _ = Team.objects.get_or_create(name=name)
    return team


def membership_set(*, user: AbstractBaseUser, team: Team, role: str) -> Membership:
    if role not in Role.values:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(Role.values)}", details={"role": "invalid"})
    membership, _ = Membership.objects.update_or_create(user=user, team=team, defaults={"role": role})
    return membership


def _token_hash(plaintext: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is as safe as a slow one here
    # and keeps authentication to one indexed lookup.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def api_token_issue(
    *, user: AbstractBaseUser, name: str = "", scopes: list[str] | None = None, expires_in: timedelta | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its plaintext, which is shown only once."""
    scopes = list(scopes or [TokenScope.READ, TokenScope.WRITE])
    bad = [s for s in scopes if s not in TokenScope.values]
    if bad:
        raise InvalidInput(f"unknown token scopes {bad}; expected {TokenScope.values}", details={"scopes": "invalid"})
    prefix = secrets.token_hex(6)
    plaintext = f"mg_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        token_hash=_token_hash(plaintext),
        scopes=scopes,
        expires_at=timezone.now() + expires_in if expires_in else None,
    )
    return token, plaintext


def api_token_authenticate(plaintext: str) -> ApiToken:
    """The live token for this plaintext, or ``Forbidden`` saying why it is refused."""
    token = selectors.api_token_find(token_hash=_token_hash(plaintext))
    if token is None:
        raise Forbidden("invalid token")
    now = timezone.now()
    if token.revoked_at is not None:
        raise Forbidden("token revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise Forbidden("token expired")
    if not token.user.is_active:
        raise Forbidden("user inactive")
    if token.last_used_at is None or now - token.last_used_at > settings.MODELGATE_TOKEN_TOUCH_INTERVAL:
        # Touched at most once a minute: a write per API call would serialise CI traffic.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def user_with_token(
    *, username: str, team_name: str, role: str, expires_days: int | None = None, scopes: list[str] | None = None
) -> tuple[AbstractBaseUser, str]:
    """Bootstrap: user, team and membership created when missing, and a new token."""
    user_model = get_user_model()
    with transaction.atomic():
        user, _ = user_model.objects.get_or_create(username=username)
        team = team_ensure(name=team_name)
        membership_set(user=user, team=team, role=role)
        _, plaintext = api_token_issue(
            user=user,
            name=f"issued for {username}",
            scopes=scopes,
            expires_in=timedelta(days=expires_days) if expires_days else None,
        )
    return user, plaintext


# --- datasets -----------------------------------------------------------------------


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
            _changed(
                "dataset.create", actor=actor, target=dataset, before=None, after={"uri": uri, "digest": dataset.digest}
            )
    except IntegrityError as exc:
        raise Conflict(f"team {team.name!r} already has a dataset named {name!r}") from exc
    return dataset


def _dataset_in_team(team: Team, name: Any) -> Dataset | None:
    if name in (None, ""):
        return None
    dataset = Dataset.objects.filter(team=team, name=str(name)).first()
    if dataset is None:
        raise InvalidInput(f"team {team.name!r} has no dataset {name!r}", details={"dataset": "unknown dataset"})
    return dataset


# --- registered models --------------------------------------------------------------


def model_snapshot(model: RegisteredModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "team": model.team.name,
        "description": model.description,
        "task": model.task,
        "primary_metric": model.primary_metric,
        "policy": model.policy,
        "dataset": model.dataset.name if model.dataset_id else None,
        "tags": dict(model.tag_rows.values_list("key", "value")) if model.pk else {},
    }


def _task_validate(task: Any) -> str:
    if task not in TaskType.values:
        raise InvalidInput(f"task {task!r} is not one of {TaskType.values}", details={"task": "invalid"})
    return task


def _metric_name_validate(value: Any, field_name: str) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not _METRIC_NAME.match(value):
        raise InvalidInput(f"{field_name} {value!r} is not a metric name", details={field_name: "invalid metric name"})
    return value


def model_create(
    *,
    actor: AbstractBaseUser,
    name: str,
    team: Team,
    description: str = "",
    task: str = TaskType.CLASSIFICATION,
    primary_metric: str = "",
    policy: Any = None,
    dataset: str | None = None,
    tags: Any = None,
) -> RegisteredModel:
    """Define a model (its DESIGN phase): owner team, task, primary metric, dataset, policy."""
    require_role(actor, team, Role.DEVELOPER, action="creating a model")
    name_validate(name)
    canonical_policy = policy_validate({} if policy is None else policy)
    clean_tags = tags_validate(tags)
    dataset_obj = _dataset_in_team(team, dataset)
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(
                name=name,
                team=team,
                description=description or "",
                task=_task_validate(task),
                primary_metric=_metric_name_validate(primary_metric, "primary_metric"),
                policy=canonical_policy,
                dataset=dataset_obj,
                created_by=actor,
            )
            _tags_replace(ModelTag, "model", model, clean_tags)
            _changed("model.create", actor=actor, target=model, before=None, after=model_snapshot(model))
    except IntegrityError as exc:
        raise Conflict(f"a model named {name!r} already exists") from exc
    return model


_MODEL_FIELDS = {"description", "task", "primary_metric", "policy", "dataset", "tags"}


def model_update(
    *, actor: AbstractBaseUser, model: RegisteredModel, changes: dict[str, Any], reason: str = ""
) -> RegisteredModel:
    """Change a model's definition. Changing the policy is a governance act: approvers
    and admins only."""
    unknown = set(changes) - _MODEL_FIELDS
    if unknown:
        raise InvalidInput(
            f"cannot change {', '.join(sorted(unknown))}",
            details={name: "cannot be changed" for name in sorted(unknown)},
        )
    require_role(actor, model.team, Role.DEVELOPER, action="changing a model")
    if "policy" in changes:
        require_role(actor, model.team, Role.APPROVER, action="changing a model's policy")
    with transaction.atomic():
        # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of the dataset join.
        locked = (
            RegisteredModel.objects.select_for_update(of=("self",)).select_related("team", "dataset").get(pk=model.pk)
        )
        before = model_snapshot(locked)
        if "description" in changes:
            locked.description = str(changes["description"] or "")
        if "task" in changes:
            locked.task = _task_validate(changes["task"])
        if "primary_metric" in changes:
            locked.primary_metric = _metric_name_validate(changes["primary_metric"], "primary_metric")
        if "policy" in changes:
            locked.policy = policy_validate({} if changes["policy"] is None else changes["policy"])
        if "dataset" in changes:
            locked.dataset = _dataset_in_team(locked.team, changes["dataset"])
        locked.save()
        if "tags" in changes:
            _tags_replace(ModelTag, "model", locked, tags_validate(changes["tags"]))
        after = model_snapshot(locked)
        action = "model.policy_change" if before["policy"] != after["policy"] else "model.update"
        _changed(action, actor=actor, target=locked, before=before, after=after, reason=reason)
    return locked


# --- versions -----------------------------------------------------------------------


_YAML_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _signature_from_mlmodel(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        # libyaml's safe loader where it is built in: ten times the pure-Python one.
        document = yaml.load(raw, Loader=_YAML_SAFE_LOADER) or {}
    except yaml.YAMLError:
        return None
    signature = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(signature, dict):
        return None
    parsed: dict[str, Any] = {}
    for part in ("inputs", "outputs", "params"):
        value = signature.get(part)
        if isinstance(value, str):
            try:
                parsed[part] = json.loads(value)
            except json.JSONDecodeError:
                parsed[part] = value
        elif value is not None:
            parsed[part] = value
    return parsed or None


@dataclass
class ArtifactFacts:
    """What registration learns by reading an artifact once."""

    uri: str
    manifest: dict[str, Any]
    digest: str
    size: int
    signature: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def _artifact_facts(uri: str) -> ArtifactFacts:
    scan = storage.artifact_scan(uri, keep={"MLmodel"})
    manifest = scan.manifest
    signature = _signature_from_mlmodel(scan.kept["MLmodel"]) if "MLmodel" in scan.kept else None
    return ArtifactFacts(uri, manifest, storage.manifest_digest(manifest), storage.manifest_size(manifest), signature)


def metrics_record(
    *,
    version: ModelVersion,
    metrics: dict[str, float],
    source: str,
    dataset_digest: str = "",
    at: datetime | None = None,
) -> None:
    """Record metric values as the version's current ones, keeping the earlier values."""
    at = at or timezone.now()
    if not metrics:
        return
    VersionMetric.objects.filter(version=version, name__in=list(metrics), is_current=True).update(is_current=False)
    rows = []
    for name, value in metrics.items():
        rows.append(
            VersionMetric(
                version=version,
                name=name,
                value=float(value),
                source=source,
                dataset_digest=dataset_digest,
                recorded_at=at,
            )
        )
    VersionMetric.objects.bulk_create(rows)


def _parent_in_model(model: RegisteredModel, parent_version: Any) -> ModelVersion | None:
    if parent_version in (None, ""):
        return None
    try:
        number = int(parent_version)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            "parent_version must be a version number", details={"parent_version": "not a number"}
        ) from exc
    parent = ModelVersion.objects.filter(model=model, version=number).first()
    if parent is None:
        raise InvalidInput(
            f"model {model.name!r} has no version {number}", details={"parent_version": "unknown version"}
        )
    return parent


def version_snapshot(version: ModelVersion) -> dict[str, Any]:
    return {
        "model": version.model.name,
        "version": version.version,
        "stage": version.stage,
        "status": version.status,
        "digest": version.digest,
        "run_id": version.run_id,
        "source": version.source,
    }


def _version_row_write(
    *,
    model: RegisteredModel,
    number: int,
    facts: ArtifactFacts,
    source: str,
    run_id: str,
    description: str,
    tags: dict[str, str],
    parent: ModelVersion | None,
    dataset: Dataset | None,
    actor: AbstractBaseUser | None,
    action: str,
) -> ModelVersion:
    """Insert the version row (or complete the one ``mlflow_sync`` inserted first)."""
    with transaction.atomic():
        version, created = ModelVersion.objects.select_for_update().get_or_create(
            model=model,
            version=number,
            defaults={
                "source": source,
                "run_id": run_id,
                "artifact_uri": facts.uri,
                "digest": facts.digest,
                "size_bytes": facts.size,
                "manifest": facts.manifest,
                "signature": facts.signature,
                "description": description,
                "parent": parent,
                "dataset": dataset,
                "created_by": actor,
            },
        )
        if not created and actor is not None:
            version.description = description or version.description
            version.parent = parent or version.parent
            version.dataset = dataset or version.dataset
            version.created_by = version.created_by or actor
            version.save()
        if created:
            # A new row has no tags or metrics yet: inserted in one statement each.
            VersionTag.objects.bulk_create(VersionTag(version=version, key=k, value=v) for k, v in tags.items())
            metrics_record(
                version=version,
                metrics=facts.metrics or {},
                source=MetricSource.RUN,
                dataset_digest=dataset.digest if dataset else "",
            )
        elif tags:
            _tags_replace(
                VersionTag, "version", version, {**dict(version.tag_rows.values_list("key", "value")), **tags}
            )
        if created:
            _changed(action, actor=actor, target=version, before=None, after=version_snapshot(version))
    return version


def model_version_register(
    *,
    actor: AbstractBaseUser,
    model: RegisteredModel,
    run_id: str | None = None,
    source: str | None = None,
    artifact_path: str | None = None,
    description: str = "",
    tags: Any = None,
    parent_version: Any = None,
    dataset: str | None = None,
    request_key: str | None = None,
) -> ModelVersion:
    """Register a version from an MLflow run or from an artifact URI.

    Reads the artifact once (digest, manifest, signature), creates the MLflow model
    version with the same number, then records everything in one transaction.
    """
    require_role(actor, model.team, Role.DEVELOPER, action="registering a version")
    if bool(run_id) == bool(source):
        raise InvalidInput(
            "give exactly one of run_id or source",
            details={"run_id": "give run_id or source", "source": "give run_id or source"},
        )
    clean_tags = tags_validate(tags)
    parent = _parent_in_model(model, parent_version)
    dataset_obj = _dataset_in_team(model.team, dataset)
    retry_possible = request_key is not None
    request_key = request_key or uuid.uuid4().hex
    model_id: str | None = None
    if run_id:
        if not isinstance(run_id, str) or not re.match(r"^[A-Za-z0-9_-]{1,64}$", run_id):
            raise InvalidInput(f"run_id {run_id!r} is not an MLflow run id", details={"run_id": "malformed"})
        found = mlflow_gateway.run_model(run_id, artifact_path=artifact_path)
        model_id = found.model_id
        mlflow_source = found.source
        facts = _artifact_facts(found.source)
        facts.metrics = found.metrics
        recorded_source = f"runs:/{run_id}"
    else:
        assert source is not None
        if not isinstance(source, str) or len(source) > 1024:
            raise InvalidInput("source must be a URI of at most 1024 characters", details={"source": "invalid"})
        # Checked before reading: any other scheme would be fetched through MLflow first.
        if not storage.is_s3(source) and storage.local_path(source) is None:
            raise InvalidInput(
                f"source {source!r} must be an s3:// URI or a path on the server",
                details={"source": "unsupported scheme"},
            )
        storage.local_source_check(source, field="source")
        try:
            facts = _artifact_facts(source)
        except NotFound as exc:
            raise InvalidInput(f"no artifact at {source!r}", details={"source": "no artifact there"}) from exc
        except InvalidInput as exc:
            raise InvalidInput(f"source: {exc.message}", details={"source": "invalid"}) from exc
        recorded_source = source
        if storage.is_s3(source):
            mlflow_source = source
        else:
            run_id, mlflow_source = mlflow_gateway.source_import(
                Path(storage.local_path(source) or source), model_name=model.name
            )
            facts.uri = mlflow_source
    created = mlflow_gateway.model_version_create(
        name=model.name,
        source=mlflow_source,
        run_id=run_id,
        model_id=model_id,
        request_key=request_key,
        tags=clean_tags,
        adopt=retry_possible,
    )
    return _version_row_write(
        model=model,
        number=int(created.version),
        facts=facts,
        source=recorded_source,
        run_id=run_id or "",
        description=description or "",
        tags=clean_tags,
        parent=parent,
        dataset=dataset_obj,
        actor=actor,
        action="version.register",
    )


@dataclass
class SyncReport:
    models: int = 0
    imported: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def mlflow_sync(*, model_names: list[str] | None = None) -> SyncReport:
    """Bring in versions registered straight into MLflow (``mlflow.register_model``).

    Idempotent: a version already here is left alone; one that fails (its artifact
    unreadable) is reported and tried again on the next run.
    """
    report = SyncReport()
    models = RegisteredModel.objects.select_related("team", "dataset").order_by("name")
    if model_names:
        models = models.filter(name__in=model_names)
    for model in models:
        report.models += 1
        try:
            remote = mlflow_gateway.model_versions(model.name)
        except NotFound:
            continue
        known = set(model.versions.values_list("version", flat=True))
        for mlflow_version in sorted(remote, key=lambda v: int(v.version)):
            number = int(mlflow_version.version)
            if number in known:
                continue
            label = f"{model.name} v{number}"
            try:
                uri = mlflow_gateway.model_version_download_uri(model.name, number)
                facts = _artifact_facts(uri)
                if mlflow_version.run_id:
                    facts.metrics = mlflow_gateway.run_metrics(mlflow_version.run_id)
                tags = {
                    k: v
                    for k, v in (mlflow_version.tags or {}).items()
                    if not k.startswith("modelgate.") and _TAG_KEY.match(k)
                }
                _version_row_write(
                    model=model,
                    number=number,
                    facts=facts,
                    source=mlflow_version.source,
                    run_id=mlflow_version.run_id or "",
                    description=mlflow_version.description or "",
                    tags=tags,
                    parent=None,
                    dataset=None,
                    actor=None,
                    action="version.sync",
                )
                report.imported.append(label)
            except (DependencyUnavailable, NotFound, InvalidInput) as exc:
                logger.warning("sync of %s failed: %s", label, exc)
                report.failed[label] = str(exc)
    return report


# --- aliases ------------------------------------------------------------------------


def alias_set(
    *,
    actor: AbstractBaseUser | None,
    model: RegisteredModel,
    name: str,
    version: ModelVersion,
    stage_move: bool = False,
) -> Alias:
    """Point an alias at a version here and in MLflow. ``champion`` and ``challenger``
    follow the production and staging stages and move only with them."""
    if actor is not None:
        require_role(actor, model.team, Role.DEVELOPER, action="setting an alias")
    if not _ALIAS.match(name or ""):
        raise InvalidInput(
            f"alias {name!r} is invalid: lower-case letters, digits, '-' or '_'", details={"alias": "invalid"}
        )
    if name in STAGE_ALIASES.values() and not stage_move:
        raise Conflict(f"alias {name!r} follows the stage of a version; request a stage transition instead")
    if version.model_id != model.pk:
        raise InvalidInput(
            f"version {version.version} is not a version of {model.name!r}", details={"version": "wrong model"}
        )
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(model=model, name=name).first()
        before = {"version": alias.version.version} if alias else None
        if alias is None:
            alias = Alias.objects.create(model=model, name=name, version=version)
        else:
            alias.version = version
            alias.save()
        _changed(
            "alias.set", actor=actor, target=alias, before=before, after={"alias": name, "version": version.version}
        )
        # Inside the transaction: when MLflow refuses, the alias does not move here either.
        mlflow_gateway.alias_set(model.name, name, version.version)
    return alias


def alias_delete(*, actor: AbstractBaseUser, model: RegisteredModel, name: str) -> None:
    require_role(actor, model.team, Role.DEVELOPER, action="deleting an alias")
    if name in STAGE_ALIASES.values():
        raise Conflict(f"alias {name!r} follows the stage of a version; request a stage transition instead")
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(model=model, name=name).first()
        if alias is None:
            raise NotFound(f"model {model.name!r} has no alias {name!r}")
        _changed("alias.delete", actor=actor, target=alias, before={"version": alias.version.version}, after=None)
        alias.delete()
        mlflow_gateway.alias_delete(model.name, name)


def alias_point(*, model: RegisteredModel, name: str, version: ModelVersion | None) -> None:
    """Move or remove an alias in ModelGate's tables only, inside the caller's transaction.

    Used by stage changes, which mirror the move to MLflow through the outbox
    (``alias_mirror``) after commit instead of calling MLflow while holding locks.
    """
    if version is None:
        Alias.objects.filter(model=model, name=name).delete()
    else:
        Alias.objects.update_or_create(model=model, name=name, defaults={"version": version})


def alias_mirror(*, model_name: str, alias: str) -> None:
    """Make MLflow's alias match ModelGate's current one (idempotent, order-independent)."""
    current = Alias.objects.filter(model__name=model_name, name=alias).select_related("version").first()
    if current is None:
        mlflow_gateway.alias_delete(model_name, alias)
    else:
        mlflow_gateway.alias_set(model_name, alias, current.version.version)


def dataset_digest_refresh(*, dataset: Dataset, digest: str) -> Dataset:
    """Record that a dataset's file now has another digest (read by an evaluation)."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.digest == digest:
            return locked
        before = {"digest": locked.digest}
        locked.digest = digest
        locked.save(update_fields=["digest"])
        _changed("dataset.digest_change", actor=None, target=locked, before=before, after={"digest": digest})
    return locked
