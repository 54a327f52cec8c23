"""The update gates as a pure core: parsed and validated like the other rules (errors name
the rule and field), and judging with the numbers that decided them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lifecycle.governance.rules import GateContext, MetricObservation, PolicyError, evaluate_policy, parse_policy

NOW = datetime(2026, 12, 1, tzinfo=UTC)
DIGEST = "d" * 64


def obs(name: str, value: float, digest: str | None = DIGEST) -> MetricObservation:
    return MetricObservation(name=name, value=value, source="evaluation", dataset_digest=digest, evaluated_at=NOW)


def ctx(candidate, parent=None, champion=None, size: int | None = 1024) -> GateContext:
    return GateContext(
        target_stage="staging",
        requester_id="1",
        now=NOW,
        candidate_metrics=candidate,
        champion_metrics=champion,
        dataset_digest=DIGEST,
        parent_metrics=parent,
        artifact_bytes=size,
    )


def judge(rule: dict, context: GateContext):
    (result,) = evaluate_policy(parse_policy({"rules": [rule]}), context)
    return result


DROP = {"type": "max_metric_drop", "metric": "f1", "vs": "parent", "value": 0.01}


def test_a_derived_version_losing_more_than_the_allowed_drop_fails_with_both_scores():
    result = judge(DROP, ctx([obs("f1", 0.90)], parent=[obs("f1", 0.93)]))

    assert result.status == "failed"
    assert result.data["candidate"] == 0.90 and result.data["reference"] == 0.93
    assert result.data["drop"] == pytest.approx(0.03) and result.data["dataset_digest"] == DIGEST
    assert "0.9 vs parent 0.93" in result.detail and "more than the allowed 0.01" in result.detail


def test_a_drop_within_the_bound_or_a_gain_passes():
    assert judge(DROP, ctx([obs("f1", 0.925)], parent=[obs("f1", 0.93)])).status == "passed"
    gained = judge(DROP, ctx([obs("f1", 0.95)], parent=[obs("f1", 0.93)]))
    assert gained.status == "passed" and "gains" in gained.detail


def test_a_lower_is_better_metric_drops_when_it_rises():
    rule = {"type": "max_metric_drop", "metric": "rmse", "value": 1.0}
    assert judge(rule, ctx([obs("rmse", 52.0)], parent=[obs("rmse", 50.0)])).status == "failed"
    assert judge(rule, ctx([obs("rmse", 49.0)], parent=[obs("rmse", 50.0)])).status == "passed"


def test_scores_on_different_datasets_are_not_compared():
    result = judge(DROP, ctx([obs("f1", 0.9)], parent=[obs("f1", 0.93, digest="e" * 64)]))
    assert result.status == "failed" and result.needs == "evaluation"


def test_a_version_without_a_parent_has_nothing_to_lose_against():
    assert judge(DROP, ctx([obs("f1", 0.5)], parent=None)).status == "passed"
    versus_champion = {**DROP, "vs": "champion"}
    assert judge(versus_champion, ctx([obs("f1", 0.5)], champion=[obs("f1", 0.9)])).status == "failed"


def test_the_measured_latency_decides_the_latency_gate():
    rule = {"type": "max_latency_ms", "percentile": 95, "value": 5}
    slow = judge(rule, ctx([obs("latency_p95_ms", 7.5)]))
    assert slow.status == "failed" and slow.data == {"metric": "latency_p95_ms", "max_ms": 5, "value_ms": 7.5}
    assert "7.5 ms is over the limit 5 ms" in slow.detail
    assert judge(rule, ctx([obs("latency_p95_ms", 0.4)])).status == "passed"
    batch = {"type": "max_latency_ms", "percentile": 50, "value": 10, "batch": True}
    assert judge(batch, ctx([obs("batch_latency_p50_ms", 12.0)])).status == "failed"
    unmeasured = judge(rule, ctx([obs("f1", 0.9)]))
    assert unmeasured.status == "failed" and "no p95 single-row latency measured" in unmeasured.detail


def test_the_artifact_size_gate_reads_the_registry_size():
    rule = {"type": "max_artifact_mb", "value": 20}
    big = judge(rule, ctx([], size=30 * 1024 * 1024))
    assert big.status == "failed" and big.data["size_mb"] == 30 and "30 MB is over the limit 20 MB" in big.detail
    assert judge(rule, ctx([], size=2 * 1024 * 1024)).status == "passed"


def test_bad_update_rules_are_rejected_naming_the_rule_and_field():
    with pytest.raises(PolicyError) as caught:
        parse_policy(
            {
                "rules": [
                    {"type": "max_metric_drop", "metric": "f1", "vs": "grandparent", "value": -1},
                    {"type": "max_latency_ms", "percentile": 99, "value": 0},
                    {"type": "max_artifact_mb"},
                ]
            }
        )
    fields = {error["field"] for error in caught.value.errors}
    assert fields == {
        "rules[0].vs",
        "rules[0].value",
        "rules[1].percentile",
        "rules[1].value",
        "rules[2].value",
    }


def test_update_rules_round_trip_through_their_canonical_form():
    policy = parse_policy(
        {"rules": [DROP, {"type": "max_latency_ms", "value": 5}, {"type": "max_artifact_mb", "value": 20}]}
    )
    assert parse_policy(policy.to_dict()) == policy
    assert policy.to_dict()["rules"][1] == {
        "type": "max_latency_ms",
        "percentile": 95,
        "value": 5,
        "batch": False,
        "stages": ["staging", "production"],
    }


MEMORY = {"type": "max_memory_mb", "value": 512}


def test_the_measured_peak_memory_decides_the_memory_gate_with_both_figures():
    over = judge(MEMORY, ctx([obs("peak_memory_mb", 640.5)]))
    assert over.status == "failed" and over.needs is None
    assert over.data == {"metric": "peak_memory_mb", "max_mb": 512, "value_mb": 640.5}
    assert over.detail == "peak memory 640.5 MB is over the limit 512 MB"
    within = judge(MEMORY, ctx([obs("peak_memory_mb", 37.25)]))
    assert within.status == "passed" and within.detail == "peak memory 37.25 MB is within 512 MB"
    assert judge(MEMORY, ctx([obs("peak_memory_mb", 512.0)])).status == "passed"


def test_a_version_with_no_measured_peak_memory_fails_asking_for_an_evaluation():
    unmeasured = judge(MEMORY, ctx([obs("f1", 0.9), obs("latency_p95_ms", 0.3)]))

    assert unmeasured.status == "failed" and unmeasured.needs == "evaluation"
    assert unmeasured.data["value_mb"] is None
    assert "no peak memory measured" in unmeasured.detail and "the limit is 512 MB" in unmeasured.detail


@pytest.mark.parametrize(
    ("rule", "field", "words"),
    [
        ({"type": "max_memory_mb"}, "rules[0].value", "missing required field 'value'"),
        ({"type": "max_memory_mb", "value": 0}, "rules[0].value", "must be > 0"),
        ({"type": "max_memory_mb", "value": "512"}, "rules[0].value", "must be a number"),
        ({"type": "max_memory_mb", "value": 512, "percentile": 95}, "rules[0].percentile", "unknown key"),
        ({"type": "max_memory", "value": 512}, "rules[0].type", "did you mean 'max_memory_mb'?"),
    ],
)
def test_a_bad_memory_rule_is_refused_naming_its_field(rule, field, words):
    with pytest.raises(PolicyError) as caught:
        parse_policy({"rules": [rule]})

    (error,) = caught.value.errors
    assert error["field"] == field and words in error["message"]


def test_the_memory_rule_round_trips_through_its_canonical_form():
    policy = parse_policy({"rules": [MEMORY]})
    assert policy.to_dict()["rules"] == [{"type": "max_memory_mb", "value": 512, "stages": ["staging", "production"]}]
    assert parse_policy(policy.to_dict()) == policy
