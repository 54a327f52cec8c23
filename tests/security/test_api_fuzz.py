"""The API under generated input: Schemathesis reads the live OpenAPI schema
(``/api/schema/``) from a running server and sends every operation examples built from
it, with a token of each role of team fraud.

Every answer must be: no server error (5xx); a status, a content type, headers and a body
that the schema documents; and, for a 4xx, the ``{"error": {"code", "message",
"details"}}`` shape. Each operation is tried with each role's token against team fraud's
objects (``fraud_world``), so the examples reach the views' validation and the services;
with the admin's token also with path parameters as generated (mostly unknown objects)
and with input the schema forbids.

The run is bounded for ``make test``; a nightly job raises it, for example
``MODELGATE_FUZZ_MAX_EXAMPLES=200 MODELGATE_FUZZ_SEED=$RANDOM pytest tests/security/test_api_fuzz.py``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Actor

MAX_EXAMPLES = int(os.environ.get("MODELGATE_FUZZ_MAX_EXAMPLES", "4"))
SEED = os.environ.get("MODELGATE_FUZZ_SEED")


@schemathesis.check
def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx answer is ``{"error": {"code", "message", "details"}}``."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error"}, f"not an error body: {body!r}"
        assert set(body["error"]) == {"code", "message", "details"}, f"error keys: {sorted(body['error'])}"
        assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    error_shape,
]


@dataclass
class FuzzReport:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    unsatisfiable: list[str] = field(default_factory=list)


# Path parameters of team fraud's objects, by the collection a path starts with.
PATH_IDS = {
    "alerts": "alert",
    "datasets": "dataset",
    "deployments": "deployment",
    "jobs": "job",
    "transitions": "transition",
    "webhooks": "webhook",
}


def _seeded_path(operation: Any, world: dict[str, str]) -> dict[str, Any]:
    """The operation's path parameters, naming team fraud's objects."""
    names = {p.name for p in operation.path_parameters}
    values: dict[str, Any] = {}
    if "name" in names:
        values["name"] = world["model"]
    if "version" in names:
        values["version"] = int(world["version"])
    if "alias" in names:
        values["alias"] = world["alias"]
    if "id" in names:
        values["id"] = int(world[PATH_IDS[operation.path.split("/")[3]]])
    if "delivery_id" in names:
        values["delivery_id"] = world["delivery"]
    return values


def _run(
    operation: Any, token: str, report: FuzzReport, label: str, session: requests.Session, **strategy: Any
) -> None:

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(**strategy))
    def fuzz(case: Any) -> None:
        report.cases += 1
        response = case.call(session=session, headers={"Authorization": f"Bearer {token}"})
        report.statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers={"Authorization": f"Bearer {token}"})

    if SEED is not None:
        fuzz = hypothesis.seed(int(SEED))(fuzz)
    started = time.monotonic()
    try:
        fuzz()
    except hypothesis.errors.Unsatisfiable:
        # Negative mode on an operation with nothing to get wrong (no parameters, no body).
        report.unsatisfiable.append(label)
    except (Exception, BaseExceptionGroup) as exc:  # every operation is tried, and every failure reported
        report.failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:1500]}")
    report.seconds[label] = time.monotonic() - started


def test_every_operation_answers_generated_input_as_its_schema_says(
    transactional_db,
    live_server,
    fraud_world,
    owner: Actor,
    approver: Actor,
    viewer: Actor,
    fraud_admin: Actor,
    output_dir,
):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    tokens = {"viewer": viewer.token, "developer": owner.token, "approver": approver.token, "admin": fraud_admin.token}
    report = FuzzReport()
    operations = [result.ok() for result in schema.get_all_operations()]
    # One kept-alive connection for the whole run: the live server holds a database
    # connection per open client connection.
    with requests.Session() as session:
        for operation in operations:
            for role, token in tokens.items():
                label = f"{operation.label} as {role}"
                seeded_path = _seeded_path(operation, fraud_world)
                _run(operation, token, report, label + " (seeded)", session, path_parameters=seeded_path)
                if role == "admin":
                    _run(operation, token, report, label, session)
                    negative = GenerationMode.NEGATIVE
                    _run(operation, token, report, label + " (negative)", session, generation_mode=negative)
    summary = (
        f"fuzz: {len(operations)} operations, {report.cases} cases, statuses {dict(sorted(report.statuses.items()))}, "
        f"{len(report.failures)} failing operation runs"
    )
    print(summary)
    slowest = sorted(report.seconds.items(), key=lambda item: -item[1])[:15]
    print("\n".join(f"{s:6.2f}s {label}" for label, s in slowest))
    (output_dir / "fuzz-report.txt").write_text(summary + "\n\n" + "\n\n".join(report.failures))
    assert not report.failures, summary + "\n\n" + "\n\n".join(report.failures)
