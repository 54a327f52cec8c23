"""The signature check the gateway runs before a replica sees a request (pure, no
services): every MLflow payload form, accepted when right and refused with the column
and row named when wrong."""

from __future__ import annotations

import json

import pytest

from serving.validation import FORM_ONLY, InputSchema, PayloadError, input_schema, parse_payload, validate_payload

SIGNATURE = {
    "inputs": [
        {"type": "double", "name": "amount", "required": True},
        {"type": "long", "name": "count", "required": True},
        {"type": "string", "name": "country", "required": True},
        {"type": "boolean", "name": "flagged", "required": False},
    ]
}
SCHEMA = input_schema(SIGNATURE)
ROW = {"amount": 12.5, "count": 3, "country": "FR", "flagged": True}


def refusal(payload: dict, schema: InputSchema = SCHEMA) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        validate_payload(payload, schema)
    return caught.value


# --- reading signatures -------------------------------------------------------------


def test_a_column_signature_names_its_columns_and_which_are_required():
    assert [c.name for c in SCHEMA.columns] == ["amount", "count", "country", "flagged"]
    assert SCHEMA.required_names == ("amount", "count", "country")


def test_inputs_stored_as_json_text_as_mlmodel_keeps_them_read_the_same():
    assert input_schema({"inputs": json.dumps(SIGNATURE["inputs"])}) == SCHEMA


def test_tensor_and_missing_signatures_are_checked_for_form_only():
    tensor = {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]}
    assert input_schema(tensor) is FORM_ONLY
    assert input_schema(None) is FORM_ONLY
    assert input_schema({"inputs": [{"type": "double", "required": True}]}) is FORM_ONLY


def test_an_unreadable_signature_is_an_error():
    with pytest.raises(ValueError):
        input_schema({"inputs": "not json"})


# --- dataframe_split --------------------------------------------------------------------


def test_dataframe_split_with_the_right_columns_and_types_is_accepted():
    payload = {"dataframe_split": {"columns": ["amount", "count", "country"], "data": [[1, 2, "DE"], [0.5, 7, "FR"]]}}
    assert validate_payload(payload, SCHEMA) == "dataframe_split"


def test_dataframe_split_with_an_unknown_column_names_it():
    error = refusal({"dataframe_split": {"columns": ["amount", "count", "country", "colour"], "data": []}})
    assert error.details["column"] == "colour"
    assert "unknown column 'colour'" in error.message


def test_dataframe_split_without_a_required_column_names_it():
    error = refusal({"dataframe_split": {"columns": ["amount", "country"], "data": [[1.0, "FR"]]}})
    assert error.details == {"column": "count", "row": None, "problem": "missing"}


def test_dataframe_split_with_a_string_for_a_number_names_column_and_row():
    payload = {"dataframe_split": {"columns": ["amount", "count", "country"], "data": [[1.0, 2, "FR"], ["9", 2, "FR"]]}}
    error = refusal(payload)
    assert error.details == {"column": "amount", "row": 1, "expected": "double", "got": "string"}
    assert "'amount' in row 1 expects double" in error.message


def test_a_float_in_an_integer_column_and_a_number_as_boolean_are_refused():
    columns = ["amount", "count", "country", "flagged"]
    assert (
        refusal({"dataframe_split": {"columns": columns, "data": [[1.0, 2.5, "FR", True]]}}).details["column"]
        == "count"
    )
    assert (
        refusal({"dataframe_split": {"columns": columns, "data": [[1.0, 2, "FR", 1]]}}).details["column"] == "flagged"
    )
    # A JSON true is no number either.
    assert (
        refusal({"dataframe_split": {"columns": columns, "data": [[True, 2, "FR", True]]}}).details["column"]
        == "amount"
    )


def test_a_ragged_row_is_refused_with_its_index():
    payload = {"dataframe_split": {"columns": ["amount", "count", "country"], "data": [[1.0, 2, "FR"], [1.0, 2]]}}
    error = refusal(payload)
    assert error.details == {"row": 1, "expected": 3, "got": 2}


def test_null_is_nan_in_a_double_column_and_refused_in_a_required_string_one():
    columns = ["amount", "count", "country", "flagged"]
    validate_payload({"dataframe_split": {"columns": columns, "data": [[None, 1, "FR", None]]}}, SCHEMA)
    error = refusal({"dataframe_split": {"columns": columns, "data": [[1.0, 1, None, None]]}})
    assert error.details["column"] == "country" and error.details["got"] == "null"


def test_dataframe_split_needs_its_column_names_when_the_model_has_named_columns():
    error = refusal({"dataframe_split": {"data": [[1.0, 2, "FR"]]}})
    assert error.details["field"] == "dataframe_split.columns"


