"""The serving gateway's work for one scoring call, apart from the web framework.

A call is authenticated (a ``serve``-scoped token), placed on a route by its request
id, checked against that version's signature, answered from the cache when the
deployment allows it, forwarded to a replica, mirrored to the shadows, and handed to the
prediction hook. ``serving.app`` is the ASGI edge around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from config import logs
from lifecycle.deployments.routing import Deployment, Route, choose_route, request_point
from serving.forwarding import Forwarder, NoReplicaAnswered, ReplicaAnswer
from serving.prediction_hook import PredictionHandOver, PredictionHook, PredictionRecord
from serving.replica_client import PooledReplicaClient, ReplicaClient
from serving.response_cache import CachedAnswer, ResponseCache
from serving.route_table import RouteTableFollower, RouteTableSource, ServingTable
from serving.settings import GatewaySettings
from serving.tokens import AuthenticationUnavailable, TokenAuthenticator, TokenCache, TokenRefused
from serving.validation import FORM_ONLY, PayloadError, parse_payload, validate_payload

logger = logging.getLogger(__name__)

JSON = "application/json"
MAX_REQUEST_ID_LENGTH = 128
# How long the gateway waits for its first route table at start before serving without.
FIRST_TABLE_TIMEOUT_SECONDS = 5.0


@dataclass
class Answer:
    """What the edge sends back."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = JSON


