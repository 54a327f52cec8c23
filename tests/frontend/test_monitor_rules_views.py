"""Monitor rules on the monitoring page: listed for anyone who may see the model; added and
removed by approvers through the service that saves the policy as the API does, so a
``derive`` action's bad parameters are refused naming the field, and nothing changes."""

from __future__ import annotations

import json

import pytest

from lifecycle.governance.models import AuditRecord
from registry.models import RegisteredModel
from tests.frontend.conftest import client_for

pytestmark = pytest.mark.django_db

PAGE = "/models/fraud-detector/monitoring/"
ADD = "/models/fraud-detector/monitors/"
REMOVE = "/models/fraud-detector/monitors/remove/"
PARAMS = {"data": {"source": "predictions", "days": 7, "min_rows": 20}}
DERIVE = {
    "type": "drift",
    "statistic": "psi",
    "windows": "2",
    "action": "derive",
    "method": "incremental",
    "params": json.dumps(PARAMS),
    "reason": "refresh on drift",
}


def _policy() -> dict:
    return RegisteredModel.objects.get(name="fraud-detector").policy


def _policy_changes() -> int:
    return AuditRecord.objects.filter(action="model.policy_change").count()


def test_an_approver_adds_a_derive_monitor_and_the_page_lists_it(approver, fraud_model):
    before = _policy_changes()

    answer = client_for(approver).post(ADD, DERIVE, follow=True)

    assert answer.status_code == 200
    text = answer.content.decode()
    assert "Monitor rule #1 added: drift → derive (incremental)." in text
    row = text[text.index('id="monitor-1"') :]
    row = row[: row.index("</tr>")]
    assert "psi &gt; 0.2 on any feature" in row and "<code>derive</code>" in row and "<code>incremental</code>" in row
    assert "&quot;days&quot;: 7" in row and "&quot;source&quot;: &quot;predictions&quot;" in row
    (monitor,) = _policy()["monitors"]
    assert monitor["action"] == "derive" and monitor["method"] == "incremental" and monitor["params"] == PARAMS
    assert (monitor["type"], monitor["statistic"], monitor["windows"], monitor["value"]) == ("drift", "psi", 2, 0.2)
    assert _policy()["rules"][0]["type"] == "metric_threshold"
    assert _policy_changes() == before + 1
    record = AuditRecord.objects.filter(action="model.policy_change").latest("pk")
    assert record.actor_name == "approver" and record.reason == "refresh on drift"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"params": json.dumps({"data": {"source": "predictions", "days": 0}})}, "params.data", "days must be between"),
        ({"params": json.dumps({"data": {"source": "labels", "days": 7}})}, "params.data", "source must be one of"),
        ({"params": json.dumps({"epochs": "many"})}, "params.epochs", "must be a number"),
        ({"params": "{'data': 7"}, "params", "not JSON"),
        ({"action": "alert"}, "method", "only a derive action takes 'method'"),
        ({"method": ""}, "method", "unknown derivation method"),
    ],
)
def test_a_bad_derive_monitor_shows_the_problem_by_field_and_stores_nothing(
    approver, fraud_model, change, field, words
):
    before_policy, before_changes = _policy(), _policy_changes()

    answer = client_for(approver).post(ADD, {**DERIVE, **change})

    assert answer.status_code == 400
    text = answer.content.decode()
    problem = text[text.index('class="message message-error monitor-problem"') :]
    problem = problem[: problem.index("</li></ul>")]
    assert f"<code>{field}</code>: " in problem and words in problem.replace("&#x27;", "'")
    # The page comes back with what was typed.
    assert 'value="refresh on drift"' in text
    assert _policy() == before_policy and _policy_changes() == before_changes


def test_the_page_refuses_bad_params_with_the_words_the_api_uses(approver, fraud_model):
    bad = {"data": {"source": "predictions", "days": 400}}
    monitor = {"type": "drift", "statistic": "psi", "action": "derive", "method": "incremental", "params": bad}
    api = approver.client.patch(
        "/api/v1/models/fraud-detector/", {"policy": {**_policy(), "monitors": [monitor]}}, format="json"
    )
    page = client_for(approver).post(ADD, {**DERIVE, "params": json.dumps(bad)})

    assert api.status_code == page.status_code == 400
    message = api.json()["error"]["message"]
    assert message == "invalid policy: policy.monitors[0].params.data: days must be between 1 and 365"
    assert message in page.content.decode()


def test_a_viewer_sees_the_rules_but_no_form(viewer, approver, fraud_model):
    client_for(approver).post(ADD, DERIVE)

    text = client_for(viewer).get(PAGE).content.decode()

    assert 'id="monitor-1"' in text and "<code>incremental</code>" in text
    assert ADD not in text and REMOVE not in text


def test_a_developer_posting_the_form_anyway_is_refused_and_nothing_changes(owner, fraud_model):
    before = _policy()

    answer = client_for(owner).post(ADD, DERIVE)

    assert answer.status_code == 403
    assert _policy() == before


def test_an_approver_removes_a_rule_and_a_stale_removal_is_refused(approver, fraud_model):
    client = client_for(approver)
    client.post(ADD, DERIVE)
    client.post(ADD, {"type": "error_rate", "value": "0.05", "action": "rollback"})
    first, second = _policy()["monitors"]

    stale = client.post(REMOVE, {"index": 0, "rule": json.dumps(second)})
    assert stale.status_code == 409 and len(_policy()["monitors"]) == 2

    answer = client.post(REMOVE, {"index": 0, "rule": json.dumps(first), "reason": "too eager"}, follow=True)

    assert "Monitor rule #1 removed." in answer.content.decode()
    assert _policy()["monitors"] == [second]


def test_the_forms_need_a_login_and_another_teams_model_is_not_found(outsider, fraud_model):
    from django.test import Client

    for url in (ADD, REMOVE):
        anonymous = Client().post(url, DERIVE)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/"), url
        assert client_for(outsider).post(url, {**DERIVE, "index": 0, "rule": "{}"}).status_code == 404, url
    assert client_for(outsider).get(ADD).status_code == 405
    assert "monitors" not in _policy()
