"""Bad input to every registry endpoint is a 4xx in the error format, never a 500 or HTML.

``{"error": {"code", "message", "details"}}``, with ``details`` naming the field at fault
where one is, and a rejected create stores nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection

from lifecycle.models import AuditRecord, OutboxEvent
from registry.models import (
    Alias,
    Dataset,
    IdempotencyRecord,
    ModelTag,
    ModelVersion,
    RegisteredModel,
    VersionMetric,
    VersionTag,
)

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
LONG = "x" * 300


@dataclass(frozen=True)
class Write:
    """An endpoint that takes a JSON body, and a body it would accept."""

    name: str
    method: str
    path: str
    valid: dict[str, Any]
    required: tuple[str, ...] = ()


WRITES = {
    w.name: w
    for w in (
        Write("model-create", "POST", "models/", {"name": "new-model", "team": "fraud"}, ("name", "team")),
        Write("model-update", "PATCH", "models/fraud-detector/", {"description": "retrained weekly"}),
        Write(
            "version-register",
            "POST",
            "models/fraud-detector/versions/",
            {"run_id": "0123456789abcdef0123456789abcdef"},
        ),
        Write("alias-set", "PUT", "models/fraud-detector/aliases/candidate/", {"version": 2}, ("version",)),
        Write(
            "dataset-create",
            "POST",
            "datasets/",
            {"name": "new-data", "team": "fraud", "uri": "builtin:iris"},
            ("name", "team", "uri"),
        ),
    )
}


@dataclass(frozen=True)
class Bad:
    """A bad request to a write endpoint: the status and the field ``details`` must name."""

    write: str
    status: int
    field: str | None = None
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    path: str | None = None
    code: str | None = None
    id: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def _generic(write: Write) -> list[Bad]:
    """What every JSON endpoint must refuse, whatever its fields."""
    name = write.name
    cases = [
        Bad(name, 400, raw=b'{"name": ', code="malformed_request", id="malformed-json"),
        Bad(name, 400, raw=b"{'name': 'x'}", code="malformed_request", id="single-quoted-json"),
        Bad(name, 400, raw=b'{"name": NaN}', id="nan-json"),
        Bad(name, 400, body=[write.valid], id="array"),
        Bad(name, 400, body=[], id="empty-array"),
        Bad(name, 400, body="fraud", id="string"),
        Bad(name, 400, body=42, id="number"),
        Bad(name, 400, raw=b"null", id="null"),
        Bad(name, 400, body={**write.valid, "colour": "red"}, field="colour", id="unknown-field"),
        Bad(
            name,
            413,
            body={**write.valid, "padding": "x" * (MIB + 1)},
            code="payload_too_large",
            id="over-1-MiB",
        ),
        Bad(name, 415, raw=b"name=new-model&team=fraud", content_type="application/x-www-form-urlencoded", id="form"),
        Bad(name, 415, raw=json.dumps(write.valid).encode(), content_type="text/plain", id="text-plain"),
        Bad(name, 415, raw=b"<model name='x'/>", content_type="application/xml", id="xml"),
    ]
    cases += [
        Bad(name, 400, body={k: v for k, v in write.valid.items() if k != missing}, field=missing, id=f"no-{missing}")
        for missing in write.required
    ]
    if write.method == "POST":
        cases.append(Bad(name, 400, body={}, field=write.required[0] if write.required else "run_id", id="empty"))
        cases.append(
            Bad(
                name,
                400,
                body=write.valid,
                headers={"HTTP_IDEMPOTENCY_KEY": "k" * 256},
                field="Idempotency-Key",
                id="idempotency-key-too-long",
            )
        )
    return cases


def _names(write: str, field_name: str, base: dict[str, Any]) -> list[Bad]:
    """Names with odd characters, too long, empty, or not strings at all."""
    values = {
        "space": "a b",
        "dotdot-slash": "../x",
        "umlaut": "ü",
        "300-chars": LONG,
        "empty": "",
        "leading-dash": "-x",
        "null": None,
        "number": 123,
        "float": 1.5,
        "bool": True,
        "object": {"a": 1},
        "list": ["x"],
    }
    return [
        Bad(write, 400, body={**base, field_name: value}, field=field_name, id=f"{field_name}-{label}")
        for label, value in values.items()
    ]


MODEL = WRITES["model-create"].valid
DATASET = WRITES["dataset-create"].valid
RUN = WRITES["version-register"].valid

FIELD_CASES: list[Bad] = [
    *_names("model-create", "name", MODEL),
    *_names("model-create", "team", MODEL),
    *_names("dataset-create", "name", DATASET),
    *_names("dataset-create", "team", DATASET),
    Bad("model-create", 400, body={**MODEL, "team": "no-such-team"}, field="team", id="team-unknown"),
    Bad("model-create", 400, body={**MODEL, "description": {"a": 1}}, field="description", id="description-object"),
    Bad("model-create", 400, body={**MODEL, "description": 5}, field="description", id="description-number"),
    Bad("model-create", 400, body={**MODEL, "task": "flying"}, field="task", id="task-unknown"),
    Bad("model-create", 400, body={**MODEL, "task": 5}, field="task", id="task-number"),
    Bad("model-create", 400, body={**MODEL, "task": True}, field="task", id="task-bool"),
    Bad("model-create", 400, body={**MODEL, "task": {}}, field="task", id="task-object"),
    Bad("model-create", 400, body={**MODEL, "primary_metric": "f1; drop"}, field="primary_metric", id="metric-odd"),
    Bad("model-create", 400, body={**MODEL, "primary_metric": {"a": 1}}, field="primary_metric", id="metric-object"),
    Bad("model-create", 400, body={**MODEL, "policy": "strict"}, field="policy", id="policy-string"),
    Bad("model-create", 400, body={**MODEL, "policy": 5}, field="policy", id="policy-number"),
    Bad("model-create", 400, body={**MODEL, "policy": []}, field="policy", id="policy-array"),
    Bad("model-create", 400, body={**MODEL, "policy": {"rules": "all"}}, field="policy", id="policy-rules-string"),
    Bad(
        "model-create",
        400,
        body={**MODEL, "policy": {"rules": [{"type": "vibes"}]}},
        field="policy",
        id="policy-rule-unknown",
    ),
    Bad(
        "model-create",
        400,
        body={**MODEL, "policy": {"rules": [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": "x"}]}},
        field="policy",
        id="policy-threshold-not-number",
    ),
    Bad("model-create", 400, body={**MODEL, "tags": "x"}, field="tags", id="tags-string"),
    Bad("model-create", 400, body={**MODEL, "tags": ["a"]}, field="tags", id="tags-array"),
    Bad("model-create", 400, body={**MODEL, "tags": {"bad key!": "v"}}, field="tags", id="tags-bad-key"),
    Bad("model-create", 400, body={**MODEL, "tags": {"k": {"a": 1}}}, field="tags", id="tags-object-value"),
    Bad("model-create", 400, body={**MODEL, "tags": {"k": "v" * 600}}, field="tags", id="tags-long-value"),
    Bad("model-create", 400, body={**MODEL, "dataset": "no-such-data"}, field="dataset", id="dataset-unknown"),
    Bad("model-create", 400, body={**MODEL, "dataset": {"a": 1}}, field="dataset", id="dataset-object"),
    Bad("model-update", 400, body={"name": "renamed"}, field="name", id="name-not-changeable"),
    Bad("model-update", 400, body={"team": "ads"}, field="team", id="team-not-changeable"),
    Bad("model-update", 400, body={"description": {"a": 1}}, field="description", id="description-object"),
    Bad("model-update", 400, body={"task": "flying"}, field="task", id="task-unknown"),
    Bad("model-update", 400, body={"policy": {"rules": [{"type": "vibes"}]}}, field="policy", id="policy-bad"),
    Bad("model-update", 400, body={"policy": "strict"}, field="policy", id="policy-string"),
    Bad("model-update", 400, body={"tags": {"bad key!": "v"}}, field="tags", id="tags-bad-key"),
    Bad("model-update", 400, body={"dataset": "no-such-data"}, field="dataset", id="dataset-unknown"),
    Bad("model-update", 400, body={"reason": {"a": 1}}, field="reason", id="reason-object"),
    Bad("model-update", 400, body={"primary_metric": True}, field="primary_metric", id="metric-bool"),
    Bad("version-register", 400, body={}, field="run_id", id="neither-run-nor-source"),
    Bad("version-register", 400, body={**RUN, "source": "/tmp"}, field="run_id", id="run-and-source"),
    Bad("version-register", 400, body={"run_id": "not a run!"}, field="run_id", id="run-id-odd"),
    Bad("version-register", 400, body={"run_id": "../../etc/passwd"}, field="run_id", id="run-id-path"),
    Bad("version-register", 400, body={"run_id": "x" * 65}, field="run_id", id="run-id-65-chars"),
    Bad("version-register", 400, body={"run_id": ""}, field="run_id", id="run-id-empty"),
    Bad("version-register", 400, body={"run_id": 12345}, field="run_id", id="run-id-number"),
    Bad("version-register", 400, body={"run_id": {"a": 1}}, field="run_id", id="run-id-object"),
    Bad("version-register", 400, body={"run_id": ["a"]}, field="run_id", id="run-id-list"),
    Bad("version-register", 400, body={"source": ""}, field="source", id="source-empty"),
    Bad("version-register", 400, body={"source": {"a": 1}}, field="source", id="source-object"),
    Bad("version-register", 400, body={"source": "/nonexistent/model"}, field="source", id="source-missing"),
    Bad("version-register", 400, body={"source": "s3://"}, field="source", id="source-s3-no-bucket"),
    Bad("version-register", 400, body={"source": "ftp://host/model"}, field="source", id="source-ftp"),
    Bad("version-register", 400, body={"source": "x" * 1025}, field="source", id="source-too-long"),
    Bad("version-register", 400, body={**RUN, "parent_version": True}, field="parent_version", id="parent-bool"),
    Bad("version-register", 400, body={**RUN, "parent_version": "abc"}, field="parent_version", id="parent-text"),
    Bad("version-register", 400, body={**RUN, "parent_version": 0}, field="parent_version", id="parent-zero"),
    Bad("version-register", 400, body={**RUN, "parent_version": 1.5}, field="parent_version", id="parent-float"),
    Bad("version-register", 400, body={**RUN, "parent_version": 99}, field="parent_version", id="parent-unknown"),
    Bad("version-register", 400, body={**RUN, "tags": "x"}, field="tags", id="tags-string"),
    Bad("version-register", 400, body={**RUN, "tags": {"bad key!": "v"}}, field="tags", id="tags-bad-key"),
    Bad("version-register", 400, body={**RUN, "dataset": "no-such-data"}, field="dataset", id="dataset-unknown"),
    Bad("version-register", 400, body={**RUN, "description": ["x"]}, field="description", id="description-list"),
    Bad("version-register", 400, body={**RUN, "artifact_path": {"a": 1}}, field="artifact_path", id="path-object"),
    Bad("alias-set", 400, body={"version": True}, field="version", id="version-bool"),
    Bad("alias-set", 400, body={"version": "abc"}, field="version", id="version-text"),
    Bad("alias-set", 400, body={"version": 0}, field="version", id="version-zero"),
    Bad("alias-set", 400, body={"version": 1.5}, field="version", id="version-float"),
    Bad("alias-set", 400, body={"version": None}, field="version", id="version-null"),
    Bad("alias-set", 400, body={"version": {"a": 1}}, field="version", id="version-object"),
    Bad("alias-set", 400, body={"version": 99}, field="version", id="version-unknown"),
    *[
        Bad(
            "alias-set",
            400,
            body={"version": 1},
            path=f"models/fraud-detector/aliases/{quote(alias)}/",
            field="alias",
            id=f"alias-{label}",
        )
        for label, alias in {
            "space": "a b",
            "umlaut": "ü",
            "upper-case": "Candidate",
            "leading-dash": "-x",
            "65-chars": "x" * 65,
            "dot": "a.b",
        }.items()
    ],
    Bad("alias-set", 409, body={"version": 1}, path="models/fraud-detector/aliases/champion/", id="champion"),
    Bad("alias-set", 409, body={"version": 1}, path="models/fraud-detector/aliases/challenger/", id="challenger"),
    Bad("dataset-create", 400, body={**DATASET, "uri": ""}, field="uri", id="uri-empty"),
    Bad("dataset-create", 400, body={**DATASET, "uri": 5}, field="uri", id="uri-number"),
    Bad("dataset-create", 400, body={**DATASET, "uri": {"a": 1}}, field="uri", id="uri-object"),
    Bad("dataset-create", 400, body={**DATASET, "uri": "x" * 1025}, field="uri", id="uri-too-long"),
    Bad("dataset-create", 400, body={**DATASET, "uri": "builtin:nope"}, field="uri", id="uri-builtin-unknown"),
    Bad("dataset-create", 400, body={**DATASET, "uri": "/nonexistent/data.csv"}, field="uri", id="uri-missing"),
    Bad("dataset-create", 400, body={**DATASET, "uri": "s3:///data.csv"}, field="uri", id="uri-s3-no-bucket"),
    Bad("dataset-create", 400, body={**DATASET, "uri": "ftp://host/data.csv"}, field="uri", id="uri-ftp"),
    Bad("dataset-create", 400, body={**DATASET, "uri": "/nonexistent/data"}, field="format", id="format-unknowable"),
    Bad("dataset-create", 400, body={**DATASET, "format": "xml"}, field="format", id="format-unknown"),
    Bad("dataset-create", 400, body={**DATASET, "format": 5}, field="format", id="format-number"),
    Bad("dataset-create", 400, body={**DATASET, "target": "nope"}, field="target", id="target-no-such-column"),
    Bad("dataset-create", 400, body={**DATASET, "target": {"a": 1}}, field="target", id="target-object"),
]


def _write_cases() -> list[Any]:
    cases = [case for write in WRITES.values() for case in _generic(write)] + FIELD_CASES
    return [pytest.param(case, id=f"{case.write}-{case.id or case.field}") for case in cases]


STORED_TABLES = (
    RegisteredModel,
    ModelTag,
    ModelVersion,
    VersionTag,
    VersionMetric,
    Alias,
    Dataset,
    IdempotencyRecord,
    AuditRecord,
    OutboxEvent,
)


def stored() -> dict[str, int]:
    """Row counts of everything a registry write can leave behind (one query)."""
    counts = ", ".join(f"(SELECT COUNT(*) FROM {table._meta.db_table})" for table in STORED_TABLES)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        row = cursor.fetchone()
    return {table.__name__: count for table, count in zip(STORED_TABLES, row, strict=True)}


def assert_error(response: Any, status: int, *, field: str | None = None, code: str | None = None) -> dict:
    assert response["Content-Type"] == "application/json", response.content[:200]
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        details = error["details"]
        assert isinstance(details, dict), error
        assert any(key == field or key.startswith((f"{field}.", f"{field}[")) for key in details), error
    return error


@pytest.fixture
def world(fraud_admin, fraud_objects):
    """The fraud team's admin, allowed every write, so that only the input is at fault."""
    return fraud_admin


