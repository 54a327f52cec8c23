"""Checks a scoring request against the input signature of the version it is routed to,
before any replica sees it. Pure (no Starlette, no Django): the gateway calls it on every
request, so it works on the JSON it parsed once and never re-encodes it.

The request forms are MLflow's scoring protocol::

    {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3, 0.1]]}}
    {"dataframe_records": [{"a": 1, "b": 2.5}]}
    {"instances": [{"a": 1, "b": 2.5}]}          (or a list of tensors)
    {"inputs": {"a": [1, 3], "b": [2.5, 0.1]}}    (or a list, as ``instances``)

each with an optional ``"params"`` object. The signature is MLflow's column signature,
``{"inputs": [{"type": "double", "name": "a", "required": true}, ...]}`` (``inputs`` may
also be the JSON text MLflow's ``MLmodel`` file stores). A tensor signature, or one whose
columns have no names, is checked for its form only: its shapes are the replica's to judge.

Type rules are stricter than pandas' coercion: a string where a number is expected is an
error here even when pandas would parse it, and a float in an integer column is one too.
``null`` is accepted in optional columns and, as NaN, in floating-point ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PAYLOAD_FORMS: tuple[str, ...] = ("dataframe_split", "dataframe_records", "instances", "inputs")
_ALLOWED_TOP_LEVEL = frozenset({*PAYLOAD_FORMS, "params"})

# The Python types ``json.loads`` produces that each MLflow column type accepts (exact
# types: ``bool`` is a subclass of ``int`` and must not pass as a number).
_ACCEPTED_TYPES: dict[str, frozenset[type]] = {
    "double": frozenset({float, int}),
    "float": frozenset({float, int}),
    "long": frozenset({int}),
    "integer": frozenset({int}),
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
    "binary": frozenset({str}),
    "datetime": frozenset({str}),
    "array": frozenset({list}),
    "object": frozenset({dict}),
    "map": frozenset({dict}),
}
_NULL_AS_NAN = frozenset({"double", "float"})
_JSON_NAMES: dict[type, str] = {
    float: "number",
    int: "integer",
    bool: "boolean",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


class PayloadError(ValueError):
    """A request the version's signature refuses; ``details`` names the column and row."""

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = True

    def check(self, value: Any, row: int | None) -> None:
        """Refuse a value of the wrong JSON type; ``row`` is named in the error."""
        if value is None:
            if self.required and self.type not in _NULL_AS_NAN:
                where = f" in row {row}" if row is not None else ""
                raise PayloadError(
                    f"column {self.name!r}{where} is required and may not be null",
                    {"column": self.name, "row": row, "expected": self.type, "got": "null"},
                )
            return
        accepted = _ACCEPTED_TYPES.get(self.type)
        if accepted is not None and type(value) not in accepted:
            where = f" in row {row}" if row is not None else ""
            got = _JSON_NAMES.get(type(value), type(value).__name__)
            raise PayloadError(
                f"column {self.name!r}{where} expects {self.type}, got {got} {_preview(value)}",
                {"column": self.name, "row": row, "expected": self.type, "got": got},
            )


@dataclass(frozen=True)
class InputSchema:
    """The named columns a version takes; ``columns`` is empty for a signature that is
    checked for its form only (tensors, unnamed columns, no signature)."""

    columns: tuple[Column, ...] = ()
    by_name: Mapping[str, Column] = field(init=False, repr=False, compare=False)
    required_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})
        object.__setattr__(self, "required_names", tuple(c.name for c in self.columns if c.required))

    @property
    def named(self) -> bool:
        return bool(self.columns)


FORM_ONLY = InputSchema()


def input_schema(signature: Mapping[str, Any] | None) -> InputSchema:
    """The schema a route's ``signature`` describes; ``FORM_ONLY`` when it names no
    columns. A signature that cannot be read is an error (the control plane published it)."""
    if not signature:
        return FORM_ONLY
    if not isinstance(signature, Mapping):
        raise ValueError(f"a signature is a JSON object, not {type(signature).__name__}")
    inputs = signature.get("inputs")
    if inputs is None:
        return FORM_ONLY
    if isinstance(inputs, str):
        # MLmodel files keep the inputs as JSON text.
        try:
            inputs = json.loads(inputs)
        except ValueError as exc:
            raise ValueError(f"the signature's inputs are not valid JSON: {exc}") from exc
    if not isinstance(inputs, list):
        raise ValueError("the signature's inputs must be a list of column specs")
    columns = []
    for spec in inputs:
        if not isinstance(spec, Mapping):
            raise ValueError(f"a column spec is a JSON object, not {spec!r}")
        if spec.get("type") == "tensor" or not spec.get("name"):
            return FORM_ONLY
        columns.append(
            Column(name=str(spec["name"]), type=str(spec.get("type", "any")), required=bool(spec.get("required", True)))
        )
    return InputSchema(columns=tuple(columns))


def parse_payload(body: bytes) -> dict[str, Any]:
    """The request's JSON object, or ``PayloadError`` for bytes that are not one."""
    if not body:
        raise PayloadError('the request body is empty; send a JSON object such as {"dataframe_split": ...}')
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise PayloadError(f"the request body must be a JSON object with one of {', '.join(PAYLOAD_FORMS)}")
    return payload


