"""The login page, with failed attempts counted per user name and address and a lockout
once they pass the limit (``registry.services.logins``). A lockout is audited."""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from lifecycle.governance.services.audit import audit_append
from registry.services.logins import login_failure_record, login_locked_until, login_success_record


def client_address(request: HttpRequest) -> str:
    """The address the request came from. A reverse proxy in front of the server must be
    the one that sets REMOTE_ADDR (gunicorn's ``--forwarded-allow-ips``), never a header
    the client chooses, or a guesser could claim a new address for every attempt."""
    return request.META.get("REMOTE_ADDR") or "0.0.0.0"


def _minutes(until: Any) -> int:
    return max(1, math.ceil((until - timezone.now()).total_seconds() / 60))


class ThrottledLoginView(auth_views.LoginView):
    """Django's login view; a locked user name and address pair gets 429 and a message
    saying when to try again, without the password being checked."""

    template_name = "frontend/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = request.POST.get("username", "")
        until = login_locked_until(username=username, ip=client_address(request)) if username else None
        if until is not None:
            return self._locked(until)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        login_success_record(username=form.get_user().get_username(), ip=client_address(self.request))
        return super().form_valid(form)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        username = self.request.POST.get("username", "")
        if not username:
            return super().form_invalid(form)
        ip = client_address(self.request)
        with transaction.atomic():
            failure = login_failure_record(username=username, ip=ip)
            if failure.locked_now:
                audit_append(
                    actor=None,
                    action="login.locked",
                    object_type="login",
                    object_id=username[:64],
                    after={
                        "username": username,
                        "ip": ip,
                        "failures": failure.failures,
                        "locked_until": failure.locked_until,
                    },
                    reason=f"{failure.failures} failed logins from {ip}",
                )
        if failure.locked_until is not None:
            return self._locked(failure.locked_until)
        return super().form_invalid(form)

    def _locked(self, until: Any) -> HttpResponse:
        form = self.get_form_class()(self.request)
        context = self.get_context_data(form=form, locked_minutes=_minutes(until))
        return self.render_to_response(context, status=429)