@pytest.mark.parametrize("case", _write_cases())
def test_bad_write_is_a_4xx_in_the_error_format_and_stores_nothing(world, fraud_objects, case: Bad):
    write = WRITES[case.write]
    path = f"/api/v1/{case.path or write.path}"
    data = case.raw if case.raw is not None else json.dumps(case.body).encode()
    model_before = RegisteredModel.objects.filter(name="fraud-detector").values().get()
    before = stored()

    response = world.client.generic(
        write.method,
        path,
        data,
        content_type=case.content_type,
        **{"HTTP_IDEMPOTENCY_KEY": f"key-{case.id}", **case.headers},
    )

    assert_error(response, case.status, field=case.field, code=case.code)
    assert stored() == before
    assert RegisteredModel.objects.filter(name="fraud-detector").values().get() == model_before
    assert Alias.objects.get(model__name="fraud-detector", name="candidate").version.version == 1


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


LIST_PATHS = {
    "models": "models/",
    "versions": "models/fraud-detector/versions/",
    "datasets": "datasets/",
}
PAGINATION_CASES = [
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "9999"}, "page_size"),
    ({"page_size": "501"}, "page_size"),
    ({"page_size": "abc"}, "page_size"),
    ({"page_size": "-1"}, "page_size"),
    ({"page_size": ""}, "page_size"),
    ({"page_size": "1.5"}, "page_size"),
    ({"cursor": "bogus"}, "cursor"),
    ({"cursor": "%%%"}, "cursor"),
    ({"cursor": _cursor("o=-5")}, "cursor"),
    ({"cursor": _cursor("o=1&r=x")}, "cursor"),
    ({"colour": "red"}, "colour"),
]
# Positions that do not fit a numeric ordering (a model's position is its name: any text).
POSITION_CASES = [
    ({"cursor": _cursor("p=abc")}, "cursor"),
    ({"cursor": _cursor("p=2020-13-45")}, "cursor"),
    ({"cursor": _cursor("p=1.5")}, "cursor"),
]
QUERY_CASES: list[Any] = [
    *[
        pytest.param(path, query, field_name, id=f"{name}-{'&'.join(f'{k}={v[:20]}' for k, v in query.items())}")
        for name, path in LIST_PATHS.items()
        for query, field_name in PAGINATION_CASES
    ],
    *[
        pytest.param(path, query, field_name, id=f"{name}-position-{query['cursor']}")
        for name, path in LIST_PATHS.items()
        if name != "models"
        for query, field_name in POSITION_CASES
    ],
    *[
        pytest.param(
            "models/fraud-detector/versions/", {"ordering": "created_at", **query}, field_name, id=f"created-at-{label}"
        )
        for label, query, field_name in [
            ("position-text", {"cursor": _cursor("p=abc")}, "cursor"),
            ("position-bad-date", {"cursor": _cursor("p=2020-13-45")}, "cursor"),
        ]
    ],
    *[
        pytest.param(LIST_PATHS[name], query, field_name, id=f"{name}-{label}")
        for name, label, query, field_name in [
            ("models", "tag-novalue", {"tag": "novalue"}, "tag"),
            ("models", "tag-nokey", {"tag": ":x"}, "tag"),
            ("versions", "tag-novalue", {"tag": "novalue"}, "tag"),
            ("versions", "metric-double-op", {"metric": "f1>>1"}, "metric"),
            ("versions", "metric-no-op", {"metric": "f1"}, "metric"),
            ("versions", "metric-no-name", {"metric": ">=0.9"}, "metric"),
            ("versions", "metric-text", {"metric": "f1>=abc"}, "metric"),
            ("versions", "metric-bad-number", {"metric": "f1>=1e"}, "metric"),
            ("versions", "metric-dots", {"metric": "f1>=..."}, "metric"),
            ("versions", "metric-nan", {"metric": "f1>=nan"}, "metric"),
            ("versions", "metric-inf", {"metric": "f1>=1e999"}, "metric"),
            ("versions", "metric-odd-name", {"metric": "f1;drop>=1"}, "metric"),
            ("versions", "ordering-bogus", {"ordering": "bogus"}, "ordering"),
            ("versions", "ordering-field", {"ordering": "digest"}, "ordering"),
            ("versions", "stage-flying", {"stage": "flying"}, "stage"),
            ("versions", "stage-comma", {"stage": ","}, "stage"),
            ("versions", "stage-upper", {"stage": "PRODUCTION"}, "stage"),
            ("versions", "ordering-bogus-with-cursor", {"ordering": "bogus", "cursor": "bogus"}, None),
            ("datasets", "search", {"search": "x"}, "search"),
        ]
    ],
    *[
        pytest.param(path, {"x": "1"}, "x", id=f"{path}-unknown-param")
        for path in (
            "config",
            "models/fraud-detector/",
            "models/fraud-detector/versions/1/",
            "models/fraud-detector/versions/1/download/",
            "models/fraud-detector/aliases/candidate/",
            "datasets/{dataset}/",
        )
    ],
]


