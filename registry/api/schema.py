"""OpenAPI schema hooks: every operation documents the error answers it can give.

A view that can answer an error the defaults below leave out declares it with
``extend_schema(responses={..., 409: OpenApiResponse(description=...)})``; its body is
described as the same ``Error`` here.

drf-spectacular documents only the success of each view; the API's contract
(``docs/api.md``) is that every refusal is ``{"error": {"code", "message", "details"}}``
with the right status, so the schema says so for each operation, and clients (and the
fuzzing suite, which checks answers against the schema) can rely on it.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"nullable": True},
            },
            "required": ["code", "message", "details"],
        }
    },
    "required": ["error"],
}

_EVERY_OPERATION = {
    "400": "invalid input: the details name each bad field or parameter",
    "401": "no credentials, or a token that is unknown, expired or revoked",
    "403": "the caller's role or token scope does not allow this",
    "404": "no such object, or one the caller may not see",
    "503": "a dependency (database, broker, MLflow, artifact store) is unavailable",
}
_WRITES = {
    "409": "the change conflicts with the stored state (duplicate, stale state, a concurrent change won)",
    "413": "the request body is larger than the server accepts",
}
_PUBLIC = {"400", "503"}


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Add the ``Error`` component and the error answers to every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for methods in result.get("paths", {}).values():
        for method, operation in methods.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            anonymous = operation.get("security") == [{}]
            answers = dict(_EVERY_OPERATION)
            if method != "get":
                answers.update(_WRITES)
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                # An error a view declares itself (a GET's 409) has the same body.
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {"application/json": {"schema": reference}}
            for status, description in answers.items():
                if anonymous and status not in _PUBLIC:
                    continue
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": reference}}}
                )
    return result
