"""A small typed client of ModelGate's REST API v1, for CI jobs and scripts.

It imports nothing of the service: only ``requests``. What it adds to plain HTTP calls:

- every call has a timeout;
- reads (and POSTs that carry an ``Idempotency-Key``) are retried on connection errors and
  on 502, 503 and 504 answers, with exponential back-off that honours ``Retry-After``; a
  POST without a key is never retried, since the server may already have applied it;
- creating calls (register, request a transition, create a deployment) always send an
  ``Idempotency-Key`` (a fresh one unless the caller gives one), so a retry of a call whose
  answer was lost returns the first answer instead of registering twice;
- an error answer becomes an ``ApiError`` carrying the server's ``{"error": {code,
  message, details}}``;
- ``wait_*`` helpers poll a transition, a deployment or a job until it is decided or a
  deadline passes (``WaitTimeout`` carries the last state seen).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import requests

DEFAULT_TIMEOUT = 30.0
RETRY_STATUSES = frozenset({502, 503, 504})
# Transition statuses after which nothing more happens to a request.
TRANSITION_DECIDED = frozenset({"applied", "rejected", "cancelled"})
JOB_FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
DEPLOYMENT_SETTLED = frozenset({"ready", "failed", "stopped"})

JsonObject = dict[str, Any]


class ModelGateError(Exception):
    """Anything that stopped a call from getting an answer it could use."""

    code = "error"

    def to_dict(self) -> JsonObject:
        return {"code": self.code, "message": str(self), "details": None}


class ApiError(ModelGateError):
    """The server answered with an error: its status, and its ``error`` body."""

    def __init__(
        self, *, status: int, code: str, message: str, details: Any = None, method: str = "", url: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.method = method
        self.url = url

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status}, {self.code})"

    def to_dict(self) -> JsonObject:
        return {"status": self.status, "code": self.code, "message": self.message, "details": self.details}


class ConnectionFailed(ModelGateError):
    """The server could not be reached, or did not answer in time."""

    code = "connection_failed"


class WaitTimeout(ModelGateError):
    """A ``wait_*`` deadline passed; ``last`` is the last state seen."""

    code = "timeout"

    def __init__(self, message: str, last: JsonObject | None) -> None:
        super().__init__(message)
        self.last = last


def new_idempotency_key() -> str:
    return f"modelgate-cli-{uuid.uuid4()}"


class Client:
    """ModelGate's API v1 at ``base_url`` (the server's root, e.g. ``https://modelgate.example.com``),
    as the owner of ``token``."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ModelGateError(f"the server URL must start with http:// or https://, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock
        self.session = session or requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "modelgate-cli/0.1"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    # --- transport ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/api/v1/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        safe: bool | None = None,
        retry_for: float | None = None,
    ) -> Any:
        """One API call; the decoded JSON answer (``None`` for an empty one).

        ``safe`` says whether the call may be repeated (default: reads, and calls with an
        ``Idempotency-Key``). ``retry_for`` retries a safe call for that many seconds
        instead of ``retries`` times (to ride out an outage while waiting).
        """
        url = self.url(path)
        method = method.upper()
        if safe is None:
            safe = method in ("GET", "HEAD") or idempotency_key is not None
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        deadline = self._clock() + retry_for if retry_for is not None else None
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method, url, json=json, params=params, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                delay = self._retry_delay(attempt, deadline, None) if safe else None
                if delay is None:
                    raise ConnectionFailed(self._connection_message(method, url, exc, safe)) from exc
                self._sleep(delay)
                continue
            except requests.RequestException as exc:
                raise ConnectionFailed(f"{method} {url} failed: {exc}") from exc
            if response.status_code < 400:
                if response.status_code == 204 or not response.content:
                    return None
                try:
                    return response.json()
                except ValueError as exc:
                    raise ApiError(
                        status=response.status_code,
                        code="not_json",
                        message=f"{method} {url} answered something that is not JSON; is {self.base_url} ModelGate?",
                        method=method,
                        url=url,
                    ) from exc
            error = self._error(response, method, url)
            transient = response.status_code in RETRY_STATUSES or (
                # The first try of this key is still running on the server (its answer was
                # lost to a timeout): wait for it rather than give up.
                idempotency_key is not None and error.code == "idempotency_in_progress"
            )
            delay = self._retry_delay(attempt, deadline, response) if (safe and transient) else None
            if delay is None:
                raise error
            self._sleep(delay)

    def _retry_delay(self, attempt: int, deadline: float | None, response: requests.Response | None) -> float | None:
        """How long to wait before the next try, or ``None`` to give up."""
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        retry_after = response.headers.get("Retry-After", "") if response is not None else ""
        if retry_after.isdigit():
            delay = min(max(delay, float(retry_after)), self.max_backoff * 3)
        if deadline is None:
            return delay if attempt <= self.retries else None
        remaining = deadline - self._clock()
        if remaining <= 0:
            return None
        return min(delay, remaining)

    def _connection_message(self, method: str, url: str, exc: Exception, safe: bool) -> str:
        reason = "did not answer in time" if isinstance(exc, requests.Timeout) else "could not be reached"
        message = f"{self.base_url} {reason} ({method} {url}: {type(exc).__name__})"
        if not safe and isinstance(exc, requests.ReadTimeout):
            message += "; the server may have applied the request, check before repeating it"
        return message

    @staticmethod
    def _error(response: requests.Response, method: str, url: str) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return ApiError(
                status=response.status_code,
                code=str(error.get("code") or "error"),
                message=str(error.get("message") or response.reason),
                details=error.get("details"),
                method=method,
                url=url,
            )
        text = (response.text or "").strip()
        return ApiError(
            status=response.status_code,
            code="http_error",
            message=f"{method} {url} answered HTTP {response.status_code} {response.reason}",
            details={"body": text[:500]} if text else None,
            method=method,
            url=url,
        )

    def paginate(self, path: str, params: dict[str, Any] | None = None, *, limit: int | None = None) -> Iterator[Any]:
        """The items of a paginated list, following ``next`` links (at most ``limit``)."""
        count = 0
        page = self.request("GET", path, params=params)
        while True:
            for item in page.get("results", []):
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item
            link = page.get("next")
            if not link:
                return
            page = self.request("GET", link)

    # --- the registry -------------------------------------------------------------------

    def health(self) -> JsonObject:
        return self.request("GET", "health")

    def server_config(self) -> JsonObject:
        return self.request("GET", "config")

    def models(self, *, limit: int | None = None) -> list[JsonObject]:
        return list(self.paginate("models/", limit=limit))

    def model(self, name: str) -> JsonObject:
        return self.request("GET", f"models/{_part(name)}/")

    def versions(self, name: str, *, stage: str | None = None, limit: int | None = None) -> list[JsonObject]:
        params = {"stage": stage} if stage else None
        return list(self.paginate(f"models/{_part(name)}/versions/", params, limit=limit))

    def version(self, name: str, version: int) -> JsonObject:
        return self.request("GET", f"models/{_part(name)}/versions/{int(version)}/")

    def alias(self, name: str, alias: str) -> JsonObject:
        return self.request("GET", f"models/{_part(name)}/aliases/{_part(alias)}/")

    def register_version(
        self,
        name: str,
        *,
        run_id: str | None = None,
        source: str | None = None,
        artifact_path: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        parent_version: int | None = None,
        dataset: str | None = None,
        idempotency_key: str | None = None,
        retry_for: float | None = None,
    ) -> JsonObject:
        """Register the model a run logged (``run_id``) or an artifact URI (``source``)."""
        body: JsonObject = {"run_id": run_id, "source": source, "artifact_path": artifact_path}
        body |= {"description": description, "tags": tags, "parent_version": parent_version, "dataset": dataset}
        return self.request(
            "POST",
            f"models/{_part(name)}/versions/",
            json={key: value for key, value in body.items() if value is not None},
            idempotency_key=idempotency_key or new_idempotency_key(),
            retry_for=retry_for,
        )

    def verify_version(self, name: str, version: int) -> JsonObject:
        """Re-read the version's artifact and compare it with the digest recorded at registration."""
        return self.request("POST", f"models/{_part(name)}/versions/{int(version)}/verify/", safe=True)

    # --- governance ---------------------------------------------------------------------

    def request_transition(
        self, name: str, version: int, *, to: str, reason: str = "", idempotency_key: str | None = None
    ) -> JsonObject:
        """Ask to move a version to a stage; the answer has its ``status`` and ``gates``."""
        return self.request(
            "POST",
            f"models/{_part(name)}/versions/{int(version)}/transitions/",
            json={"to": to, "reason": reason},
            idempotency_key=idempotency_key or new_idempotency_key(),
        )

    def transition(self, transition_id: int) -> JsonObject:
        return self.request("GET", f"transitions/{int(transition_id)}/")

    def version_transitions(self, name: str, version: int, *, limit: int | None = None) -> list[JsonObject]:
        return list(self.paginate(f"models/{_part(name)}/versions/{int(version)}/transitions/", limit=limit))

    def recheck(self, transition_id: int) -> JsonObject:
        """Evaluate an open request's gates again. Repeating it is harmless."""
        return self.request("POST", f"transitions/{int(transition_id)}/recheck/", json={}, safe=True)

    def approve(self, transition_id: int, *, comment: str = "") -> JsonObject:
        return self.request("POST", f"transitions/{int(transition_id)}/approve/", json={"comment": comment})

    def reject(self, transition_id: int, *, comment: str = "") -> JsonObject:
        return self.request("POST", f"transitions/{int(transition_id)}/reject/", json={"comment": comment})

    def rollback(self, name: str, *, reason: str, to_version: int | None = None) -> JsonObject:
        """Put the previous (or the named) production version back; the rollback transition."""
        body: JsonObject = {"reason": reason}
        if to_version is not None:
            body["to_version"] = int(to_version)
        return self.request("POST", f"models/{_part(name)}/rollback/", json=body)

    def history(self, name: str, *, limit: int | None = None) -> list[JsonObject]:
        return list(self.paginate(f"models/{_part(name)}/history/", limit=limit))

    def audit_verify(self) -> JsonObject:
        """Check the audit trail's hash chain: ``{valid, records, first_bad}``."""
        return self.request("GET", "audit/verify/")

    # --- jobs and deployments -----------------------------------------------------------

    def jobs(
        self, *, model: str | None = None, kind: str | None = None, state: str | None = None, limit: int | None = None
    ) -> list[JsonObject]:
        params = {key: value for key, value in {"model": model, "kind": kind, "state": state}.items() if value}
        return list(self.paginate("jobs/", params or None, limit=limit))

    def job(self, job_id: int) -> JsonObject:
        return self.request("GET", f"jobs/{int(job_id)}/")

    def deployments(self, name: str, *, limit: int | None = None) -> list[JsonObject]:
        return list(self.paginate(f"models/{_part(name)}/deployments/", limit=limit))

    def deployment(self, deployment_id: int) -> JsonObject:
        return self.request("GET", f"deployments/{int(deployment_id)}/")

    def create_deployment(
        self,
        name: str,
        *,
        deployment: str | None = None,
        version: int | None = None,
        alias: str | None = None,
        replicas: int | None = None,
        target: str | None = None,
        pool: str | None = None,
        idempotency_key: str | None = None,
    ) -> JsonObject:
        """Serve a version (or the version an alias names; neither: production, followed)."""
        body = {
            "name": deployment,
            "version": version,
            "alias": alias,
            "replicas": replicas,
            "target": target,
            "pool": pool,
        }
        return self.request(
            "POST",
            f"models/{_part(name)}/deployments/",
            json={key: value for key, value in body.items() if value is not None},
            idempotency_key=idempotency_key or new_idempotency_key(),
        )

    # --- waiting ------------------------------------------------------------------------

    def evaluation_running(self, name: str, version: int) -> bool:
        """Whether an evaluation job of the version is still to finish (the server
        rechecks the version's open requests when it ends)."""
        for job in self.jobs(model=name, kind="evaluate", limit=100):
            if job.get("version") == version and job.get("state") not in JOB_FINAL_STATES:
                return True
        return False

    def transition_undecided(self, transition: JsonObject) -> bool:
        """Whether more may still happen to the request: pending, or blocked while an
        evaluation that could unblock it is running."""
        status = transition.get("status")
        if status == "pending":
            return True
        if status != "blocked":
            return False
        needs_evaluation = any(
            gate.get("status") == "failed" and gate.get("needs") == "evaluation" for gate in transition.get("gates", [])
        )
        return needs_evaluation and self.evaluation_running(transition["model"], transition["version"])

    def wait_transition(
        self,
        transition_id: int,
        *,
        timeout: float,
        poll: float = 2.0,
        recheck_every: float = 60.0,
        on_change: Callable[[JsonObject], None] | None = None,
    ) -> JsonObject:
        """Poll a request until it is decided: applied, rejected, cancelled, or blocked with
        nothing running that could unblock it. A pending request waiting on something other
        than approvals (a canary's soak) is rechecked every ``recheck_every`` seconds;
        approvals decide it themselves. Raises ``WaitTimeout`` with the last state."""
        deadline = self._clock() + timeout
        last_recheck = self._clock()
        seen: tuple[Any, ...] | None = None
        while True:
            transition = self.transition(transition_id)
            if transition.get("status") == "pending" and self._clock() - last_recheck >= recheck_every:
                if any(g.get("status") == "waiting" and g.get("needs") != "approvals" for g in transition["gates"]):
                    transition = self.recheck(transition_id)
                last_recheck = self._clock()
            state = (transition.get("status"), transition.get("status_detail"))
            if on_change is not None and state != seen:
                on_change(transition)
            seen = state
            if not self.transition_undecided(transition):
                return transition
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise WaitTimeout(
                    f"request #{transition_id} is still {transition.get('status')} after {timeout:g}s: "
                    f"{transition.get('status_detail') or ''}".rstrip(": "),
                    transition,
                )
            self._sleep(min(poll, remaining))

    def wait_deployment(
        self,
        deployment_id: int,
        *,
        timeout: float,
        poll: float = 2.0,
        on_change: Callable[[JsonObject], None] | None = None,
    ) -> JsonObject:
        """Poll a deployment until it is ``ready``, ``failed`` or ``stopped``."""
        return self._wait(
            lambda: self.deployment(deployment_id),
            settled=lambda d: d.get("state") in DEPLOYMENT_SETTLED,
            what=f"deployment {deployment_id}",
            field="state",
            timeout=timeout,
            poll=poll,
            on_change=on_change,
        )

    def wait_job(
        self, job_id: int, *, timeout: float, poll: float = 2.0, on_change: Callable[[JsonObject], None] | None = None
    ) -> JsonObject:
        """Poll a job until it has succeeded, failed or been cancelled."""
        return self._wait(
            lambda: self.job(job_id),
            settled=lambda j: j.get("state") in JOB_FINAL_STATES,
            what=f"job {job_id}",
            field="state",
            timeout=timeout,
            poll=poll,
            on_change=on_change,
        )

    def _wait(
        self,
        read: Callable[[], JsonObject],
        *,
        settled: Callable[[JsonObject], bool],
        what: str,
        field: str,
        timeout: float,
        poll: float,
        on_change: Callable[[JsonObject], None] | None,
    ) -> JsonObject:
        deadline = self._clock() + timeout
        seen: tuple[Any, ...] | None = None
        while True:
            current = read()
            state = (current.get(field), current.get(f"{field}_detail"))
            if on_change is not None and state != seen:
                on_change(current)
            seen = state
            if settled(current):
                return current
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise WaitTimeout(f"{what} is still {current.get(field)} after {timeout:g}s", current)
            self._sleep(min(poll, remaining))


def _part(value: str) -> str:
    """A name as one path segment (model names may hold dots; never a slash)."""
    return quote(str(value), safe="")
