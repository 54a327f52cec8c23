"""The UI's forms: they parse what was posted; the services decide whether it is allowed.

Rules that the services enforce (a rollback needs a reason, a stage must be reachable)
are not repeated here, so the page shows the service's own message.
"""

from __future__ import annotations

from typing import Any

from django import forms

from registry.choices import Stage
from registry.errors import InvalidInput

_TEXT = 5000


class DecisionForm(forms.Form):
    """Approve, reject, cancel or recheck a transition, with an optional comment."""

    comment = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 2}))


class RollbackForm(forms.Form):
    reason = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 2}))
    to_version = forms.IntegerField(required=False, min_value=1)


class TransitionRequestForm(forms.Form):
    to = forms.ChoiceField(choices=Stage.choices)
    reason = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 2}))


def form_data(form_class: type[forms.Form], data: Any) -> dict[str, Any]:
    """The cleaned data, or ``InvalidInput`` naming each bad field (shown as a 400 page)."""
    form = form_class(data)
    if not form.is_valid():
        problems = {field: " ".join(errors) for field, errors in form.errors.items()}
        summary = "; ".join(f"{field}: {message}" for field, message in problems.items())
        raise InvalidInput(f"the form has problems: {summary}", details=problems)
    return form.cleaned_data
