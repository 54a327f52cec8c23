"""An incremental update's rows from the prediction log (pure core): labelled rows only,
in the dataset's column order, and a clear refusal where they cannot be trained on."""

from __future__ import annotations

import pandas as pd
import pytest

from lifecycle.derivations.methods import MethodParamsError, params_check
from lifecycle.derivations.methods.labelled_rows import labelled_rows


def _window(rows: list[dict], labels: list) -> pd.DataFrame:
    calls = pd.DataFrame({"request_id": [f"r{i}" for i in range(len(rows))], "row": 0, "version": 1})
    return pd.concat([calls, pd.DataFrame(rows)], axis=1).assign(prediction=0, label=pd.Series(labels, dtype=object))


def test_only_labelled_complete_rows_are_kept_in_the_datasets_column_order():
    window = _window(
        [{"b": 2.0, "a": 1.0}, {"b": 4.0, "a": 3.0}, {"b": None, "a": 5.0}, {"b": 8.0, "a": 7.0}],
        [1, None, "0", 1.0],
    )

    x, y, summary = labelled_rows(window, columns=["a", "b"], labels=[0, 1], task="classification")

    assert x.tolist() == [[1.0, 2.0], [7.0, 8.0]]
    assert y.tolist() == [1, 1]
    assert (summary["logged_rows"], summary["labelled_rows"], summary["rows"], summary["incomplete_rows"]) == (
        4,
        3,
        2,
        1,
    )
    assert len(summary["digest"]) == 64


def test_an_unnamed_tensor_input_is_matched_by_position():
    window = _window([{"0": 1.0, "1": 2.0}], [0.5])

    x, y, _ = labelled_rows(window, columns=["a", "b"], labels=[], task="regression")

    assert x.tolist() == [[1.0, 2.0]] and y.tolist() == [0.5]


@pytest.mark.parametrize(
    ("rows", "labels", "problem"),
    [
        ([{"a": 1.0}], [1], "lack the model's columns b"),
        ([{"a": "pii:12ab", "b": 1.0}], [1], "masked as personal data"),
        ([{"a": 1.0, "b": 1.0}], ["cat"], "not among the model's classes"),
    ],
)
def test_rows_that_cannot_be_trained_on_are_refused_with_the_reason(rows, labels, problem):
    with pytest.raises(ValueError, match=problem):
        labelled_rows(_window(rows, labels), columns=["a", "b"], labels=[0, 1], task="classification")


def test_a_predictions_source_is_validated_and_gets_its_minimum():
    clean = params_check("incremental", {"data": {"source": "predictions", "days": 7}})
    assert clean["data"] == {"source": "predictions", "days": 7, "min_rows": 20}

    with pytest.raises(MethodParamsError) as caught:
        params_check("incremental", {"data": {"source": "predictions", "days": 0}, "dataset": "fresh"})
    assert "days must be between 1 and 365" in caught.value.errors["params.data"]
    with pytest.raises(MethodParamsError) as caught:
        params_check("incremental", {"data": {"source": "predictions", "days": 7}, "dataset": "fresh"})
    assert "not both" in caught.value.errors["params.data"]
    with pytest.raises(MethodParamsError) as caught:
        params_check("incremental", {"data": {"source": "warehouse", "days": 7}})
    assert "source must be one of predictions" in caught.value.errors["params.data"]
