"""The login page under password guessing: failures counted per user name and address,
a lockout with a clear message once they pass the limit, an audit record of it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from lifecycle.governance.models import AuditRecord
from lifecycle.governance.services.audit import audit_verify
from registry.models import LoginThrottle

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-1"
GUESSER = "203.0.113.7"
OWNER_ADDRESS = "198.51.100.20"


@pytest.fixture(autouse=True)
def limits(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MODELGATE_LOGIN_MAX_FAILURES = 3
    settings.MODELGATE_LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
    settings.MODELGATE_LOGIN_LOCKOUT = timedelta(minutes=10)


@pytest.fixture
def alice():
    return get_user_model().objects.create_user(username="alice", password=PASSWORD)


def attempt(password: str, address: str = GUESSER, username: str = "alice"):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


def test_a_wrong_password_says_so_and_is_counted(alice):
    answer = attempt("wrong")

    assert answer.status_code == 200
    assert "did not match" in answer.content.decode()
    assert LoginThrottle.objects.get(username="alice", ip=GUESSER).failures == 1


def test_the_failure_that_reaches_the_limit_locks_the_pair_and_says_for_how_long(alice):
    for _ in range(2):
        assert attempt("wrong").status_code == 200

    locked = attempt("wrong")

    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins" in page and "try again in 10 minutes" in page


def test_while_locked_even_the_right_password_is_refused(alice):
    for _ in range(3):
        attempt("wrong")

    answer = attempt(PASSWORD)

    assert answer.status_code == 429
    assert "_auth_user_id" not in answer.wsgi_request.session


def test_the_owner_from_another_address_still_logs_in(alice):
    for _ in range(3):
        attempt("wrong")

    answer = attempt(PASSWORD, address=OWNER_ADDRESS)

    assert answer.status_code == 302
    assert answer.wsgi_request.session["_auth_user_id"] == str(alice.pk)


def test_the_user_name_is_counted_without_regard_to_case(alice):
    attempt("wrong", username="Alice")
    attempt("wrong", username="ALICE")

    assert attempt("wrong").status_code == 429


def test_a_lockout_is_audited_once(alice):
    for _ in range(5):
        attempt("wrong")

    records = AuditRecord.objects.filter(action="login.locked")
    assert records.count() == 1
    record = records.get()
    assert record.after["username"] == "alice" and record.after["ip"] == GUESSER and record.after["failures"] == 3
    assert audit_verify().valid


def test_after_the_lockout_the_pair_may_try_again_from_zero(alice):
    for _ in range(3):
        attempt("wrong")
    LoginThrottle.objects.filter(username="alice").update(locked_until=timezone.now() - timedelta(seconds=1))

    assert attempt("wrong").status_code == 200
    assert LoginThrottle.objects.get(username="alice", ip=GUESSER).failures == 1
    assert attempt(PASSWORD).status_code == 302


def test_failures_older_than_the_window_are_forgotten(alice):
    attempt("wrong")
    attempt("wrong")
    LoginThrottle.objects.filter(username="alice").update(first_failure_at=timezone.now() - timedelta(minutes=16))

    assert attempt("wrong").status_code == 200
    assert LoginThrottle.objects.get(username="alice", ip=GUESSER).failures == 1


def test_a_successful_login_forgets_the_failures(alice):
    attempt("wrong")
    attempt("wrong")

    assert attempt(PASSWORD).status_code == 302
    assert not LoginThrottle.objects.filter(username="alice").exists()
    assert attempt("wrong").status_code == 200


def test_an_unknown_user_name_is_locked_like_a_known_one():
    for _ in range(2):
        assert attempt("wrong", username="nobody").status_code == 200

    assert attempt("wrong", username="nobody").status_code == 429
