"""Monitor rules parse and validate like the gate rules, and judge a run of windows."""

from __future__ import annotations

import pytest

from lifecycle.governance.rules import PolicyError
from lifecycle.monitoring.rules import (
    DriftMonitor,
    LiveMetricMonitor,
    WindowSummary,
    monitors_to_dict,
    parse_monitors,
)


def _errors(raw) -> dict[str, str]:
    with pytest.raises(PolicyError) as caught:
        parse_monitors(raw)
    return {e["field"]: e["message"] for e in caught.value.errors}


def test_a_drift_monitor_gets_its_statistics_default_threshold():
    (rule,) = parse_monitors([{"type": "drift", "features": "*", "statistic": "psi"}])
    assert rule == DriftMonitor(features="*", statistic="psi", op=">", value=0.2, windows=3, action="alert")
    assert monitors_to_dict([rule]) == [
        {
            "type": "drift",
            "op": ">",
            "value": 0.2,
            "windows": 3,
            "action": "alert",
            "features": "*",
            "statistic": "psi",
            "min_rows": 100,
        }
    ]
    assert parse_monitors(monitors_to_dict([rule])) == (rule,)


def test_every_bad_field_is_named_with_its_rule_index():
    errors = _errors(
        [
            {"type": "drift", "statistic": "pis", "action": "reboot"},
            {"type": "live_metric", "op": "<", "value": "high"},
            {"type": "latency", "op": ">", "value": 1},
            {"type": "error_rate", "op": "~", "value": 0.1, "windows": 0, "colour": "red"},
            {"type": "drift", "statistic": "chi2"},
        ]
    )
    assert "did you mean 'psi'" in errors["monitors[0].statistic"]
    assert "reboot" in errors["monitors[0].action"]
    assert "metric" in errors["monitors[1].metric"]
    assert "finite number" in errors["monitors[1].value"]
    assert "unknown monitor type 'latency'" in errors["monitors[2].type"]
    assert "unknown operator" in errors["monitors[3].op"]
    assert "monitors[3].windows" in errors
    assert "unknown key 'colour'" in errors["monitors[3].colour"]
    # chi2 has no default threshold: the rule must give one.
    assert "missing required field 'value'" in errors["monitors[4].value"]
    assert _errors({"type": "drift"}) == {"monitors": "monitors must be a list of objects, got {'type': 'drift'}"}


def test_a_drift_rule_fires_only_after_its_windows_in_a_row():
    rule = parse_monitors([{"type": "drift", "features": ["age"], "statistic": "psi", "windows": 2}])[0]
    calm = WindowSummary(rows=500, statistics={"age": {"psi": 0.05}, "income": {"psi": 0.9}})
    hot = WindowSummary(rows=500, statistics={"age": {"psi": 0.4}})
    small = WindowSummary(rows=10, statistics={"age": {"psi": 0.9}})
    assert not rule.evaluate([hot]).firing
    assert not rule.evaluate([hot, calm]).firing
    assert not rule.evaluate([hot, small]).firing
    verdict = rule.evaluate([calm, hot, hot])
    assert verdict.firing and verdict.features == ("age",) and verdict.observed == pytest.approx(0.4)


def test_a_live_metric_needs_its_labels_before_it_can_fire():
    (rule,) = parse_monitors([{"type": "live_metric", "metric": "f1", "op": "<", "value": 0.85, "min_labels": 200}])
    assert isinstance(rule, LiveMetricMonitor) and rule.windows == 1
    assert not rule.evaluate([WindowSummary(rows=900, metrics={"f1": 0.5}, labels=150)]).firing
    assert rule.evaluate([WindowSummary(rows=900, metrics={"f1": 0.5}, labels=250)]).firing
    assert not rule.evaluate([WindowSummary(rows=900, metrics={"f1": 0.9}, labels=250)]).firing


def test_latency_and_error_rate_rules_read_their_window_figures():
    latency, errors = parse_monitors(
        [
            {"type": "latency_p95_ms", "op": ">", "value": 250, "windows": 1},
            {"type": "error_rate", "op": ">", "value": 0.05, "windows": 1, "action": "rollback"},
        ]
    )
    window = WindowSummary(rows=100, latency_p95_ms=300.0, error_rate=0.01)
    assert latency.evaluate([window]).firing
    assert not errors.evaluate([window]).firing
    assert errors.action == "rollback"