@pytest.mark.parametrize(("path", "query", "field_name"), QUERY_CASES)
def test_bad_query_is_a_400_naming_the_parameter(world, fraud_objects, path, query, field_name):
    response = world.client.get(f"/api/v1/{path.format(dataset=fraud_objects.dataset.pk)}", query)

    assert_error(response, 400, field=field_name)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "models/no-such-model/", 404),
        ("GET", f"models/{LONG}/", 404),
        ("GET", "models/%C3%BC/", 404),
        ("GET", "models/a%20b/versions/", 404),
        ("GET", "models/fraud-detector/versions/0/", 404),
        ("GET", "models/fraud-detector/versions/99/", 404),
        ("GET", "models/fraud-detector/versions/99999999999999999999999/", 404),
        ("GET", "models/fraud-detector/versions/-1/", 404),
        ("GET", "models/fraud-detector/versions/abc/", 404),
        ("GET", "models/fraud-detector/versions/99/download/", 404),
        ("POST", "models/fraud-detector/versions/99/verify/", 404),
        ("GET", "models/fraud-detector/aliases/nope/", 404),
        ("GET", "models/fraud-detector/aliases/a%20b/", 404),
        ("GET", f"models/fraud-detector/aliases/{LONG}/", 404),
        ("DELETE", "models/fraud-detector/aliases/nope/", 404),
        ("DELETE", "models/fraud-detector/aliases/a%20b/", 404),
        ("GET", "datasets/99999999999999999999999/", 404),
        ("GET", "datasets/0/", 404),
        ("GET", "datasets/abc/", 404),
        ("GET", "no-such-endpoint/", 404),
        ("DELETE", "models/fraud-detector/", 405),
        ("PUT", "models/fraud-detector/", 405),
        ("POST", "models/fraud-detector/versions/1/", 405),
        ("PATCH", "datasets/", 405),
        ("DELETE", "health", 405),
        ("POST", "config", 405),
    ],
)
def test_unknown_paths_and_methods_are_json_errors(world, method, path, status):
    response = world.client.generic(method, f"/api/v1/{path}", b"{}", content_type="application/json")

    assert_error(response, status)