class GatewayError(Exception):
    """An answer in the API's error format: ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def answer(self) -> Answer:
        return Answer(self.status, error_body(self.code, self.message, self.details), dict(self.headers))


def error_body(code: str, message: str, details: Any = None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()


@dataclass
class GatewayCounters:
    calls: int = 0
    answered: int = 0
    refused: int = 0
    unavailable: int = 0
    shadow_sent: int = 0
    shadow_failed: int = 0
    shadow_dropped: int = 0


class Gateway:
    def __init__(
        self,
        *,
        source: RouteTableSource,
        authenticator: TokenAuthenticator,
        settings: GatewaySettings | None = None,
        on_prediction: PredictionHook | None = None,
        replica_client: ReplicaClient | None = None,
    ) -> None:
        self.settings = settings or GatewaySettings()
        self._source = source
        self._authenticator = authenticator
        self._replica_client = replica_client
        self.routes = RouteTableFollower(source, refresh_seconds=self.settings.refresh_seconds)
        self.tokens = TokenCache(
            authenticator, ttl_seconds=self.settings.token_ttl_seconds, max_entries=self.settings.token_cache_size
        )
        self.cache = ResponseCache(
            max_entries=self.settings.cache_size,
            ttl_seconds=self.settings.cache_ttl_seconds,
            max_answer_bytes=self.settings.cache_max_answer_bytes,
        )
        self.predictions = PredictionHandOver(on_prediction)
        self.counters = GatewayCounters()
        self._client: ReplicaClient | None = None
        self._forwarder: Forwarder | None = None
        self._shadows: set[asyncio.Task[None]] = set()

    # --- life ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the replica connection pool, load the first table, start following."""
        s = self.settings
        self._client = self._replica_client or PooledReplicaClient(
            max_connections=s.max_connections,
            keepalive_expiry_seconds=s.keepalive_expiry_seconds,
            connect_timeout_seconds=s.connect_timeout_seconds,
            replica_timeout_seconds=s.replica_timeout_seconds,
        )
        self._forwarder = Forwarder(
            self._client, suspend_seconds=s.replica_suspend_seconds, deadline_seconds=s.call_deadline_seconds
        )
        self.predictions.start()
        await self.routes.refresh(timeout=FIRST_TABLE_TIMEOUT_SECONDS)
        self.routes.start()

    async def stop(self) -> None:
        await self.routes.stop()
        if self._shadows:
            _, late = await asyncio.wait(set(self._shadows), timeout=2)
            for task in late:
                task.cancel()
        await self.predictions.drain(timeout=2)
        await self.predictions.close()
        if self._client is not None:
            await self._client.aclose()
        for dependency in (self._source, self._authenticator):
            aclose = getattr(dependency, "aclose", None)
            if aclose is not None:
                await aclose()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    @property
    def forwarder(self) -> Forwarder:
        assert self._forwarder is not None, "the gateway is not started"
        return self._forwarder

    # --- answers -------------------------------------------------------------------

    def health(self) -> Answer:
        table = self.routes.current
        if table is None:
            body = {"status": "starting", "revision": None, "deployments": 0}
            return Answer(503, json.dumps(body).encode(), {"Retry-After": "1"})
        body = {"status": "ok", "revision": table.revision, "deployments": len(table.routes.deployments)}
        return Answer(200, json.dumps(body).encode(), {"X-ModelGate-Route-Revision": str(table.revision)})

    async def invoke(
        self,
        *,
        model: str,
        deployment_id: int | None,
        headers: Mapping[str, str],
        read_body: Callable[[], Awaitable[bytes]],
        deployment_name: str | None = None,
    ) -> Answer:
        """Answer one scoring call; ``headers`` has lower-case names."""
        started = time.perf_counter()
        self.counters.calls += 1
        table = self.routes.current
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        # Each call runs in a task of its own: the log lines it writes name it.
        logs.request_id.set(request_id[:MAX_REQUEST_ID_LENGTH])
        common = {"X-Request-Id": request_id}
        if table is not None:
            common["X-ModelGate-Route-Revision"] = str(table.revision)
        try:
            if len(request_id) > MAX_REQUEST_ID_LENGTH or not request_id.isprintable():
                common["X-Request-Id"] = uuid.uuid4().hex
                raise GatewayError(
                    400, "invalid", f"X-Request-Id must be at most {MAX_REQUEST_ID_LENGTH} printable characters"
                )
            await self._authorize(headers.get("authorization"))
            if table is None:
                raise GatewayError(
                    503, "unavailable", "no route table has been loaded yet", headers={"Retry-After": "1"}
                )
            deployment = table.routes.deployment_for(model, deployment_id, name=deployment_name)
            if deployment is None:
                raise GatewayError(404, "not_found", _not_found_message(model, deployment_id or deployment_name))
        except GatewayError as error:
            self._count(error.status)
            answer = error.answer()
            answer.headers.update(common)
            return answer
        common["X-ModelGate-Deployment"] = str(deployment.id)
        body = b""
        answer, route = None, None
        try:
            point = request_point(request_id)
            route = choose_route(deployment.live_routes, point)
            if route is None:
                raise GatewayError(
                    503, "unavailable", f"deployment {deployment.id} has no live route", headers={"Retry-After": "1"}
                )
            _check_content_type(headers.get("content-type"))
            body = await read_body()
            payload = _parse(body)
            _validate(payload, table, deployment, route)
            answer = await self._answer(deployment, route, point, body, request_id)
            self._mirror(deployment, point, body, request_id)
        except GatewayError as error:
            answer = error.answer()
        answer.headers.update(common)
        self._count(answer.status)
        answered_by = answer.headers.get("X-ModelGate-Version")
        self.predictions(
            PredictionRecord(
                request_id=request_id,
                deployment_id=deployment.id,
                version=int(answered_by) if answered_by else None,
                mode=answer.headers.get("X-ModelGate-Route"),
                latency_ms=(time.perf_counter() - started) * 1000,
                status=answer.status,
                input=body,
                output=answer.body,
            )
        )
        return answer

    async def _authorize(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token or " " in token:
            raise GatewayError(
                401, "unauthenticated", "send a token as 'Authorization: Bearer <token>'", headers=challenge
            )
        try:
            principal = await self.tokens.principal(token)
        except TokenRefused as refused:
            raise GatewayError(401, "unauthenticated", refused.message, headers=challenge) from refused
        except AuthenticationUnavailable as exc:
            raise GatewayError(
                503,
                "dependency_unavailable",
                "the token cannot be checked now; retry later",
                {"dependency": "database"},
                headers={"Retry-After": "1"},
            ) from exc
        if not principal.may_serve:
            raise GatewayError(
                403, "forbidden", "this token lacks the 'serve' scope", {"scopes": sorted(principal.scopes)}
            )

    async def _answer(self, deployment: Deployment, route: Route, point: float, body: bytes, request_id: str) -> Answer:
        key = ResponseCache.key(deployment.id, route.version, body) if deployment.cache else None
        if key is not None:
            cached = self.cache.get(key)
            if cached is not None:
                headers = _route_headers(route.version, route.mode)
                headers["X-ModelGate-Cache"] = "hit"
                return Answer(cached.status, cached.body, headers, cached.content_type)
        try:
            reply: ReplicaAnswer = await self.forwarder.forward(
                deployment, route, point, body, _replica_headers(request_id)
            )
        except NoReplicaAnswered as failed:
            if failed.deadline_exceeded:
                raise GatewayError(
                    504,
                    "deadline_exceeded",
                    f"no replica of deployment {deployment.id} answered within "
                    f"{self.settings.call_deadline_seconds:g} s",
                    {"attempts": failed.attempts, "deadline_seconds": self.settings.call_deadline_seconds},
                ) from failed
            raise GatewayError(
                503,
                "unavailable",
                f"no replica of deployment {deployment.id} answered; retry later",
                {"attempts": failed.attempts},
                headers={"Retry-After": "1"},
            ) from failed
        headers = _route_headers(reply.route.version, reply.route.mode)
        headers["X-ModelGate-Replica"] = str(reply.replica.id)
        if key is not None and reply.route is route:
            self.cache.put(key, CachedAnswer(reply.status, reply.body, reply.content_type))
            headers["X-ModelGate-Cache"] = "miss"
        return Answer(reply.status, reply.body, headers, reply.content_type)

    def _mirror(self, deployment: Deployment, point: float, body: bytes, request_id: str) -> None:
        for route in deployment.shadow_routes:
            if len(self._shadows) >= self.settings.shadow_concurrency:
                self.counters.shadow_dropped += 1
                continue
            task = asyncio.create_task(self._shadow(route, point, body, request_id))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _shadow(self, route: Route, point: float, body: bytes, request_id: str) -> None:
        headers = {**_replica_headers(request_id), "X-ModelGate-Shadow": "1"}
        try:
            reply = await self.forwarder.mirror(route, point, body, headers)
        except NoReplicaAnswered as failed:
            self.counters.shadow_failed += 1
            logger.warning(
                "shadow version %s did not answer request %s: %s", route.version, request_id, failed.attempts
            )
            return
        except Exception:
            self.counters.shadow_failed += 1
            logger.exception("shadow call to version %s failed", route.version)
            return
        if reply.status >= 400:
            self.counters.shadow_failed += 1
            logger.info("shadow version %s answered %s to request %s", route.version, reply.status, request_id)
        else:
            self.counters.shadow_sent += 1

    def _count(self, status: int) -> None:
        if status < 400:
            self.counters.answered += 1
        elif status >= 500:
            self.counters.unavailable += 1
        else:
            self.counters.refused += 1


def _not_found_message(model: str, deployment_id: int | str | None) -> str:
    if deployment_id is None:
        return f"no deployment serves model {model!r} (unknown, or several and none is the default)"
    return f"model {model!r} has no deployment {deployment_id!r}"


def _check_content_type(content_type: str | None) -> None:
    if content_type and content_type.split(";", 1)[0].strip().lower() != JSON:
        raise GatewayError(415, "unsupported_media_type", f"send {JSON}, not {content_type}")


def _parse(body: bytes) -> dict[str, Any]:
    try:
        return parse_payload(body)
    except PayloadError as error:
        raise GatewayError(400, "malformed_request", error.message, error.details or None) from error


def _validate(payload: dict[str, Any], table: ServingTable, deployment: Deployment, route: Route) -> None:
    schema = table.schema(deployment.id, route.version) or FORM_ONLY
    try:
        validate_payload(payload, schema)
    except PayloadError as error:
        raise GatewayError(
            400, "invalid", f"version {route.version}: {error.message}", {**error.details, "version": route.version}
        ) from error


def _route_headers(version: int, mode: str) -> dict[str, str]:
    return {"X-ModelGate-Version": str(version), "X-ModelGate-Route": mode}


def _replica_headers(request_id: str) -> dict[str, str]:
    return {"Content-Type": JSON, "X-Request-Id": request_id}
