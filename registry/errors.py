"""Domain errors raised by services and mapped to the API's error format at the edge.

Each carries a stable ``code`` for clients and a message that names what is wrong.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


class InvalidInput(DomainError):
    """The request names something malformed; ``details`` maps each field to its problem."""

    code = "invalid"
    status = 400


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Conflict(DomainError):
    """A duplicate, a stale state, or a concurrent change that won."""

    code = "conflict"
    status = 409


class DependencyUnavailable(DomainError):
    """MLflow, S3, the broker or the database could not be reached; retrying later may work."""

    code = "dependency_unavailable"
    status = 503

    def __init__(self, dependency: str, message: str, *, details: Any = None) -> None:
        super().__init__(message, details={"dependency": dependency, **(details or {})})
        self.dependency = dependency


class ArtifactIntegrityError(DomainError):
    """An artifact's bytes no longer match the digest recorded at registration."""

    code = "artifact_corrupted"
    status = 409
