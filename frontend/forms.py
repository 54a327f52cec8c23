"""The UI's forms: they parse what was posted; the services decide whether it is allowed.

Rules that the services enforce (a rollback needs a reason, a stage must be reachable)
are not repeated here, so the page shows the service's own message.
"""

from __future__ import annotations

from typing import Any

from django import forms

from lifecycle.governance.rules import OPERATORS
from lifecycle.monitoring.drift import STATISTICS
from lifecycle.monitoring.rules import ACTIONS, DERIVE_METHODS, MONITOR_TYPES
from registry.choices import Stage, TaskType
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


class CanaryForm(forms.Form):
    """Start a canary or change its weight: the weight is a percentage of live traffic
    here (``canary_set`` takes a share, between 0 and 1 exclusive)."""

    version = forms.IntegerField(min_value=1)
    weight = forms.FloatField(min_value=0.0, max_value=100.0)
    reason = forms.CharField(required=False, max_length=2000)


class ShadowForm(forms.Form):
    version = forms.IntegerField(min_value=1)
    reason = forms.CharField(required=False, max_length=2000)


class DeploymentReasonForm(forms.Form):
    """Promote or abort a canary, or stop a deployment; the services say when the
    reason is required (abort and stop)."""

    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class DeploymentSettingsForm(forms.Form):
    """A deployment's monitoring windows (minutes; empty: the server's default), the share
    of calls its gateway logs (0 to 1, as the API takes it) and its cache: the service
    checks the values and says what is wrong with one, as it does for the API."""

    log_sample_rate = forms.FloatField()
    monitor_every_minutes = forms.IntegerField(required=False)
    cache = forms.BooleanField(required=False)
    reason = forms.CharField(required=False, max_length=2000)


class DesignCardForm(forms.Form):
    """The model card as a page edits it: lists one entry per line
    (``frontend/design_cards.py`` turns the lines into the card the service takes)."""

    revision = forms.IntegerField(min_value=0)
    intended_use = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 3}))
    out_of_scope_uses = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 3}))
    owner = forms.CharField(required=False, max_length=500)
    task = forms.ChoiceField(required=False, choices=[("", "—"), *TaskType.choices])
    input_schema = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 4}))
    output_schema = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 2}))
    datasets = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 2}))
    success_criteria = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 3}))
    risks = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 3}))
    fairness = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 3}))
    latency_p95_ms = forms.FloatField(required=False, min_value=0.0)
    memory_mb = forms.FloatField(required=False, min_value=0.0)
    artifact_mb = forms.FloatField(required=False, min_value=0.0)
    reason = forms.CharField(required=False, max_length=2000)


class DesignCompleteForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000)


class MonitorForm(forms.Form):
    """A monitor rule as the monitoring page adds it (``frontend/monitor_forms.py`` turns
    the fields into the rule). Blank fields take the rule's defaults; what a rule type
    allows, and a ``derive`` action's ``params`` (a JSON object), are judged by the policy
    validator, which names the field."""

    type = forms.ChoiceField(choices=[(t, t) for t in MONITOR_TYPES])
    statistic = forms.ChoiceField(required=False, choices=[("", "— (psi)"), *((s, s) for s in STATISTICS)])
    features = forms.CharField(required=False, max_length=_TEXT)
    metric = forms.CharField(required=False, max_length=250)
    op = forms.ChoiceField(required=False, choices=[("", "— (default)"), *((o, o) for o in OPERATORS)])
    value = forms.FloatField(required=False)
    windows = forms.IntegerField(required=False)
    min_rows = forms.IntegerField(required=False)
    min_labels = forms.IntegerField(required=False)
    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    method = forms.ChoiceField(required=False, choices=[("", "—"), *((m, m) for m in DERIVE_METHODS)])
    params = forms.CharField(required=False, max_length=_TEXT, widget=forms.Textarea(attrs={"rows": 3}))
    reason = forms.CharField(required=False, max_length=2000)


class MonitorRemoveForm(forms.Form):
    """Remove the monitor rule at ``index``, provided it is still ``rule`` (its JSON as
    the page showed it)."""

    index = forms.IntegerField(min_value=0)
    rule = forms.CharField(max_length=_TEXT)
    reason = forms.CharField(required=False, max_length=2000)


def form_data(form_class: type[forms.Form], data: Any) -> dict[str, Any]:
    """The cleaned data, or ``InvalidInput`` naming each bad field (shown as a 400 page)."""
    form = form_class(data)
    if not form.is_valid():
        problems = {field: " ".join(errors) for field, errors in form.errors.items()}
        summary = "; ".join(f"{field}: {message}" for field, message in problems.items())
        raise InvalidInput(f"the form has problems: {summary}", details=problems)
    return form.cleaned_data
