"""Strict readers for settings that come from the environment.

Every reader records the variable's name in ``KNOWN_VARIABLES`` so that deployment
files (``deploy/docker-compose.yml``) can be checked against what the settings read.
A malformed value raises ``ImproperlyConfigured`` at start-up instead of being
guessed at, and any variable may instead be given as ``NAME_FILE`` (a path whose
contents are the value), which is how container secrets are usually mounted.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

KNOWN_VARIABLES: set[str] = set()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def raw(name: str, default: str | None = None) -> str | None:
    """The variable's value, from ``NAME`` or the file named by ``NAME_FILE``."""
    KNOWN_VARIABLES.add(name)
    KNOWN_VARIABLES.add(f"{name}_FILE")
    value = os.environ.get(name)
    if value is not None:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return default


def string(name: str, default: str = "") -> str:
    value = raw(name)
    return default if value is None else value


def boolean(name: str, default: bool = False) -> bool:
    value = raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def integer(name: str, default: int, *, minimum: int | None = None) -> int:
    value = raw(name)
    if value is None:
        return default
    try:
        parsed = int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from exc
    if minimum is not None and parsed < minimum:
        raise ImproperlyConfigured(f"{name}={parsed} must be at least {minimum}")
    return parsed


def number(name: str, default: float, *, minimum: float | None = None) -> float:
    value = raw(name)
    if value is None:
        return default
    try:
        parsed = float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from exc
    if parsed != parsed or (minimum is not None and parsed < minimum):
        raise ImproperlyConfigured(f"{name}={value!r} must be a number of at least {minimum}")
    return parsed


def url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    """A URL whose scheme is one of ``schemes`` (``"sqlite"`` style URLs have no host)."""
    value = string(name, default)
    parsed = urlparse(value)
    scheme = parsed.scheme.split("+", 1)[0]
    if scheme not in schemes:
        raise ImproperlyConfigured(f"{name}={value!r} must be a URL with one of the schemes {', '.join(schemes)}")
    if scheme not in {"sqlite", "file", "sqla", "filesystem", "memory"} and not parsed.hostname:
        raise ImproperlyConfigured(f"{name}={value!r} has no host")
    return value


def string_list(name: str, default: list[str]) -> list[str]:
    value = raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def fernet_keys(name: str) -> tuple[bytes, ...]:
    """Comma-separated Fernet keys; a malformed one raises, naming its position (never
    its value, which is a secret)."""
    from cryptography.fernet import Fernet

    keys = []
    for position, value in enumerate(string_list(name, []), start=1):
        try:
            Fernet(value.encode())
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"{name}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes; make one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from exc
        keys.append(value.encode())
    return tuple(keys)
