"""The model card as data: parsing, what a complete card lacks, diffs, seeded gates, and
the Markdown export (pure, no database)."""

from __future__ import annotations

import pytest

from lifecycle.design import card as design_card
from lifecycle.design.card import CardError, card_diff, card_empty, card_missing, card_parse, seeded_rules
from lifecycle.design.markdown import card_markdown
from lifecycle.governance.rules import RULE_TYPES, parse_policy
from registry.choices import TaskType

COMPLETE = {
    "intended_use": "Flag card payments likely to be fraudulent for manual review.",
    "out_of_scope_uses": ["credit decisions", "blocking payments without review"],
    "owner": "payments-risk@example.com",
    "task": "classification",
    "input_schema": [{"name": "amount", "type": "double"}, {"name": "country", "type": "string"}],
    "output_schema": [{"name": "fraud_probability", "type": "double"}],
    "datasets": [{"name": "payments-2025", "role": "training"}, {"name": "holdout", "role": "evaluation"}],
    "success_criteria": [{"metric": "f1", "op": ">=", "value": 0.9}],
    "risks": ["false positives delay honest customers"],
    "fairness": "Recall is compared across card-issuing countries each evaluation.",
    "resource_budget": {"latency_p95_ms": 5, "memory_mb": 512, "artifact_mb": 20},
}


def test_a_complete_card_lacks_nothing():
    assert card_missing(card_parse(COMPLETE)) == []


def test_the_empty_card_lacks_every_field_by_name():
    assert card_missing(card_empty()) == [
        "intended_use",
        "out_of_scope_uses",
        "owner",
        "task",
        "input_schema",
        "output_schema",
        "datasets",
        "success_criteria",
        "risks",
        "fairness",
        "resource_budget.latency_p95_ms",
        "resource_budget.memory_mb",
        "resource_budget.artifact_mb",
    ]


def test_a_draft_is_parsed_and_names_only_what_it_lacks():
    draft = card_parse({"intended_use": "  scoring  ", "resource_budget": {"artifact_mb": 20}})
    assert draft["intended_use"] == "scoring"
    assert "intended_use" not in card_missing(draft)
    assert "resource_budget.artifact_mb" not in card_missing(draft)
    assert "resource_budget.memory_mb" in card_missing(draft)


def test_blank_text_counts_as_missing():
    assert "owner" in card_missing(card_parse({**COMPLETE, "owner": "   ", "risks": ["  "]}))
    assert "risks" in card_missing(card_parse({**COMPLETE, "risks": ["  "]}))


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"colour": "red"}, "colour"),
        ({"owner": 5}, "owner"),
        ({"task": "clustering"}, "task"),
        ({"out_of_scope_uses": "credit"}, "out_of_scope_uses"),
        ({"input_schema": [{"name": "amount", "type": "decimal"}]}, "input_schema[0].type"),
        ({"input_schema": [{"name": "a", "type": "double"}, {"name": "a", "type": "long"}]}, "input_schema[1].name"),
        ({"datasets": [{"name": "x", "role": "testing"}]}, "datasets[0].role"),
        ({"success_criteria": [{"metric": "f1", "op": "~", "value": 0.9}]}, "success_criteria[0].op"),
        ({"success_criteria": [{"metric": "f1", "value": "high"}]}, "success_criteria[0].value"),
        ({"success_criteria": [{"metric": "f1", "value": 0.9, "stages": ["training"]}]}, "success_criteria[0].stages"),
        ({"resource_budget": {"latency_p95_ms": -1}}, "resource_budget.latency_p95_ms"),
        ({"resource_budget": {"gpu_count": 1}}, "resource_budget.gpu_count"),
    ],
)
def test_a_malformed_card_names_the_bad_field(change, path):
    with pytest.raises(CardError) as caught:
        card_parse({**COMPLETE, **change})
    assert path in caught.value.problems


def test_the_diff_names_each_changed_field_with_both_values():
    before = card_parse(COMPLETE)
    after = card_parse({**COMPLETE, "owner": "risk-team@example.com"})
    assert card_diff(before, after) == {
        "owner": {"before": "payments-risk@example.com", "after": "risk-team@example.com"}
    }


def test_success_criteria_become_metric_threshold_gates_the_policy_accepts():
    card = card_parse(
        {
            **COMPLETE,
            "success_criteria": [
                *COMPLETE["success_criteria"],
                {"metric": "auc", "value": 0.95, "stages": ["production"]},
            ],
        }
    )
    rules = seeded_rules(card, RULE_TYPES)
    assert rules[:2] == [
        {"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.9},
        {"type": "metric_threshold", "metric": "auc", "op": ">=", "value": 0.95, "stages": ["production"]},
    ]
    parse_policy({"rules": rules})


def test_the_budgets_and_the_input_schema_are_seeded_as_gates_where_the_policy_language_knows_them():
    card = card_parse(COMPLETE)
    without = seeded_rules(card, ("metric_threshold",))
    assert [rule["type"] for rule in without] == ["metric_threshold"]
    with_budgets = seeded_rules(card, RULE_TYPES)
    assert with_budgets[1] == {"type": "input_schema", "columns": ["amount", "country"]}
    assert with_budgets[2:] == [
        {"type": "max_artifact_mb", "value": 20.0},
        {"type": "max_latency_ms", "percentile": 95, "value": 5.0},
        {"type": "max_memory_mb", "value": 512.0},
    ]
    parse_policy({"rules": with_budgets})


def test_the_memory_budget_seeds_a_memory_gate_only_where_the_card_has_one():
    card = card_parse(COMPLETE)
    assert {"type": "max_memory_mb", "value": 512.0} in seeded_rules(card, RULE_TYPES)
    without = {**card, "resource_budget": {**card["resource_budget"], "memory_mb": None}}
    assert all(rule["type"] != "max_memory_mb" for rule in seeded_rules(without, RULE_TYPES))


def test_the_card_knows_the_registry_task_types():
    assert design_card.TASKS == tuple(TaskType.values)


MODEL = {"name": "fraud-detector", "team": "fraud", "stage": "design", "description": "flags fraud"}


def test_the_markdown_card_has_every_section_and_says_what_is_missing():
    text = card_markdown(model=MODEL, card=card_empty(), revision=0, missing=card_missing(card_empty()))
    assert text.startswith("# Model card: fraud-detector\n")
    assert "card complete: no — missing intended_use, out_of_scope_uses" in text
    for title in ("Intended use", "Out-of-scope uses", "Input schema", "Success criteria", "Resource budget"):
        assert f"## {title}" in text


def test_the_version_card_sets_metrics_against_targets_and_the_artifact_against_its_budget():
    card = card_parse(COMPLETE)
    version = {
        "number": 3,
        "stage": "staging",
        "created_at": "2026-12-01T00:00:00+00:00",
        "size_bytes": 25 * 1024 * 1024,
        "metrics": {"f1": 0.85, "accuracy": 0.97, "latency_p95_ms": 4.0, "peak_memory_mb": 700.0},
    }
    text = card_markdown(model=MODEL, card=card, revision=2, missing=[], version=version)
    assert text.startswith("# Model card: fraud-detector v3\n")
    assert "| f1 | 0.85 | >= 0.9 | NOT met |" in text
    assert "| accuracy | 0.97 | — | — |" in text
    assert "| artifact_mb | 20 | 25 | OVER |" in text
    assert "| latency_p95_ms | 5 | 4 | within |" in text
    # The measured peak memory (metric peak_memory_mb) is set against the memory budget.
    assert "| memory_mb | 512 | 700 | OVER |" in text
    assert "- payments-2025 (training)" in text
    assert "card complete: yes" in text