def test_a_column_named_twice_is_refused():
    error = refusal({"dataframe_split": {"columns": ["amount", "amount", "count", "country"], "data": []}})
    assert error.details == {"column": "amount"}


# --- dataframe_records and instances of records -------------------------------------------


@pytest.mark.parametrize("form", ["dataframe_records", "instances"])
def test_records_with_the_right_columns_are_accepted(form):
    assert validate_payload({form: [ROW, {**ROW, "flagged": None}]}, SCHEMA) == form


@pytest.mark.parametrize("form", ["dataframe_records", "instances"])
def test_a_record_missing_a_required_column_names_column_and_row(form):
    missing = {k: v for k, v in ROW.items() if k != "country"}
    error = refusal({form: [ROW, ROW, missing]})
    assert error.details == {"column": "country", "row": 2, "problem": "missing"}


@pytest.mark.parametrize("form", ["dataframe_records", "instances"])
def test_a_record_with_a_wrong_type_names_column_and_row(form):
    error = refusal({form: [{**ROW, "count": "three"}]})
    assert error.details == {"column": "count", "row": 0, "expected": "long", "got": "string"}


def test_a_record_with_an_unknown_column_names_it():
    error = refusal({"dataframe_records": [{**ROW, "colour": "red"}]})
    assert error.details["column"] == "colour" and error.details["row"] == 0


def test_positional_instances_are_refused_for_a_model_with_named_columns():
    # MLflow's scoring server refuses them too, less clearly: name the columns instead.
    error = refusal({"instances": [[1.0, 2, "FR"]]})
    assert error.details["row"] == 0
    assert "named columns" in error.message


def test_positional_instances_pass_for_a_tensor_model():
    assert validate_payload({"instances": [[1.0, 2.0], [3.0, 4.0]]}, FORM_ONLY) == "instances"


# --- inputs -------------------------------------------------------------------------------


def test_columnar_inputs_are_accepted_and_scalars_count_as_one_row():
    assert validate_payload({"inputs": {"amount": [1.0, 2.0], "count": [1, 2], "country": ["FR", "DE"]}}, SCHEMA)
    assert validate_payload({"inputs": {"amount": 1.0, "count": 1, "country": "FR"}}, SCHEMA) == "inputs"


def test_columnar_inputs_of_different_lengths_are_ragged():
    error = refusal({"inputs": {"amount": [1.0, 2.0], "count": [1], "country": ["FR", "DE"]}})
    assert error.details == {"column": "count", "expected": 2, "got": 1}


def test_columnar_inputs_with_a_wrong_type_name_column_and_row():
    error = refusal({"inputs": {"amount": [1.0, "x"], "count": [1, 2], "country": ["FR", "DE"]}})
    assert error.details == {"column": "amount", "row": 1, "expected": "double", "got": "string"}


def test_columnar_inputs_missing_a_required_column_name_it():
    assert refusal({"inputs": {"amount": [1.0], "count": [1]}}).details["column"] == "country"


def test_inputs_as_a_list_of_records_are_checked_as_records():
    assert validate_payload({"inputs": [ROW]}, SCHEMA) == "inputs"
    assert refusal({"inputs": [{**ROW, "amount": "x"}]}).details["column"] == "amount"


def test_an_array_column_takes_a_list_per_row():
    schema = input_schema({"inputs": [{"type": "array", "items": {"type": "double"}, "name": "v", "required": True}]})
    validate_payload({"inputs": {"v": [[1.0, 2.0], [3.0]]}}, schema)
    validate_payload({"dataframe_records": [{"v": [1.0, 2.0]}]}, schema)
    assert refusal({"dataframe_records": [{"v": 1.0}]}, schema).details["column"] == "v"


# --- the envelope -----------------------------------------------------------------------


def test_exactly_one_payload_form_is_required():
    assert refusal({"params": {}}).details == {"forms": []}
    both = refusal({"instances": [ROW], "inputs": [ROW]})
    assert both.details == {"forms": ["instances", "inputs"]}


def test_params_beside_the_payload_are_allowed_and_other_keys_are_not():
    assert validate_payload({"dataframe_records": [ROW], "params": {"threshold": 0.3}}, SCHEMA)
    refusal({"dataframe_records": [ROW], "extra": 1})
    refusal({"dataframe_records": [ROW], "params": [1]})


def test_parse_payload_accepts_a_json_object_and_refuses_anything_else():
    assert parse_payload(b'{"instances": []}') == {"instances": []}
    for body in (b"", b"not json", b"[1, 2]", b"\xff\xfe"):
        with pytest.raises(PayloadError):
            parse_payload(body)
