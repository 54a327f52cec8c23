"""Read queries shared by the API, the web UI and the lifecycle app.

Everything here reads ModelGate's own indexed tables; nothing calls MLflow's search on
a request's hot path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import DEFAULT_DB_ALIAS
from django.db.models import BigIntegerField, Count, Exists, F, Field, OuterRef, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL

from registry.choices import STAGE_ALIASES, Stage
from registry.errors import InvalidInput, NotFound
from registry.models import (
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
from registry.permissions import datasets_visible_to, models_visible_to, sees_every_team
from registry.prepared import PreparedQuery, prepared

User = AbstractBaseUser | AnonymousUser

_METRIC_FILTER = re.compile(
    r"^(?P<name>[A-Za-z0-9_.\-/ ]{1,250}?)\s*(?P<op>>=|<=|==|!=|>|<|=)\s*(?P<value>[-+]?[0-9.eE+-]+)$"
)
_OPS: dict[str, str] = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt", "=": "exact", "==": "exact"}


def tag_filter_parse(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition(":")
    if not sep or not key:
        raise InvalidInput(f"tag filter {raw!r} must be key:value", details={"tag": "expected key:value"})
    return key, value


def metric_filter_parse(raw: str) -> tuple[str, str, float]:
    match = _METRIC_FILTER.match(raw.strip())
    if not match:
        raise InvalidInput(
            f"metric filter {raw!r} must look like f1>=0.9 (operators >=, >, <=, <, ==, !=)",
            details={"metric": "expected name, operator and number"},
        )
    try:
        value = float(match["value"])
    except ValueError as exc:
        raise InvalidInput(f"metric filter {raw!r} has no valid number", details={"metric": "bad number"}) from exc
    if math.isnan(value) or math.isinf(value):
        raise InvalidInput(f"metric filter {raw!r} must compare with a finite number", details={"metric": "bad number"})
    return match["name"], match["op"], value


def model_get(*, user: User, name: str) -> RegisteredModel:
    """A model the user may see, or ``NotFound`` (the same answer whether it exists or not)."""
    model = models_visible_to(user).select_related("team", "dataset").filter(name=name).first()
    if model is None:
        raise NotFound(f"no model named {name!r}")
    return model


_MODEL_PKS = {
    True: PreparedQuery(lambda name: RegisteredModel.objects.filter(name=name).order_by().values("pk"), name=str),
    False: PreparedQuery(
        lambda name, user_id: (
            RegisteredModel.objects.filter(
                name=name, team_id__in=Membership.objects.filter(user_id=user_id).values("team_id")
            )
            .order_by()
            .values("pk")
        ),
        name=str,
        user_id=int,
    ),
}


def model_pk_get(*, user: User, name: str) -> int:
    """``model_get(...).pk`` in one prepared query, for reads that need nothing else."""
    if not user.is_authenticated:
        raise NotFound(f"no model named {name!r}")
    if sees_every_team(user):
        found = _MODEL_PKS[True].first(name=name)
    else:
        found = _MODEL_PKS[False].first(name=name, user_id=user.pk)
    if found is None:
        raise NotFound(f"no model named {name!r}")
    return found["pk"]


def model_list(
    *, user: User, team: str | None = None, search: str | None = None, tags: list[str] | None = None
) -> QuerySet[RegisteredModel]:
    qs = models_visible_to(user).select_related("team", "dataset").prefetch_related("tag_rows")
    if team:
        qs = qs.filter(team__name=team)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    for raw in tags or []:
        key, value = tag_filter_parse(raw)
        qs = qs.filter(Exists(ModelTag.objects.filter(model=OuterRef("pk"), key=key, value=value)))
    return qs


def model_stage_summary(model: RegisteredModel) -> dict[str, int]:
    counts = dict(model.versions.values_list("stage").annotate(n=Count("id")).values_list("stage", "n"))
    return {stage: counts.get(stage, 0) for stage in Stage.values}


def model_production_version(model: RegisteredModel) -> ModelVersion | None:
    return model.versions.filter(stage=Stage.PRODUCTION).first()


class MetricValue(NamedTuple):
    """A current metric value as ``version_details_load`` attaches it (a ``VersionMetric``
    row's fields, without building a model instance per value)."""

    name: str
    value: float
    source: str
    dataset_digest: str
    recorded_at: datetime
    is_current: bool


def _versions_with_details(qs: QuerySet[ModelVersion], *, for_output: bool = False) -> QuerySet[ModelVersion]:
    """Versions with what showing them needs, in one query.

    ``qs`` comes from ``model.versions`` so that each row gets the model instance the
    caller already holds instead of joining it again. Tags, current metrics and aliases
    are not prefetched: ``version_details_load`` attaches them to a whole page in three
    flat queries (``VersionOut`` calls it), a fraction of the cost of Django's
    ``prefetch_related`` (a related manager and queryset per row and per relation).

    ``for_output`` (lists and alias lookups, which only serialize): the parent's
    number, the dataset's name and digest and the creator's username come as
    annotations (``out_*``) instead of a model instance per row and relation, and the
    manifest, which can hold thousands of files and is not shown, is not read.
    """
    if not for_output:
        return qs.select_related("parent", "dataset", "created_by")
    return qs.defer("manifest").annotate(
        out_parent_version=F("parent__version"),
        out_dataset_name=F("dataset__name"),
        out_dataset_digest=F("dataset__digest"),
        out_created_by=F("created_by__username"),
    )


def version_details_load(versions: Iterable[ModelVersion]) -> None:
    """Attach tags, current metric values and alias names to versions: three queries for
    any number of versions, none for versions that already carry them.

    Sets ``tag_map`` (key to value), ``current_metrics`` (``MetricValue`` by name) and
    ``alias_names`` (sorted) on each version.
    """
    pending = {v.pk: v for v in versions if not hasattr(v, "alias_names")}
    if not pending:
        return
    ids = list(pending)
    tags: dict[int, dict[str, str]] = {pk: {} for pk in ids}
    metrics: dict[int, list[MetricValue]] = {pk: [] for pk in ids}
    aliases: dict[int, list[str]] = {pk: [] for pk in ids}
    for version_id, key, value in (
        VersionTag.objects.filter(version_id__in=ids).order_by("pk").values_list("version_id", "key", "value")
    ):
        tags[version_id][key] = value
    # VersionMetric's default ordering (name, newest first) is kept.
    for version_id, *fields in VersionMetric.objects.filter(version_id__in=ids, is_current=True).values_list(
        "version_id", "name", "value", "source", "dataset_digest", "recorded_at", "is_current"
    ):
        metrics[version_id].append(MetricValue(*fields))
    for version_id, name in Alias.objects.filter(version_id__in=ids).values_list("version_id", "name"):
        aliases[version_id].append(name)
    for pk, version in pending.items():
        version.tag_map = tags[pk]
        version.current_metrics = metrics[pk]
        version.alias_names = sorted(aliases[pk])


def version_filter(
    *,
    model: RegisteredModel | int,
    stage: str | None = None,
    tags: list[str] | None = None,
    metrics: list[str] | None = None,
) -> QuerySet[ModelVersion]:
    """A model's versions (the model or its pk) narrowed by the API's filters
    (``stage=a,b``, ``tag=key:value``, ``metric=f1>=0.9``); bad filters are
    ``InvalidInput`` naming them."""
    qs = model.versions.all() if isinstance(model, RegisteredModel) else ModelVersion.objects.filter(model_id=model)
    if stage:
        stages = [s.strip() for s in stage.split(",")]
        bad = [s for s in stages if s not in Stage.values]
        if bad:
            raise InvalidInput(
                f"unknown stage {bad[0]!r}; expected one of {', '.join(Stage.values)}",
                details={"stage": "unknown stage"},
            )
        qs = qs.filter(stage__in=stages)
    for raw in tags or []:
        key, value = tag_filter_parse(raw)
        qs = qs.filter(Exists(VersionTag.objects.filter(version=OuterRef("pk"), key=key, value=value)))
    for raw in metrics or []:
        name, op, value = metric_filter_parse(raw)
        current = VersionMetric.objects.filter(version=OuterRef("pk"), name=name, is_current=True)
        if op == "!=":
            current = current.exclude(value=value)
        else:
            current = current.filter(**{f"value__{_OPS[op]}": value})
        qs = qs.filter(Exists(current))
    return qs


def version_list(
    *, model: RegisteredModel, stage: str | None = None, tags: list[str] | None = None, metrics: list[str] | None = None
) -> QuerySet[ModelVersion]:
    return _versions_with_details(version_filter(model=model, stage=stage, tags=tags, metrics=metrics), for_output=True)


def _scalar(sql: str, output_field: Field) -> RawSQL:
    """A correlated scalar subquery on the version row (``registry_modelversion``, the
    base table of every query ``version_refs`` annotates). Raw: Django resolves and
    compiles a ``Subquery`` or a join anew for every page read, several times the cost
    of running them."""
    return RawSQL(f"({sql})", (), output_field=output_field)


# Built once: expressions are copied whenever a queryset uses them.
_REF_KEYS = {
    "key_version": F("revision"),
    "key_dataset": _scalar(
        'SELECT ds."revision" FROM "registry_dataset" ds WHERE ds."id" = "registry_modelversion"."dataset_id"',
        BigIntegerField(),
    ),
    "key_creator": _scalar(
        f'SELECT u."username" FROM "{get_user_model()._meta.db_table}" u '
        'WHERE u."id" = "registry_modelversion"."created_by_id"',
        TextField(),
    ),
    # The stored document and the key it was rendered for (``registry/version_documents.py``):
    # one LEFT JOIN on its primary key, not a subquery per column.
    "doc_key": F("document__key"),
    "doc_body": F("document__body"),
}


def version_refs(qs: QuerySet[ModelVersion], *, position: Iterable[str] = ("version",)) -> QuerySet[ModelVersion]:
    """``{"pk", <position fields>, "key_*"...}`` rows instead of versions: ``position``
    is what a page is ordered and cut by, and ``key_*`` the revisions
    (``registry/revisions.py``) of the version row (which its tags, metric values and
    aliases revise too) and of its dataset, and its creator's name. Equal ``key_*`` values mean an equal rendering: reading them is
    one indexed query for a whole page, against building every version again. Runs as a
    prepared statement (``registry/prepared.py``).
    """
    return prepared(qs.values("pk", *position).annotate(**_REF_KEYS))


def _version_first(model: RegisteredModel, version: int | str, first: Callable[[QuerySet[ModelVersion]], Any]) -> Any:
    """``first`` of the model's version with this number, or ``NotFound``."""
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise NotFound(f"model {model.name!r} has no version {version!r}") from None
    found = first(model.versions.filter(version=number))
    if found is None:
        raise NotFound(f"model {model.name!r} has no version {number}")
    return found


def _ref_queries(
    pick: Callable[[QuerySet[ModelVersion], Any], QuerySet[ModelVersion]], key: type
) -> dict[bool, PreparedQuery]:
    """``version_refs`` of the version ``pick`` chooses by ``key`` among those of the
    model named ``name``: ``models_visible_to`` as one fixed-shape query, for members of
    teams (``user_id``) and for those who see every team."""

    def refs(versions: QuerySet[ModelVersion], key: Any) -> QuerySet[ModelVersion]:
        return version_refs(pick(versions, key).order_by())[:1]

    return {
        True: PreparedQuery(
            lambda name, key: refs(ModelVersion.objects.filter(model__name=name), key), name=str, key=key
        ),
        False: PreparedQuery(
            lambda name, user_id, key: refs(
                ModelVersion.objects.filter(
                    model__name=name, model__team_id__in=Membership.objects.filter(user_id=user_id).values("team_id")
                ),
                key,
            ),
            name=str,
            user_id=int,
            key=key,
        ),
    }


_ALIAS_REFS = _ref_queries(lambda qs, alias: qs.filter(aliases__name=alias, aliases__model=F("model")), str)
_NUMBER_REFS = _ref_queries(lambda qs, number: qs.filter(version=number), int)


def _visible_ref(queries: dict[bool, PreparedQuery], user: User, name: str, key: Any) -> dict[str, Any] | None:
    if not user.is_authenticated:
        return None
    if sees_every_team(user):
        return queries[True].first(name=name, key=key)
    return queries[False].first(name=name, user_id=user.pk, key=key)


def alias_ref_find(*, user: User, name: str, alias: str) -> dict[str, Any]:
    """``version_refs`` of the version an alias of a model the user may see points to.

    One prepared query finds an alias row; without one, the general path follows the
    stage for ``champion``/``challenger`` or says what is missing (``NotFound``).
    """
    found = _visible_ref(_ALIAS_REFS, user, name, alias)
    if found is None:
        model = model_get(user=user, name=name)
        found = _alias_first(model, alias, lambda qs: version_refs(qs).first())
    return found


def version_ref_find(*, user: User, name: str, version: int | str) -> dict[str, Any]:
    """``version_refs`` of one version of a model the user may see, or ``NotFound``
    naming what is missing."""
    try:
        number: int | None = int(version)
    except (TypeError, ValueError):
        number = None
    found = _visible_ref(_NUMBER_REFS, user, name, number) if number is not None and 1 <= number < 2**31 else None
    if found is None:
        model = model_get(user=user, name=name)
        found = _version_first(model, version, lambda qs: version_refs(qs).first())
    return found


def versions_for_output(pks: Iterable[int]) -> list[ModelVersion]:
    """The versions with these primary keys, with all that showing them needs."""
    versions = list(_versions_with_details(ModelVersion.objects.filter(pk__in=list(pks)), for_output=True))
    # One instance per model, read once: joined into every row, its JSON columns would be
    # decoded again for each version of the page.
    models = RegisteredModel.objects.in_bulk({version.model_id for version in versions})
    for version in versions:
        version.model = models[version.model_id]
    version_details_load(versions)
    return versions


def version_get(*, model: RegisteredModel, version: int | str) -> ModelVersion:
    return _version_first(model, version, lambda qs: _versions_with_details(qs).first())


def _alias_first(model: RegisteredModel, alias: str, first: Callable[[QuerySet[ModelVersion]], Any]) -> Any:
    """``first`` of the versions an alias names: its row's version, or for
    ``champion``/``challenger`` without a row, the version in that stage."""
    found = first(model.versions.filter(aliases__model=model, aliases__name=alias))
    if found is None:
        stage = next((s for s, a in STAGE_ALIASES.items() if a == alias), None)
        found = first(model.versions.filter(stage=stage)) if stage else None
        if found is None:
            raise NotFound(f"model {model.name!r} has no alias {alias!r}")
    return found


def alias_resolve(*, model: RegisteredModel, alias: str) -> ModelVersion:
    """The version an alias points to; ``champion``/``challenger`` follow the stages."""
    return _alias_first(model, alias, lambda qs: _versions_with_details(qs, for_output=True).first())


def version_metrics(version: ModelVersion) -> dict[str, float]:
    rows = getattr(version, "current_metrics", None)
    if rows is None:
        rows = list(version.metric_rows.filter(is_current=True))
    return {row.name: row.value for row in rows}


def version_metric_records(version: ModelVersion, *, current_only: bool = True) -> list[dict[str, Any]]:
    rows = getattr(version, "current_metrics", None) if current_only else None
    if rows is None:
        qs = version.metric_rows.all()
        rows = list(qs.filter(is_current=True) if current_only else qs)
    return [
        {
            "name": r.name,
            "value": r.value,
            "source": r.source,
            "dataset_digest": r.dataset_digest or None,
            "recorded_at": r.recorded_at,
            "current": r.is_current,
        }
        for r in rows
    ]


def dataset_list(*, user: User, team: str | None = None) -> QuerySet[Dataset]:
    qs = datasets_visible_to(user).select_related("team")
    return qs.filter(team__name=team) if team else qs


def dataset_get(*, user: User, pk: int | str) -> Dataset:
    try:
        key = int(pk)
    except (TypeError, ValueError):
        raise NotFound(f"no dataset {pk!r}") from None
    dataset = datasets_visible_to(user).select_related("team").filter(pk=key).first()
    if dataset is None:
        raise NotFound(f"no dataset {pk!r}")
    return dataset


def _token_lookup() -> tuple[PreparedQuery, list[str], list[str]]:
    token_fields = [f.attname for f in ApiToken._meta.concrete_fields]
    user_fields = [f.attname for f in get_user_model()._meta.concrete_fields]
    query = PreparedQuery(
        lambda token_hash: (
            ApiToken.objects.filter(token_hash=token_hash)
            .order_by()
            .values(*token_fields, *(f"user__{name}" for name in user_fields))
        ),
        token_hash=str,
    )
    return query, token_fields, user_fields


_TOKEN_LOOKUP, _TOKEN_FIELDS, _USER_FIELDS = _token_lookup()


def api_token_find(*, token_hash: str) -> ApiToken | None:
    """The token with this hash and its user, as ``select_related("user")`` gives them;
    every API call asks, so the query is prepared."""
    row = _TOKEN_LOOKUP.first(token_hash=token_hash)
    if row is None:
        return None
    token = ApiToken.from_db(DEFAULT_DB_ALIAS, _TOKEN_FIELDS, [row[name] for name in _TOKEN_FIELDS])
    token.user = get_user_model().from_db(
        DEFAULT_DB_ALIAS, _USER_FIELDS, [row[f"user__{name}"] for name in _USER_FIELDS]
    )
    return token


def team_get(*, name: str) -> Team:
    """A team by name; an unknown team is bad input from the caller (it names it)."""
    team = Team.objects.filter(name=name).first()
    if team is None:
        raise InvalidInput(f"no team named {name!r}", details={"team": "unknown team"})
    return team
