"""Passwords kept out of text that leaves the process: log lines, the health and
configuration answers."""

from __future__ import annotations

import re

# ``scheme://user:password@host``: the password of a URL (a database or tracking URL in
# an error message) never reaches a log line.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}***@", text)