def validate_payload(payload: Mapping[str, Any], schema: InputSchema) -> str:
    """Refuse a request ``schema`` does not accept (``PayloadError`` naming the column and
    row); return the form it uses."""
    forms = [key for key in PAYLOAD_FORMS if key in payload]
    if len(forms) != 1:
        found = f"found {', '.join(forms)}" if forms else "found none"
        raise PayloadError(
            f"the request must have exactly one of {', '.join(PAYLOAD_FORMS)} ({found})", {"forms": forms}
        )
    unknown = sorted(set(payload) - _ALLOWED_TOP_LEVEL)
    if unknown:
        raise PayloadError(f"unknown top-level keys {unknown}; expected one of {', '.join(PAYLOAD_FORMS)} and params")
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise PayloadError("params must be a JSON object", {"field": "params"})
    form = forms[0]
    data = payload[form]
    if form == "dataframe_split":
        _check_split(data, schema)
    elif form == "dataframe_records":
        _check_records(data, schema, form)
    elif form == "inputs" and isinstance(data, dict):
        _check_columnar(data, schema)
    else:
        _check_instances(data, schema, form)
    return form


def _check_split(data: Any, schema: InputSchema) -> None:
    if not isinstance(data, dict):
        raise PayloadError("dataframe_split must be an object with columns and data", {"field": "dataframe_split"})
    rows = data.get("data")
    if not isinstance(rows, list):
        raise PayloadError("dataframe_split.data must be a list of rows", {"field": "dataframe_split.data"})
    columns = data.get("columns")
    if columns is None:
        if schema.named:
            raise PayloadError(
                "dataframe_split.columns is required: this model takes named columns",
                {"field": "dataframe_split.columns", "expected": list(schema.required_names)},
            )
        width = None
        for index, row in enumerate(rows):
            if not isinstance(row, list):
                raise PayloadError(f"row {index} of dataframe_split.data is not a list", {"row": index})
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise PayloadError(
                    f"row {index} of dataframe_split.data has {len(row)} values, the first row {width}",
                    {"row": index, "expected": width, "got": len(row)},
                )
        return
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise PayloadError(
            "dataframe_split.columns must be a list of column names", {"field": "dataframe_split.columns"}
        )
    if len(set(columns)) != len(columns):
        repeated = next(c for c in columns if columns.count(c) > 1)
        raise PayloadError(f"column {repeated!r} is named twice in dataframe_split.columns", {"column": repeated})
    specs = _match_columns(columns, schema, row=None)
    width = len(columns)
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            raise PayloadError(f"row {index} of dataframe_split.data is not a list", {"row": index})
        if len(row) != width:
            raise PayloadError(
                f"row {index} of dataframe_split.data has {len(row)} values for {width} columns",
                {"row": index, "expected": width, "got": len(row)},
            )
        if specs is not None:
            for spec, value in zip(specs, row, strict=True):
                spec.check(value, index)


def _check_records(records: Any, schema: InputSchema, form: str) -> None:
    if not isinstance(records, list):
        raise PayloadError(f"{form} must be a list of objects", {"field": form})
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise PayloadError(f"row {index} of {form} is not an object", {"row": index})
        if not schema.named:
            continue
        for spec in _match_columns(record.keys(), schema, row=index) or ():
            spec.check(record[spec.name], index)


def _check_columnar(data: dict[str, Any], schema: InputSchema) -> None:
    length = None
    first = None
    for name, values in data.items():
        count = len(values) if isinstance(values, list) else 1
        if length is None:
            length, first = count, name
        elif count != length:
            raise PayloadError(
                f"column {name!r} of inputs has {count} values, column {first!r} has {length}",
                {"column": name, "expected": length, "got": count},
            )
    if not schema.named:
        return
    for spec in _match_columns(data.keys(), schema, row=None) or ():
        values = data[spec.name]
        # An array column's value is a list itself: it is a batch only when it is a list
        # of lists.
        batch = isinstance(values, list) and (spec.type != "array" or all(isinstance(v, list) for v in values))
        if batch:
            for index, value in enumerate(values):
                spec.check(value, index)
        else:
            spec.check(values, None)


def _check_instances(data: Any, schema: InputSchema, form: str) -> None:
    if not isinstance(data, list):
        raise PayloadError(f"{form} must be a list (or, for inputs, an object of columns)", {"field": form})
    if data and all(isinstance(item, dict) for item in data):
        _check_records(data, schema, form)
        return
    if schema.named:
        index = next((i for i, item in enumerate(data) if not isinstance(item, dict)), 0)
        raise PayloadError(
            f"row {index} of {form} is not an object: this model takes named columns, send "
            "{column: value} objects or dataframe_split",
            {"row": index, "expected": list(schema.required_names)},
        )


def _match_columns(names: Sequence[str] | Any, schema: InputSchema, *, row: int | None) -> list[Column] | None:
    """The specs of ``names`` in their order; an unknown or a missing required column is
    an error. None for a schema that names no columns."""
    if not schema.named:
        return None
    where = f" in row {row}" if row is not None else ""
    specs = []
    for name in names:
        spec = schema.by_name.get(name)
        if spec is None:
            raise PayloadError(
                f"unknown column {name!r}{where}; the model takes {_name_list(schema)}",
                {"column": name, "row": row, "problem": "unknown"},
            )
        specs.append(spec)
    present = set(names)
    for name in schema.required_names:
        if name not in present:
            raise PayloadError(
                f"required column {name!r} is missing{where}", {"column": name, "row": row, "problem": "missing"}
            )
    return specs


def _name_list(schema: InputSchema) -> str:
    names = [c.name for c in schema.columns]
    shown = ", ".join(repr(n) for n in names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def _preview(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
