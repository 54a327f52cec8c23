"""Checks of the values that several registry writes accept: names, tags, tasks and
metric names. Each raises ``InvalidInput`` naming the field, or returns the clean value."""

from __future__ import annotations

import re
from typing import Any

from registry.choices import TaskType
from registry.errors import InvalidInput
from registry.models import NAME_PATTERN

NAME_RE = re.compile(NAME_PATTERN)
TEAM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
TAG_KEY_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
METRIC_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def name_validate(value: Any, *, field_name: str = "name") -> str:
    """A model or dataset name as given, or ``InvalidInput`` saying what a name may be."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(
            f"{field_name} {value!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            details={field_name: "invalid name"},
        )
    return value


def tags_validate(tags: Any, *, field_name: str = "tags") -> dict[str, str]:
    """Tags as a dict of strings (``None`` is no tags), or ``InvalidInput`` naming every
    bad entry."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise InvalidInput(
            f"{field_name} must be an object of string keys and values", details={field_name: "not an object"}
        )
    problems = {}
    for key, value in tags.items():
        if not TAG_KEY_RE.match(str(key)):
            problems[f"{field_name}.{key}"] = "tag keys are 1-128 letters, digits or _ . : / -"
        elif not isinstance(value, str | int | float | bool) or len(str(value)) > 512:
            problems[f"{field_name}.{key}"] = "tag values are strings of at most 512 characters"
    if problems:
        raise InvalidInput(f"{field_name} has invalid entries: {', '.join(problems)}", details=problems)
    return {str(k): str(v) for k, v in tags.items()}


def task_validate(task: Any) -> str:
    """One of ``TaskType``'s values."""
    if task not in TaskType.values:
        raise InvalidInput(f"task {task!r} is not one of {TaskType.values}", details={"task": "invalid"})
    return task


def metric_name_validate(value: Any, field_name: str) -> str:
    """A metric name, or ``""`` when none is given."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not METRIC_NAME_RE.match(value):
        raise InvalidInput(f"{field_name} {value!r} is not a metric name", details={field_name: "invalid metric name"})
    return value
