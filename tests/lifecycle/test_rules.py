"""Tests for the pure promotion-policy rules engine (no Django, no database)."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.governance.rules import (
    GATED_STAGES,
    OPERATORS,
    ROLES,
    RULE_TYPES,
    Approval,
    ApprovalsRule,
    BeatsChampionRule,
    CanarySoakRule,
    GateContext,
    GateResult,
    MaxEvaluationAgeRule,
    MetricObservation,
    MetricThresholdRule,
    Policy,
    PolicyError,
    RequiredArtifactsRule,
    default_direction,
    evaluate_policy,
    overall_status,
    parse_policy,
    policy_to_dict,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DIGEST = "3fa2c1d4e5f6a7b8"  # shown as "3fa2c1…" in sentences
OTHER = "9b8a7c6d5e4f3a2b"  # shown as "9b8a7c…"

EXAMPLE_POLICY: dict[str, Any] = {
    "rules": [
        {
            "type": "metric_threshold",
            "metric": "f1",
            "op": ">=",
            "value": 0.80,
            "stages": ["staging", "production"],
        },
        {
            "type": "beats_champion",
            "metric": "f1",
            "min_delta": 0.0,
            "stages": ["production"],
        },
        {"type": "approvals", "count": 1, "role": "approver", "stages": ["production"]},
        {"type": "max_evaluation_age", "days": 7, "stages": ["production"]},
        {
            "type": "required_artifacts",
            "items": ["signature"],
            "stages": ["production"],
        },
        {"type": "canary_soak", "minutes": 30, "stages": ["production"]},
    ]
}


def obs(
    value: float,
    name: str = "f1",
    *,
    source: str = "evaluation",
    digest: str | None = DIGEST,
    age: timedelta | None = timedelta(days=1),
    ci: tuple[float, float] | None = None,
) -> MetricObservation:
    """A metric observation recorded ``age`` before NOW."""
    return MetricObservation(
        name=name,
        value=value,
        source=source,
        dataset_digest=digest,
        evaluated_at=None if age is None else NOW - age,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
    )


def make_ctx(**overrides: Any) -> GateContext:
    fields: dict[str, Any] = {
        "target_stage": "production",
        "requester_id": "alice",
        "now": NOW,
        "candidate_metrics": [],
        "champion_metrics": None,
    }
    fields.update(overrides)
    return GateContext(**fields)


def run_rule(rule: dict[str, Any], **ctx_overrides: Any) -> GateResult:
    """Evaluate a single rule for a production transition and return its only result."""
    policy = parse_policy({"rules": [{**rule, "stages": ["production"]}]})
    results = evaluate_policy(policy, make_ctx(**ctx_overrides))
    assert len(results) == 1
    return results[0]


def errors_of(raw: object) -> list[dict[str, str]]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw)
    assert caught.value.errors, "a PolicyError must carry at least one error"
    return caught.value.errors


def single_error(raw: object) -> dict[str, str]:
    errors = errors_of(raw)
    assert len(errors) == 1, errors
    return errors[0]


def one_rule(**rule: Any) -> dict[str, Any]:
    return {"rules": [rule]}


THRESHOLD = {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.8}
BEATS = {"type": "beats_champion", "metric": "f1"}


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("raw", [None, {}, {"rules": []}])
def test_none_or_empty_dict_is_the_empty_policy(raw: object) -> None:
    policy = parse_policy(raw)
    assert policy == Policy()
    assert policy.rules == ()


def test_example_policy_parses_into_one_dataclass_per_rule_in_order() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    assert [type(rule) for rule in policy.rules] == [
        MetricThresholdRule,
        BeatsChampionRule,
        ApprovalsRule,
        MaxEvaluationAgeRule,
        RequiredArtifactsRule,
        CanarySoakRule,
    ]
    assert policy.rules[0] == MetricThresholdRule(metric="f1", op=">=", value=0.8, stages=("staging", "production"))
    assert policy.rules[4] == RequiredArtifactsRule(items=("signature",), stages=("production",))
    assert [rule.type for rule in policy.rules] == list(RULE_TYPES[: len(policy.rules)])


def test_stages_default_to_staging_and_production() -> None:
    policy = parse_policy(one_rule(**THRESHOLD))
    assert policy.rules[0].stages == ("staging", "production")


def test_optional_fields_get_their_defaults() -> None:
    policy = parse_policy({"rules": [{"type": "approvals", "count": 2}, BEATS]})
    assert policy.rules[0] == ApprovalsRule(count=2, role="approver")
    assert policy.rules[1] == BeatsChampionRule(metric="f1", min_delta=0.0, direction="higher")


@pytest.mark.parametrize(
    "metric",
    ["log_loss", "val_loss", "MAE", "mse", "rmse", "error_rate", "MAPE", "logloss"],
)
def test_beats_champion_defaults_to_lower_is_better_for_loss_like_metrics(
    metric: str,
) -> None:
    assert default_direction(metric) == "lower"
    policy = parse_policy(one_rule(type="beats_champion", metric=metric))
    assert policy.rules[0].direction == "lower"  # type: ignore[union-attr]


@pytest.mark.parametrize("metric", ["f1", "accuracy", "roc_auc", "precision", "r2"])
def test_beats_champion_defaults_to_higher_is_better_otherwise(metric: str) -> None:
    assert default_direction(metric) == "higher"


def test_explicit_direction_overrides_the_name_based_guess() -> None:
    policy = parse_policy(one_rule(type="beats_champion", metric="loss_reduction", direction="higher"))
    assert policy.rules[0].direction == "higher"  # type: ignore[union-attr]


def test_parse_policy_returns_an_already_parsed_policy_unchanged() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    assert parse_policy(policy) is policy


def test_policy_and_rules_are_frozen() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.rules = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.rules[0].stages = ("production",)  # type: ignore[misc]


@pytest.mark.parametrize("metric", ["f1", "val/f1 score-2.0_x", "a" * 250, "Top.5 accuracy"])
def test_metric_names_matching_the_allowed_pattern_are_accepted(metric: str) -> None:
    rule = parse_policy(one_rule(**{**THRESHOLD, "metric": metric})).rules[0]
    assert isinstance(rule, MetricThresholdRule)
    assert rule.metric == metric


@pytest.mark.parametrize("count", [1, 20])
def test_approval_count_accepts_the_bounds_1_and_20(count: int) -> None:
    assert parse_policy(one_rule(type="approvals", count=count)).rules[0].count == count  # type: ignore[union-attr]


def test_min_delta_may_be_zero() -> None:
    policy = parse_policy(one_rule(type="beats_champion", metric="f1", min_delta=0))
    assert policy.rules[0].min_delta == 0.0  # type: ignore[union-attr]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("raw", [[], "rules", 5, True])
def test_a_policy_that_is_not_an_object_is_rejected(raw: object) -> None:
    error = single_error(raw)
    assert error["field"] == "policy"
    assert "must be an object" in error["message"]
    assert repr(raw) in error["message"]


def test_unknown_top_level_key_is_rejected_with_a_suggestion() -> None:
    error = single_error({"rule": []})
    assert error == {
        "field": "rule",
        "message": "unknown key 'rule'; a policy may only contain 'rules' and 'pii' (did you mean 'rules'?)",
    }


@pytest.mark.parametrize("rules", [{"type": "approvals"}, "metric_threshold", None, 3])
def test_rules_that_is_not_a_list_is_rejected(rules: object) -> None:
    error = single_error({"rules": rules})
    assert error["field"] == "rules"
    assert error["message"].startswith("rules must be a list")
    assert repr(rules) in error["message"]


def test_a_rule_that_is_not_an_object_is_rejected_at_its_index() -> None:
    error = single_error({"rules": [THRESHOLD, "approvals"]})
    assert error == {
        "field": "rules[1]",
        "message": "each rule must be an object, got 'approvals' (string)",
    }


def test_a_rule_without_a_type_is_rejected() -> None:
    error = single_error(one_rule(metric="f1"))
    assert error["field"] == "rules[0].type"
    assert error["message"].startswith("missing required field 'type'")


def test_an_unknown_rule_type_is_named_with_the_known_ones_and_a_suggestion() -> None:
    error = single_error(one_rule(type="metric_treshold", metric="f1", whatever=1))
    assert error["field"] == "rules[0].type"
    assert "unknown rule type 'metric_treshold'" in error["message"]
    assert "canary_soak" in error["message"]
    assert "did you mean 'metric_threshold'?" in error["message"]


def test_a_rule_type_that_is_not_a_string_is_rejected() -> None:
    error = single_error(one_rule(type=["approvals"]))
    assert error["field"] == "rules[0].type"
    assert "['approvals'] (array)" in error["message"]


def test_an_unknown_key_in_a_rule_is_rejected_at_its_path() -> None:
    error = single_error(one_rule(**THRESHOLD, threshold=0.9))
    assert error["field"] == "rules[0].threshold"
    assert error["message"] == (
        "unknown key 'threshold' for a metric_threshold rule; allowed keys are type, metric, op, value, stages"
    )


def test_a_misspelt_key_gets_a_suggestion() -> None:
    error = single_error(one_rule(**THRESHOLD, stage=["production"]))
    assert error["field"] == "rules[0].stage"
    assert "did you mean 'stages'?" in error["message"]


@pytest.mark.parametrize(
    ("rule", "missing"),
    [
        ({"type": "metric_threshold"}, ["metric", "op", "value"]),
        ({"type": "metric_threshold", "metric": "f1", "value": 1}, ["op"]),
        ({"type": "beats_champion"}, ["metric"]),
        ({"type": "approvals"}, ["count"]),
        ({"type": "max_evaluation_age"}, ["days"]),
        ({"type": "required_artifacts"}, ["items"]),
        ({"type": "canary_soak"}, ["minutes"]),
    ],
)
def test_missing_required_fields_are_each_reported(rule: dict[str, Any], missing: list[str]) -> None:
    errors = errors_of({"rules": [rule]})
    assert [e["field"] for e in errors] == [f"rules[0].{name}" for name in missing]
    for error, name in zip(errors, missing, strict=True):
        assert error["message"] == f"missing required field '{name}' for a {rule['type']} rule"


def test_an_unknown_operator_is_reported_with_the_valid_ones() -> None:
    error = single_error(one_rule(**{**THRESHOLD, "op": "=>"}))
    assert error == {
        "field": "rules[0].op",
        "message": "unknown operator '=>'; expected one of >=, >, <=, <, ==, !=",
    }


def test_an_operator_that_is_not_a_string_is_reported_with_its_type() -> None:
    error = single_error(one_rule(**{**THRESHOLD, "op": 1}))
    assert error["field"] == "rules[0].op"
    assert error["message"].startswith("unknown operator 1 (number)")


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({**THRESHOLD, "value": True}, "value"),
        ({**BEATS, "min_delta": False}, "min_delta"),
        ({"type": "max_evaluation_age", "days": True}, "days"),
        ({"type": "canary_soak", "minutes": True}, "minutes"),
        ({"type": "approvals", "count": True}, "count"),
    ],
)
def test_a_bool_is_not_accepted_as_a_number(rule: dict[str, Any], field: str) -> None:
    error = single_error(one_rule(**rule))
    assert error["field"] == f"rules[0].{field}"
    assert f"got {rule[field]!r} (boolean)" in error["message"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (THRESHOLD, "value"),
        (BEATS, "min_delta"),
        ({"type": "max_evaluation_age"}, "days"),
        ({"type": "canary_soak"}, "minutes"),
    ],
)
def test_nan_and_infinity_are_rejected(rule: dict[str, Any], field: str, bad: float) -> None:
    error = single_error(one_rule(**{**rule, field: bad}))
    assert error == {
        "field": f"rules[0].{field}",
        "message": f"{field} must be a finite number, got {bad!r}",
    }


@pytest.mark.parametrize("bad", ["0.8", None, [0.8], {"v": 1}])
def test_a_threshold_that_is_not_a_number_is_rejected_with_its_type(
    bad: object,
) -> None:
    error = single_error(one_rule(**{**THRESHOLD, "value": bad}))
    assert error["field"] == "rules[0].value"
    assert error["message"].startswith(f"value must be a number, got {bad!r}")


def test_an_integer_too_large_for_a_float_is_rejected() -> None:
    error = single_error(one_rule(**{**THRESHOLD, "value": 10**400}))
    assert error["field"] == "rules[0].value"
    assert error["message"].startswith("value is too large")


def test_a_negative_min_delta_is_rejected() -> None:
    error = single_error(one_rule(**BEATS, min_delta=-0.01))
    assert error == {
        "field": "rules[0].min_delta",
        "message": "min_delta must be >= 0, got -0.01",
    }


@pytest.mark.parametrize(("kind", "field"), [("max_evaluation_age", "days"), ("canary_soak", "minutes")])
@pytest.mark.parametrize("bad", [0, -1, -0.5])
def test_days_and_minutes_must_be_positive(kind: str, field: str, bad: float) -> None:
    error = single_error(one_rule(type=kind, **{field: bad}))
    assert error == {
        "field": f"rules[0].{field}",
        "message": f"{field} must be > 0, got {bad!r}",
    }


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (0, "count must be between 1 and 20, got 0"),
        (21, "count must be between 1 and 20, got 21"),
        (1.5, "count must be a whole number, got 1.5 (number)"),
        ("2", "count must be a whole number, got '2' (string)"),
    ],
)
def test_approval_count_must_be_a_whole_number_from_1_to_20(count: object, message: str) -> None:
    assert single_error(one_rule(type="approvals", count=count)) == {
        "field": "rules[0].count",
        "message": message,
    }


def test_an_unknown_role_is_rejected_with_the_valid_ones() -> None:
    error = single_error(one_rule(type="approvals", count=1, role="aprover"))
    assert error == {
        "field": "rules[0].role",
        "message": "unknown role 'aprover'; expected one of viewer, developer, approver, admin "
        "(did you mean 'approver'?)",
    }


def test_an_unknown_direction_is_rejected() -> None:
    error = single_error(one_rule(**BEATS, direction="up"))
    assert error == {
        "field": "rules[0].direction",
        "message": "unknown direction 'up'; expected 'higher' or 'lower'",
    }


@pytest.mark.parametrize(
    ("metric", "fragment"),
    [
        ("", "metric must not be empty"),
        ("   ", "metric must not be empty"),
        ("f1!", "invalid metric name 'f1!'"),
        ("f1\n", "invalid metric name 'f1\\n'"),
        ("a" * 251, "invalid metric name 'aaaa"),
        (3, "metric must be a metric name (a string), got 3 (number)"),
        (None, "got None (null)"),
    ],
)
def test_invalid_metric_names_are_rejected(metric: object, fragment: str) -> None:
    error = single_error(one_rule(**{**THRESHOLD, "metric": metric}))
    assert error["field"] == "rules[0].metric"
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("stages", "field", "fragment"),
    [
        (
            [],
            "rules[0].stages",
            "stages must be a non-empty list of stages, got [] (array)",
        ),
        ("production", "rules[0].stages", "got 'production' (string)"),
        (
            ["staging", "prod"],
            "rules[0].stages[1]",
            "unknown stage 'prod'; expected one of evaluation, staging, production",
        ),
        (["Production"], "rules[0].stages[0]", "did you mean 'production'?"),
        (
            ["archived"],
            "rules[0].stages[0]",
            "stage 'archived' cannot be gated by a policy",
        ),
        (["training"], "rules[0].stages[0]", "stage 'training' cannot be gated"),
        (
            ["production", "production"],
            "rules[0].stages[1]",
            "duplicate stage 'production'",
        ),
        (
            [1],
            "rules[0].stages[0]",
            "each stage must be a non-empty string, got 1 (number)",
        ),
    ],
)
def test_bad_stages_are_rejected_at_their_path(stages: object, field: str, fragment: str) -> None:
    error = single_error(one_rule(**THRESHOLD, stages=stages))
    assert error["field"] == field
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("items", "field", "fragment"),
    [
        ([], "rules[0].items", "items must be a non-empty list of artifact names"),
        ("signature", "rules[0].items", "got 'signature' (string)"),
        (
            ["signature", ""],
            "rules[0].items[1]",
            "each artifact name must be a non-empty string, got ''",
        ),
        (["signature", 3], "rules[0].items[1]", "got 3 (number)"),
        (
            ["signature", "signature"],
            "rules[0].items[1]",
            "duplicate artifact name 'signature'",
        ),
    ],
)
def test_bad_required_artifact_items_are_rejected_at_their_path(items: object, field: str, fragment: str) -> None:
    error = single_error(one_rule(type="required_artifacts", items=items))
    assert error["field"] == field
    assert fragment in error["message"]


def test_every_error_in_the_policy_is_collected_not_just_the_first() -> None:
    raw = {
        "rules": [
            {
                "type": "metric_threshold",
                "metric": "f1",
                "op": "=>",
                "value": True,
                "stages": ["prod"],
            },
            {"type": "approvals", "count": 0, "role": "owner"},
            "oops",
            {"type": "nope"},
            {"type": "canary_soak", "minutes": math.nan, "extra": 1},
        ],
        "version": 2,
    }
    assert [e["field"] for e in errors_of(raw)] == [
        "version",
        "rules[0].op",
        "rules[0].value",
        "rules[0].stages[0]",
        "rules[1].count",
        "rules[1].role",
        "rules[2]",
        "rules[3].type",
        "rules[4].extra",
        "rules[4].minutes",
    ]


def test_policy_error_is_a_value_error_whose_message_lists_every_field() -> None:
    with pytest.raises(ValueError, match=r"rules\[0\]\.op: unknown operator '=>'") as caught:
        parse_policy({"rules": [{**THRESHOLD, "op": "=>"}, {"type": "approvals", "count": 0}]})
    assert "rules[1].count: count must be between 1 and 20, got 0" in str(caught.value)


def test_policy_error_keeps_its_errors_through_pickling() -> None:
    error = PolicyError([{"field": "rules[0].op", "message": "bad"}])
    restored = pickle.loads(pickle.dumps(error))
    assert restored.errors == error.errors
    assert str(restored) == "rules[0].op: bad"


# --------------------------------------------------------------------------- canonical form


def test_policy_to_dict_fills_in_every_default_in_canonical_order() -> None:
    raw = {
        "rules": [
            {"type": "approvals", "count": 2},
            {"metric": "val_loss", "type": "beats_champion"},
        ]
    }
    canonical = policy_to_dict(parse_policy(raw))
    assert canonical == {
        "rules": [
            {
                "type": "approvals",
                "count": 2,
                "role": "approver",
                "stages": ["staging", "production"],
            },
            {
                "type": "beats_champion",
                "metric": "val_loss",
                "min_delta": 0,
                "direction": "lower",
                "stages": ["staging", "production"],
            },
        ]
    }
    assert list(canonical["rules"][1]) == [
        "type",
        "metric",
        "min_delta",
        "direction",
        "stages",
    ]


def test_policy_to_dict_round_trips_through_parse_policy() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    canonical = policy_to_dict(policy)
    assert parse_policy(canonical) == policy
    assert parse_policy(json.loads(json.dumps(canonical))) == policy
    assert policy.to_dict() == canonical


def test_policy_to_dict_writes_whole_numbers_as_ints_and_keeps_fractions() -> None:
    canonical = policy_to_dict(parse_policy(EXAMPLE_POLICY))
    assert canonical["rules"][0]["value"] == 0.8
    assert canonical["rules"][3]["days"] == 7 and isinstance(canonical["rules"][3]["days"], int)


def test_the_empty_policy_has_an_empty_rule_list() -> None:
    assert policy_to_dict(parse_policy(None)) == {"rules": []}


# --------------------------------------------------------------------------- evaluation: general


def test_only_rules_for_the_target_stage_are_evaluated_in_policy_order_with_their_index() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    staging = evaluate_policy(policy, make_ctx(target_stage="staging", candidate_metrics=[obs(0.9)]))
    assert [(r.rule, r.index) for r in staging] == [("metric_threshold", 0)]
    production = evaluate_policy(policy, make_ctx(candidate_metrics=[obs(0.9)]))
    assert [r.index for r in production] == [0, 1, 2, 3, 4, 5]
    assert [r.rule for r in production] == list(RULE_TYPES[: len(production)])


def test_a_rule_for_evaluation_only_applies_to_the_evaluation_stage() -> None:
    policy = parse_policy(one_rule(type="required_artifacts", items=["signature"], stages=["evaluation"]))
    assert evaluate_policy(policy, make_ctx(target_stage="production")) == []
    assert [r.status for r in evaluate_policy(policy, make_ctx(target_stage="evaluation"))] == ["failed"]


@pytest.mark.parametrize("stage", ["archived", "rejected", "rolled_back", "training"])
def test_ungated_stages_get_no_results(stage: str) -> None:
    assert evaluate_policy(parse_policy(EXAMPLE_POLICY), make_ctx(target_stage=stage)) == []


def test_an_unknown_target_stage_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown target stage 'Production'"):
        evaluate_policy(parse_policy(EXAMPLE_POLICY), make_ctx(target_stage="Production"))


def test_every_result_serialises_to_strict_json() -> None:
    ctx = make_ctx(
        candidate_metrics=[obs(math.nan, ci=(0.1, 0.2)), obs(0.9, digest=OTHER)],
        champion_metrics=[obs(math.inf)],
        approvals=[Approval("bob", "approver", NOW)],
        canary_started_at=NOW - timedelta(minutes=5),
    )
    for result in evaluate_policy(parse_policy(EXAMPLE_POLICY), ctx):
        as_dict = result.to_dict()
        assert set(as_dict) == {"rule", "index", "status", "detail", "data", "needs"}
        json.dumps(as_dict, allow_nan=False)


def test_to_dict_returns_a_copy_of_the_data() -> None:
    result = run_rule({"type": "required_artifacts", "items": ["signature"]})
    result.to_dict()["data"]["missing"].append("x")
    assert result.data["missing"] == ["signature"]


# --------------------------------------------------------------------------- metric_threshold


def test_metric_threshold_passes_when_the_value_meets_the_threshold() -> None:
    result = run_rule(THRESHOLD, candidate_metrics=[obs(0.8123)])
    assert result.status == "passed"
    assert result.needs is None
    assert result.detail == "f1 = 0.8123 on dataset 3fa2c1… meets the threshold >= 0.8"


def test_metric_threshold_fails_with_an_explanation_containing_the_numbers() -> None:
    result = run_rule(THRESHOLD, candidate_metrics=[obs(0.7712)])
    assert result.status == "failed"
    assert result.detail == "f1 = 0.7712 on dataset 3fa2c1… is below the threshold >= 0.8"
    assert result.needs is None
    assert result.data == {
        "metric": "f1",
        "op": ">=",
        "threshold": 0.8,
        "value": 0.7712,
        "source": "evaluation",
        "dataset_digest": DIGEST,
        "evaluated_at": (NOW - timedelta(days=1)).isoformat(),
    }


@pytest.mark.parametrize(
    ("op", "status"),
    [
        (">=", "passed"),
        ("<=", "passed"),
        ("==", "passed"),
        (">", "failed"),
        ("<", "failed"),
        ("!=", "failed"),
    ],
)
def test_metric_threshold_value_exactly_at_the_threshold(op: str, status: str) -> None:
    result = run_rule({**THRESHOLD, "op": op}, candidate_metrics=[obs(0.8)])
    assert result.status == status


@pytest.mark.parametrize(
    ("op", "value", "detail"),
    [
        (">=", 0.7, "f1 = 0.7 on dataset 3fa2c1… is below the threshold >= 0.8"),
        (">", 0.8, "f1 = 0.8 on dataset 3fa2c1… is not above the threshold > 0.8"),
        ("<=", 0.9, "f1 = 0.9 on dataset 3fa2c1… is above the threshold <= 0.8"),
        ("<", 0.8, "f1 = 0.8 on dataset 3fa2c1… is not below the threshold < 0.8"),
        ("==", 0.9, "f1 = 0.9 on dataset 3fa2c1… does not equal the threshold == 0.8"),
        ("!=", 0.8, "f1 = 0.8 on dataset 3fa2c1… is excluded by the threshold != 0.8"),
    ],
)
def test_metric_threshold_failure_sentence_fits_each_operator(op: str, value: float, detail: str) -> None:
    result = run_rule({**THRESHOLD, "op": op}, candidate_metrics=[obs(value)])
    assert (result.status, result.detail) == ("failed", detail)


def test_metric_threshold_never_prints_two_different_numbers_alike() -> None:
    result = run_rule(THRESHOLD, candidate_metrics=[obs(0.79999)])
    assert result.status == "failed"
    assert "f1 = 0.79999 " in result.detail
    assert result.detail.endswith(">= 0.8")


def test_metric_threshold_prints_large_values_in_full() -> None:
    result = run_rule(
        {"type": "metric_threshold", "metric": "rmse", "op": "<=", "value": 12000},
        candidate_metrics=[obs(12345.6, "rmse")],
    )
    assert result.detail == "rmse = 12346 on dataset 3fa2c1… is above the threshold <= 12000"


def test_metric_threshold_fails_needing_an_evaluation_when_the_metric_is_missing() -> None:
    result = run_rule(THRESHOLD, candidate_metrics=[obs(0.9, "accuracy")])
    assert result.status == "failed"
    assert result.needs == "evaluation"
    assert result.detail == "no f1 value recorded for this version; the threshold is >= 0.8"
    assert result.data["value"] is None


def test_metric_threshold_prefers_the_models_dataset_over_a_newer_result_elsewhere() -> None:
    candidates = [
        obs(0.9, digest=OTHER, age=timedelta(hours=1)),
        obs(0.7, age=timedelta(days=3)),
    ]
    result = run_rule(THRESHOLD, candidate_metrics=candidates, dataset_digest=DIGEST)
    assert result.status == "failed"
    assert result.data["value"] == 0.7
    assert result.data["dataset_digest"] == DIGEST


def test_metric_threshold_prefers_an_evaluation_over_a_newer_run_value() -> None:
    candidates = [
        obs(0.7, age=timedelta(days=3)),
        obs(0.9, source="run", age=timedelta(hours=1)),
    ]
    result = run_rule(THRESHOLD, candidate_metrics=candidates)
    assert result.data["value"] == 0.7
    assert result.data["source"] == "evaluation"


def test_metric_threshold_uses_the_newest_evaluation() -> None:
    candidates = [
        obs(0.7, age=timedelta(days=1)),
        obs(0.9, age=timedelta(days=5)),
        obs(0.6, age=None),
    ]
    result = run_rule(THRESHOLD, candidate_metrics=candidates)
    assert result.data["value"] == 0.7
    assert result.data["evaluated_at"] == (NOW - timedelta(days=1)).isoformat()


def test_metric_threshold_falls_back_to_another_dataset_but_asks_for_an_evaluation_on_failure() -> None:
    result = run_rule(THRESHOLD, candidate_metrics=[obs(0.7, digest=OTHER)], dataset_digest=DIGEST)
    assert result.status == "failed"
    assert result.needs == "evaluation"
    assert result.data["dataset_digest"] == OTHER
    assert "not measured on the model's evaluation dataset 3fa2c1…" in result.detail


def test_metric_threshold_failing_on_a_run_value_asks_for_an_evaluation() -> None:
    result = run_rule(THRESHOLD, candidate_metrics=[obs(0.7, source="run")])
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert "value from source 'run', not an evaluation" in result.detail


def test_metric_threshold_without_a_dataset_says_so() -> None:
    result = run_rule(THRESHOLD, candidate_metrics=[obs(0.9, digest=None)])
    assert result.status == "passed"
    assert result.detail == "f1 = 0.9 (no dataset recorded) meets the threshold >= 0.8"


def test_metric_threshold_fails_on_a_nan_value_for_every_operator() -> None:
    result = run_rule({**THRESHOLD, "op": "!="}, candidate_metrics=[obs(math.nan)])
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert "f1 = nan" in result.detail
    assert result.data["value"] is None


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(
    value=finite | st.sampled_from([0.0, -0.0, 0.8]),
    threshold=finite | st.just(0.8),
    op=st.sampled_from(list(OPERATORS)),
)
def test_metric_threshold_passes_exactly_when_the_comparison_holds(value: float, threshold: float, op: str) -> None:
    result = run_rule({**THRESHOLD, "op": op, "value": threshold}, candidate_metrics=[obs(value)])
    assert result.status == ("passed" if OPERATORS[op](value, threshold) else "failed")
    # The sentence prints the two numbers alike exactly when they are equal.
    value_text = result.detail.split(" = ", 1)[1].split(" ", 1)[0]
    threshold_text = result.detail.rsplit(" ", 1)[1]
    assert (value_text == threshold_text) == (value == threshold)


# --------------------------------------------------------------------------- beats_champion


def test_beats_champion_passes_when_there_is_no_champion_yet() -> None:
    result = run_rule(BEATS, candidate_metrics=[obs(0.1)], champion_metrics=None)
    assert result.status == "passed"
    assert result.detail == "no champion yet: nothing to beat"
    assert result.data["champion"] is None


def test_beats_champion_passes_when_better_and_reports_the_numbers() -> None:
    result = run_rule(BEATS, candidate_metrics=[obs(0.83)], champion_metrics=[obs(0.81)])
    assert result.status == "passed"
    assert result.detail == (
        "f1 = 0.83 vs champion 0.81 on dataset 3fa2c1…: improvement +0.02 meets the required margin 0 "
        "(higher is better)"
    )
    data = result.data
    assert (data["candidate"], data["champion"], data["min_delta"]) == (0.83, 0.81, 0.0)
    assert data["delta"] == pytest.approx(0.02)
    assert (data["direction"], data["dataset_digest"]) == ("higher", DIGEST)
    assert data["candidate_source"] == data["champion_source"] == "evaluation"
    assert "candidate_ci_low" not in data


def test_beats_champion_fails_when_worse_and_explains_with_the_numbers() -> None:
    result = run_rule(BEATS, candidate_metrics=[obs(0.80)], champion_metrics=[obs(0.81)])
    assert result.status == "failed"
    assert result.needs is None
    assert result.detail == (
        "f1 = 0.8 vs champion 0.81 on dataset 3fa2c1…: improvement -0.01 is below the required margin 0 "
        "(higher is better)"
    )


def test_beats_champion_a_tie_passes_with_a_zero_min_delta() -> None:
    result = run_rule(BEATS, candidate_metrics=[obs(0.8)], champion_metrics=[obs(0.8)])
    assert result.status == "passed"
    assert result.data["delta"] == 0.0


def test_beats_champion_an_improvement_of_exactly_min_delta_passes() -> None:
    # 0.85 - 0.80 is 0.04999999999999993 in floating point; it must still count as 0.05.
    result = run_rule(
        {**BEATS, "min_delta": 0.05},
        candidate_metrics=[obs(0.85)],
        champion_metrics=[obs(0.80)],
    )
    assert result.status == "passed"
    assert "improvement +0.05 meets the required margin 0.05" in result.detail


def test_beats_champion_an_improvement_just_short_of_min_delta_fails() -> None:
    result = run_rule(
        {**BEATS, "min_delta": 0.05},
        candidate_metrics=[obs(0.8499)],
        champion_metrics=[obs(0.80)],
    )
    assert result.status == "failed"
    assert "improvement +0.0499 is below the required margin 0.05" in result.detail


def test_beats_champion_treats_loss_metrics_as_lower_is_better() -> None:
    rule = {"type": "beats_champion", "metric": "log_loss", "min_delta": 0.01}
    better = run_rule(
        rule,
        candidate_metrics=[obs(0.30, "log_loss")],
        champion_metrics=[obs(0.35, "log_loss")],
    )
    assert better.status == "passed"
    assert better.data["direction"] == "lower"
    assert better.data["delta"] == pytest.approx(0.05)
    assert "(lower is better)" in better.detail
    worse = run_rule(
        rule,
        candidate_metrics=[obs(0.35, "log_loss")],
        champion_metrics=[obs(0.30, "log_loss")],
    )
    assert worse.status == "failed"
    assert "improvement -0.05 is below the required margin 0.01" in worse.detail


def test_beats_champion_honours_an_explicit_direction() -> None:
    rule = {**BEATS, "metric": "error_budget_left", "direction": "higher"}
    result = run_rule(
        rule,
        candidate_metrics=[obs(5, "error_budget_left")],
        champion_metrics=[obs(3, "error_budget_left")],
    )
    assert result.status == "passed"
    assert result.data["delta"] == 2


def test_beats_champion_fails_when_champion_has_no_result_on_same_dataset() -> None:
    result = run_rule(BEATS, candidate_metrics=[obs(0.9)], champion_metrics=[obs(0.8, digest=OTHER)])
    assert result.status == "failed"
    assert result.needs == "evaluation"
    assert result.detail == (
        "champion has no f1 on dataset 3fa2c1… (its results are on dataset 9b8a7c…); "
        "re-evaluate the champion on that dataset"
    )
    assert result.data["candidate_digests"] == [DIGEST]
    assert result.data["champion_digests"] == [OTHER]


def test_beats_champion_fails_when_the_champion_has_no_metrics_at_all() -> None:
    result = run_rule(BEATS, candidate_metrics=[obs(0.9)], champion_metrics=[])
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert "champion has no f1 on dataset 3fa2c1… (its results are on no recorded dataset)" in result.detail


def test_beats_champion_fails_needing_evaluation_when_the_candidate_lacks_the_metric() -> None:
    result = run_rule(BEATS, candidate_metrics=[obs(0.9, "accuracy")], champion_metrics=[obs(0.8)])
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert result.detail.startswith("no f1 value recorded for this version")


def test_beats_champion_compares_on_the_shared_dataset_rather_than_the_newest_result() -> None:
    candidates = [
        obs(0.99, digest=OTHER, age=timedelta(hours=1)),
        obs(0.70, age=timedelta(days=2)),
    ]
    result = run_rule(BEATS, candidate_metrics=candidates, champion_metrics=[obs(0.75)])
    assert result.status == "failed"
    assert result.data["dataset_digest"] == DIGEST
    assert result.data["candidate"] == 0.70


def test_beats_champion_prefers_the_models_evaluation_dataset_when_both_have_several() -> None:
    candidates = [obs(0.9, digest=OTHER, age=timedelta(hours=1)), obs(0.7)]
    champions = [obs(0.8, digest=OTHER), obs(0.8)]
    result = run_rule(
        BEATS,
        candidate_metrics=candidates,
        champion_metrics=champions,
        dataset_digest=DIGEST,
    )
    assert result.status == "failed"
    assert result.data["dataset_digest"] == DIGEST


def test_beats_champion_asks_to_evaluate_the_candidate_when_only_the_champion_has_the_models_dataset() -> None:
    result = run_rule(
        BEATS,
        candidate_metrics=[obs(0.9, digest=OTHER)],
        champion_metrics=[obs(0.8)],
        dataset_digest=DIGEST,
    )
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert result.detail == (
        "this version has no f1 on dataset 3fa2c1… (its results are on dataset 9b8a7c…); "
        "evaluate this version on that dataset"
    )


def test_beats_champion_cannot_compare_results_without_a_dataset_digest() -> None:
    result = run_rule(
        BEATS,
        candidate_metrics=[obs(0.9, digest=None)],
        champion_metrics=[obs(0.8, digest=None)],
    )
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert "has no dataset recorded" in result.detail


def test_beats_champion_reports_confidence_intervals_and_flags_overlap() -> None:
    result = run_rule(
        BEATS,
        candidate_metrics=[obs(0.83, ci=(0.80, 0.86))],
        champion_metrics=[obs(0.81, ci=(0.78, 0.84))],
    )
    assert result.status == "passed"
    assert (result.data["candidate_ci_low"], result.data["candidate_ci_high"]) == (
        0.80,
        0.86,
    )
    assert (result.data["champion_ci_low"], result.data["champion_ci_high"]) == (
        0.78,
        0.84,
    )
    assert result.data["ci_overlap"] is True
    assert "the confidence intervals overlap" in result.detail


def test_beats_champion_failing_on_run_values_asks_for_an_evaluation() -> None:
    result = run_rule(BEATS, candidate_metrics=[obs(0.7, source="run")], champion_metrics=[obs(0.8)])
    assert (result.status, result.needs) == ("failed", "evaluation")


@given(a=finite, b=finite, metric=st.sampled_from(["f1", "rmse"]))
def test_beats_champion_with_zero_margin_one_of_two_scores_always_beats_the_other(
    a: float, b: float, metric: str
) -> None:
    rule = {"type": "beats_champion", "metric": metric}
    forward = run_rule(rule, candidate_metrics=[obs(a, metric)], champion_metrics=[obs(b, metric)])
    backward = run_rule(rule, candidate_metrics=[obs(b, metric)], champion_metrics=[obs(a, metric)])
    assert "passed" in (forward.status, backward.status)
    if a == b:
        assert forward.status == backward.status == "passed"


# --------------------------------------------------------------------------- approvals

APPROVALS = {"type": "approvals", "count": 2}


def test_approvals_pass_with_enough_distinct_approvers() -> None:
    approvals = [Approval("bob", "approver", NOW), Approval("carol", "admin", NOW)]
    result = run_rule(APPROVALS, approvals=approvals)
    assert result.status == "passed"
    assert result.needs is None
    assert result.detail == "2 of 2 approvals from approver or above (approved by bob, carol)"
    assert result.data["approved_by"] == ["bob", "carol"]


def test_approvals_wait_for_more_approvers() -> None:
    result = run_rule(APPROVALS, approvals=[Approval("bob", "approver", NOW)])
    assert result.status == "waiting"
    assert result.needs == "approvals"
    assert result.detail.startswith("1 of 2 approvals from approver or above")
    assert (result.data["count"], result.data["required"]) == (1, 2)


def test_approvals_ignore_the_requesters_own_approval() -> None:
    approvals = [Approval("alice", "admin", NOW), Approval("bob", "approver", NOW)]
    result = run_rule(APPROVALS, approvals=approvals, requester_id="alice")
    assert result.status == "waiting"
    assert result.data["count"] == 1
    assert result.data["requester_approval_ignored"] is True
    assert "the requester's own approval does not count" in result.detail


def test_approvals_compare_the_requester_id_as_a_string() -> None:
    # The ORM may hand over an int on one side and a string on the other.
    approvals = [Approval(7, "admin", NOW)]  # type: ignore[arg-type]
    result = run_rule({"type": "approvals", "count": 1}, approvals=approvals, requester_id="7")
    assert result.status == "waiting"
    assert result.data["requester_approval_ignored"] is True


def test_approvals_count_duplicate_approvals_by_one_person_once() -> None:
    approvals = [
        Approval("bob", "approver", NOW),
        Approval("bob", "approver", NOW + timedelta(minutes=1)),
    ]
    result = run_rule(APPROVALS, approvals=approvals)
    assert result.status == "waiting"
    assert result.data["count"] == 1


def test_approvals_below_the_required_role_do_not_count() -> None:
    approvals = [
        Approval("bob", "developer", NOW),
        Approval("carol", "viewer", NOW),
        Approval("dan", "approver", NOW),
    ]
    result = run_rule(APPROVALS, approvals=approvals)
    assert result.status == "waiting"
    assert result.data["approved_by"] == ["dan"]
    assert result.data["insufficient_role"] == ["bob", "carol"]
    assert "2 approvals below approver not counted" in result.detail


@pytest.mark.parametrize(
    ("required", "approver_role", "counts"),
    [
        ("viewer", "viewer", True),
        ("developer", "viewer", False),
        ("developer", "admin", True),
        ("approver", "approver", True),
        ("approver", "developer", False),
        ("admin", "approver", False),
        ("admin", "admin", True),
    ],
)
def test_approvals_respect_the_role_ranking(required: str, approver_role: str, counts: bool) -> None:
    result = run_rule(
        {"type": "approvals", "count": 1, "role": required},
        approvals=[Approval("bob", approver_role, NOW)],
    )
    assert result.status == ("passed" if counts else "waiting")


def test_an_admin_only_rule_says_admin_rather_than_or_above() -> None:
    result = run_rule({"type": "approvals", "count": 1, "role": "admin"})
    assert result.detail == "0 of 1 approval from admin"


def test_approvals_with_an_unknown_role_are_ignored() -> None:
    result = run_rule(
        {"type": "approvals", "count": 1, "role": "viewer"},
        approvals=[Approval("bob", "owner", NOW)],
    )
    assert result.status == "waiting"


def test_a_person_counts_once_at_their_highest_qualifying_approval() -> None:
    approvals = [Approval("bob", "developer", NOW), Approval("bob", "approver", NOW)]
    result = run_rule({"type": "approvals", "count": 1}, approvals=approvals)
    assert result.status == "passed"
    assert result.data["insufficient_role"] == []


# --------------------------------------------------------------------------- max_evaluation_age

MAX_AGE = {"type": "max_evaluation_age", "days": 7}


def test_max_evaluation_age_passes_for_a_recent_evaluation() -> None:
    result = run_rule(MAX_AGE, candidate_metrics=[obs(0.9, age=timedelta(days=2, hours=12))])
    assert result.status == "passed"
    assert result.detail == "latest evaluation is 2.5 days old, within the 7-day limit"
    assert result.data["age_days"] == 2.5


def test_max_evaluation_age_passes_at_exactly_the_limit() -> None:
    result = run_rule(MAX_AGE, candidate_metrics=[obs(0.9, age=timedelta(days=7))])
    assert result.status == "passed"
    assert result.detail == "latest evaluation is 7.0 days old, within the 7-day limit"


def test_max_evaluation_age_fails_a_second_past_the_limit_without_contradicting_itself() -> None:
    result = run_rule(MAX_AGE, candidate_metrics=[obs(0.9, age=timedelta(days=7, seconds=1))])
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert result.detail == "latest evaluation is 7.00001 days old, older than the 7-day limit"


def test_max_evaluation_age_fails_for_a_stale_evaluation_with_the_age_in_days() -> None:
    result = run_rule(
        MAX_AGE,
        candidate_metrics=[obs(0.9, age=timedelta(days=8.46))],
        dataset_digest=DIGEST,
    )
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert result.detail == "latest evaluation on dataset 3fa2c1… is 8.5 days old, older than the 7-day limit"
    assert result.data["days"] == 7


def test_max_evaluation_age_uses_the_newest_evaluation() -> None:
    candidates = [
        obs(0.9, age=timedelta(days=30)),
        obs(0.9, "auc", age=timedelta(days=1)),
    ]
    assert run_rule(MAX_AGE, candidate_metrics=candidates).status == "passed"


def test_max_evaluation_age_fails_needing_evaluation_when_there_is_none() -> None:
    result = run_rule(MAX_AGE, candidate_metrics=[obs(0.9, source="run", age=timedelta(hours=1))])
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert result.detail == "no evaluation of this version recorded; evaluations must be at most 7 days old"


def test_max_evaluation_age_only_counts_evaluations_on_the_models_dataset() -> None:
    result = run_rule(MAX_AGE, candidate_metrics=[obs(0.9, digest=OTHER)], dataset_digest=DIGEST)
    assert (result.status, result.needs) == ("failed", "evaluation")
    assert "on dataset 3fa2c1…" in result.detail


def test_max_evaluation_age_accepts_fractional_days() -> None:
    rule = {"type": "max_evaluation_age", "days": 0.5}
    assert run_rule(rule, candidate_metrics=[obs(0.9, age=timedelta(hours=12))]).status == "passed"
    assert run_rule(rule, candidate_metrics=[obs(0.9, age=timedelta(hours=13))]).status == "failed"


# --------------------------------------------------------------------------- required_artifacts

ARTIFACTS = {
    "type": "required_artifacts",
    "items": ["signature", "model_card", "description"],
}


def test_required_artifacts_pass_when_all_are_present() -> None:
    result = run_rule(
        ARTIFACTS,
        artifacts=frozenset({"signature", "model_card", "description", "extra"}),
    )
    assert result.status == "passed"
    assert result.detail == "all required artifacts present: signature, model_card, description"


def test_required_artifacts_fail_naming_the_missing_ones() -> None:
    result = run_rule(ARTIFACTS, artifacts=frozenset({"model_card"}))
    assert result.status == "failed"
    assert result.needs is None
    assert result.detail == "missing required artifacts: signature, description"
    assert result.data == {
        "required": ["signature", "model_card", "description"],
        "present": ["model_card"],
        "missing": ["signature", "description"],
    }


# --------------------------------------------------------------------------- canary_soak

CANARY = {"type": "canary_soak", "minutes": 30}


def test_canary_soak_waits_when_the_canary_has_not_started() -> None:
    result = run_rule(CANARY)
    assert result.status == "waiting"
    assert result.needs is None
    assert result.detail == "canary not started; a 30-minute soak is required"


def test_canary_soak_waits_with_elapsed_and_remaining_minutes() -> None:
    result = run_rule(CANARY, canary_started_at=NOW - timedelta(minutes=12.5))
    assert result.status == "waiting"
    assert result.detail == "canary has soaked 12.5 of 30 minutes; 17.5 minutes remaining"
    assert (result.data["elapsed_minutes"], result.data["remaining_minutes"]) == (
        12.5,
        17.5,
    )
    assert result.data["ready_at"] == (NOW + timedelta(minutes=17.5)).isoformat()


def test_canary_soak_passes_at_exactly_the_required_minutes() -> None:
    result = run_rule(CANARY, canary_started_at=NOW - timedelta(minutes=30))
    assert result.status == "passed"
    assert result.detail == "canary has soaked 30.0 minutes, at least the required 30"


def test_canary_soak_waits_a_second_before_the_required_minutes() -> None:
    result = run_rule(CANARY, canary_started_at=NOW - timedelta(minutes=30) + timedelta(seconds=1))
    assert result.status == "waiting"
    assert "canary has soaked 29.98 of 30 minutes" in result.detail


def test_canary_soak_with_an_enormous_requirement_just_keeps_waiting() -> None:
    result = run_rule(
        {"type": "canary_soak", "minutes": 1e300},
        canary_started_at=NOW - timedelta(days=1),
    )
    assert result.status == "waiting"
    assert result.data["ready_at"] is None


# --------------------------------------------------------------------------- overall_status


def _result(status: str) -> GateResult:
    return GateResult(rule="x", index=0, status=status, detail="", data={})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        ([], "passed"),
        (["passed"], "passed"),
        (["passed", "waiting"], "waiting"),
        (["waiting", "failed", "passed"], "failed"),
        (["failed"], "failed"),
        (["waiting", "waiting"], "waiting"),
    ],
)
def test_overall_status_is_failed_then_waiting_then_passed(statuses: list[str], overall: str) -> None:
    assert overall_status(_result(s) for s in statuses) == overall


def test_the_example_policy_end_to_end() -> None:
    ctx = make_ctx(
        candidate_metrics=[obs(0.84)],
        champion_metrics=[obs(0.82)],
        approvals=[Approval("bob", "approver", NOW)],
        artifacts=frozenset({"signature"}),
        dataset_digest=DIGEST,
        canary_started_at=NOW - timedelta(minutes=10),
    )
    results = evaluate_policy(parse_policy(EXAMPLE_POLICY), ctx)
    assert [r.status for r in results] == [
        "passed",
        "passed",
        "passed",
        "passed",
        "passed",
        "waiting",
    ]
    assert overall_status(results) == "waiting"


# --------------------------------------------------------------------------- properties of parsing

METRIC_ALPHABET = "abcXYZ019_.-/ "
metric_names = st.text(METRIC_ALPHABET, min_size=1, max_size=30).filter(str.strip)
numbers = finite | st.integers(min_value=-(10**12), max_value=10**12)
positive = st.floats(min_value=1e-9, max_value=1e9) | st.integers(min_value=1, max_value=10**9)
stage_lists = st.lists(st.sampled_from(GATED_STAGES), min_size=1, max_size=3, unique=True)


def _rule(kind: str, required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {"type": st.just(kind), **required},
        optional={**(optional or {}), "stages": stage_lists},
    )


valid_rules = st.one_of(
    _rule(
        "metric_threshold",
        {
            "metric": metric_names,
            "op": st.sampled_from(list(OPERATORS)),
            "value": numbers,
        },
    ),
    _rule(
        "beats_champion",
        {"metric": metric_names},
        {
            "min_delta": st.floats(min_value=0, max_value=1e6) | st.integers(0, 100),
            "direction": st.sampled_from(["higher", "lower"]),
        },
    ),
    _rule("approvals", {"count": st.integers(1, 20)}, {"role": st.sampled_from(ROLES)}),
    _rule("max_evaluation_age", {"days": positive}),
    _rule(
        "required_artifacts",
        {
            "items": st.lists(
                st.text(min_size=1, max_size=12).filter(str.strip),
                min_size=1,
                max_size=4,
                unique=True,
            )
        },
    ),
    _rule("canary_soak", {"minutes": positive}),
)
valid_policies: st.SearchStrategy[dict[str, Any] | None] = (
    st.none() | st.just({}) | st.fixed_dictionaries({"rules": st.lists(valid_rules, max_size=6)})
)


@given(valid_policies)
def test_policy_to_dict_of_a_parsed_policy_is_a_fixpoint(
    raw: dict[str, Any] | None,
) -> None:
    policy = parse_policy(raw)
    canonical = policy_to_dict(policy)
    assert parse_policy(canonical) == policy
    assert policy_to_dict(parse_policy(canonical)) == canonical
    assert json.loads(json.dumps(canonical, allow_nan=False)) == canonical


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
all_keys = sorted(
    {
        "type",
        "metric",
        "op",
        "value",
        "min_delta",
        "direction",
        "count",
        "role",
        "days",
        "items",
        "minutes",
        "stages",
        "bogus",
    }
)
loose_values = (
    json_scalars
    | st.sampled_from([*RULE_TYPES, *OPERATORS, *ROLES, *GATED_STAGES, "f1"])
    | st.lists(json_scalars | st.sampled_from(GATED_STAGES), max_size=3)
)
loose_rules = st.dictionaries(st.sampled_from(all_keys), loose_values, max_size=6) | json_scalars
loose_policies = (
    json_scalars
    | st.fixed_dictionaries({"rules": st.lists(loose_rules, max_size=4) | json_scalars})
    | st.dictionaries(st.text(max_size=6), loose_values, max_size=2)
)


@given(loose_policies)
def test_parse_policy_accepts_or_raises_a_policy_error_with_field_paths(
    raw: object,
) -> None:
    try:
        policy = parse_policy(raw)
    except PolicyError as error:
        assert error.errors
        for item in error.errors:
            assert set(item) == {"field", "message"}
            assert isinstance(item["field"], str) and isinstance(item["message"], str) and item["message"]
    else:
        assert parse_policy(policy_to_dict(policy)) == policy
