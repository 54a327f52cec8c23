"""The ``input_schema`` gate (pure): a version's signature against the input schema its
design card promised, with the columns named when they disagree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lifecycle.governance.rules import GateContext, PolicyError, evaluate_policy, parse_policy, policy_to_dict

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RULE = {"type": "input_schema", "columns": ["amount", "country"], "optional": ["note"]}


def _judge(inputs):
    policy = parse_policy({"rules": [RULE]})
    ctx = GateContext(
        target_stage="staging",
        requester_id="1",
        now=NOW,
        candidate_metrics=[],
        champion_metrics=None,
        signature_inputs=inputs,
    )
    (result,) = evaluate_policy(policy, ctx)
    return result


def _columns(*names):
    return [{"name": name, "type": "double"} for name in names]


def test_a_signature_with_the_cards_columns_passes_with_or_without_the_optional_ones():
    assert _judge(_columns("country", "amount")).status == "passed"
    assert _judge(_columns("amount", "country", "note")).status == "passed"


def test_a_signature_lacking_a_column_or_taking_another_fails_naming_them():
    result = _judge(_columns("amount", "merchant"))

    assert result.status == "failed"
    assert result.data["missing"] == ["country"] and result.data["unexpected"] == ["merchant"]
    assert "lacks the card's columns country" in result.detail
    assert "takes columns the card does not list: merchant" in result.detail


def test_a_tensor_signature_is_matched_by_its_column_count():
    def tensor(width):
        return [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, width]}}]

    assert _judge(tensor(2)).status == "passed"
    assert _judge(tensor(3)).status == "passed"
    wide = _judge(tensor(30))
    assert wide.status == "failed" and wide.data["tensor_columns"] == 30
    assert "tensor of 30 columns" in wide.detail and "2 to 3 columns" in wide.detail


def test_a_version_without_a_signature_fails():
    result = _judge(None)

    assert result.status == "failed" and "no input signature" in result.detail


def test_the_rule_parses_round_trips_and_names_bad_fields():
    assert policy_to_dict(parse_policy({"rules": [RULE]}))["rules"][0]["columns"] == ["amount", "country"]
    with pytest.raises(PolicyError) as caught:
        parse_policy({"rules": [{"type": "input_schema", "columns": []}]})
    assert caught.value.errors[0]["field"] == "rules[0].columns"