@pytest.mark.parametrize(
    ("name", "status", "field_name"),
    [("champion", 409, None), ("challenger", 409, None), ("a b", 400, "alias"), (LONG, 400, "alias")],
)
def test_deleting_a_stage_alias_or_an_odd_name_is_refused(world, name, status, field_name):
    before = stored()

    response = world.client.delete(f"/api/v1/models/fraud-detector/aliases/{quote(name)}/")

    if status == 400 and response.status_code == 404:
        # Deleting an alias that cannot exist may also answer "no such alias".
        status, field_name = 404, None
    assert_error(response, status, field=field_name)
    assert stored() == before


def test_a_rejected_create_leaves_its_idempotency_key_free_for_the_corrected_request(world):
    url = "/api/v1/models/"
    headers = {"HTTP_IDEMPOTENCY_KEY": "ci-build-7"}

    rejected = world.client.post(url, {"name": "a b", "team": "fraud"}, format="json", **headers)
    corrected = world.client.post(url, {"name": "a-b", "team": "fraud"}, format="json", **headers)

    assert rejected.status_code == 400
    assert corrected.status_code == 201, corrected.json()
    assert list(RegisteredModel.objects.filter(name__in=["a b", "a-b"]).values_list("name", flat=True)) == ["a-b"]


def test_a_duplicate_model_name_is_a_409_and_stores_nothing(world, fraud_objects):
    before = stored()

    response = world.client.post("/api/v1/models/", {"name": "fraud-detector", "team": "fraud"}, format="json")

    assert_error(response, 409)
    assert stored() == before


def test_a_duplicate_dataset_name_is_a_409_and_stores_nothing(world, fraud_objects):
    before = stored()

    response = world.client.post(
        "/api/v1/datasets/", {"name": "fraud-eval", "team": "fraud", "uri": "builtin:iris"}, format="json"
    )

    assert_error(response, 409)
    assert stored() == before


def test_an_unknown_run_id_of_the_right_form_is_a_400_naming_it(world, mlflow_store):
    before = stored()

    response = world.client.post(
        "/api/v1/models/fraud-detector/versions/", {"run_id": "0123456789abcdef0123456789abcdef"}, format="json"
    )

    assert_error(response, 400, field="run_id")
    assert "0123456789abcdef0123456789abcdef" in response.json()["error"]["message"]
    assert stored() == before
