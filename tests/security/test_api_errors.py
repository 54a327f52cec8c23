"""Errors found by the fuzzing suite, kept as plain tests: each names what it found."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["design/card.md", "versions/1/card.md"])
def test_an_error_of_a_markdown_endpoint_is_json_whatever_format_is_asked(callers, fraud_world, path):
    # It was text/markdown (the negotiated type of the success) with a JSON body.
    answer = callers["viewer"].get(f"/api/v1/models/fraud-detector/{path}?format=md")

    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/json"
    assert set(answer.json()["error"]) == {"code", "message", "details"}


def test_a_queued_job_and_a_pending_transition_render_their_empty_fields_as_the_schema_says(callers, fraud_world):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    job = callers["viewer"].get(f"/api/v1/jobs/{fraud_world['job']}/").json()
    transition = callers["viewer"].get(f"/api/v1/transitions/{fraud_world['transition']}/").json()

    for name, body in (("JobOut", job), ("TransitionOut", transition)):
        empty = [field for field, value in body.items() if value is None]
        assert empty, f"{name}: the case needs fields without a value"
        for field in empty:
            declared = schema[name]["properties"][field]
            # A property without a type (a JSON field) takes any value, null included.
            takes_any = not {"type", "$ref", "allOf", "oneOf"} & set(declared)
            assert declared.get("nullable") or takes_any, f"{name}.{field} is null but not nullable"


def test_the_schema_generates_without_a_warning_and_validates(tmp_path):
    # Two serializers of one name (a "CommentIn" in governance and in monitoring) made
    # one component serve both, with the wrong limits for one of them.
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_the_markdown_endpoints_offer_no_format_parameter():
    # The path names the format; ``?format=`` is refused as an unknown parameter.
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in ("/api/v1/models/{name}/design/card.md", "/api/v1/models/{name}/versions/{version}/card.md"):
        assert all(p["name"] != "format" for p in paths[path]["get"].get("parameters", []))
