"""Read queries shared by the API, the web UI and the lifecycle app.

Everything here reads ModelGate's own indexed tables; nothing calls MLflow's search on
a request's hot path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from registry.choices import STAGE_ALIASES, Stage
from registry.errors import InvalidInput, NotFound
from registry.models import Alias, Dataset, ModelTag, ModelVersion, RegisteredModel, Team, VersionMetric, VersionTag
from registry.permissions import datasets_visible_to, models_visible_to

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


def version_list(
    *, model: RegisteredModel, stage: str | None = None, tags: list[str] | None = None, metrics: list[str] | None = None
) -> QuerySet[ModelVersion]:
    qs = model.versions.all()
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
    return _versions_with_details(qs, for_output=True)


def version_get(*, model: RegisteredModel, version: int | str) -> ModelVersion:
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise NotFound(f"model {model.name!r} has no version {version!r}") from None
    found = _versions_with_details(model.versions.filter(version=number)).first()
    if found is None:
        raise NotFound(f"model {model.name!r} has no version {number}")
    return found


def alias_resolve(*, model: RegisteredModel, alias: str) -> ModelVersion:
    """The version an alias points to; ``champion``/``challenger`` follow the stages."""
    # One query for the alias and its version together (the alias row is unique per model).
    found = _versions_with_details(
        model.versions.filter(aliases__model=model, aliases__name=alias), for_output=True
    ).first()
    if found is None:
        stage = next((s for s, a in STAGE_ALIASES.items() if a == alias), None)
        found = _versions_with_details(model.versions.filter(stage=stage), for_output=True).first() if stage else None
        if found is None:
            raise NotFound(f"model {model.name!r} has no alias {alias!r}")
    return found


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


def team_get(*, name: str) -> Team:
    """A team by name; an unknown team is bad input from the caller (it names it)."""
    team = Team.objects.filter(name=name).first()
    if team is None:
        raise InvalidInput(f"no team named {name!r}", details={"team": "unknown team"})
    return team
