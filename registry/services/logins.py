"""Web logins under attack: failures counted per user name and address, and a lockout.

``MODELGATE_LOGIN_MAX_FAILURES`` failures of one user name from one address within
``MODELGATE_LOGIN_FAILURE_WINDOW`` lock that pair out for ``MODELGATE_LOGIN_LOCKOUT``;
while locked, the password is not even checked. The counts live in the database (the
embedded installation has no cache server), one row per pair, updated under a row lock
so that concurrent guesses are all counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from registry.models import LoginThrottle


@dataclass(frozen=True)
class LoginFailure:
    """What one more failure did: the count in the window, and whether it locked the pair
    just now (``locked_until`` set) so that the caller records the lockout once."""

    failures: int
    locked_until: datetime | None
    locked_now: bool


def _key(username: str) -> str:
    # Django's usernames are case-sensitive, but guessing "Admin" and "admin" is one attack.
    return username.strip().lower()[:150]


def login_locked_until(*, username: str, ip: str) -> datetime | None:
    """The end of the pair's lockout, or None when it may try to log in."""
    until = LoginThrottle.objects.filter(username=_key(username), ip=ip).values_list("locked_until", flat=True).first()
    return until if until is not None and until > timezone.now() else None


def login_failure_record(*, username: str, ip: str) -> LoginFailure:
    """Count a failed login; the failure that reaches the limit starts the lockout."""
    now = timezone.now()
    with transaction.atomic():
        row, _ = LoginThrottle.objects.select_for_update().get_or_create(
            username=_key(username), ip=ip, defaults={"first_failure_at": now}
        )
        expired_lock = row.locked_until is not None and row.locked_until <= now
        if expired_lock or now - row.first_failure_at > settings.MODELGATE_LOGIN_FAILURE_WINDOW:
            row.failures, row.first_failure_at, row.locked_until = 0, now, None
        row.failures += 1
        locked_now = row.locked_until is None and row.failures >= settings.MODELGATE_LOGIN_MAX_FAILURES
        if locked_now:
            row.locked_until = now + settings.MODELGATE_LOGIN_LOCKOUT
        row.save(update_fields=["failures", "first_failure_at", "locked_until"])
    return LoginFailure(failures=row.failures, locked_until=row.locked_until, locked_now=locked_now)


def login_success_record(*, username: str, ip: str) -> None:
    """A successful login forgets the pair's failures."""
    LoginThrottle.objects.filter(username=_key(username), ip=ip).delete()
