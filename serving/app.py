"""The serving gateway as an ASGI app (Starlette)::

    POST /serve/{model}/invocations                 the model's default deployment
    POST /serve/{model}/{deployment}/invocations    a deployment by id or by name
    GET  /serve/-/health                            {"status": "ok", "revision": N, "deployments": K}
    GET  /metrics                                   Prometheus metrics

``create_app`` takes the route table source, the token check and the prediction hook, so
tests and benchmarks give their own. ``uvicorn serving.app:app`` serves the production
app: the control plane's table from the database, the registry's tokens, settings from
the environment; Django is set up when that app is first asked for, not on import.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lifecycle.monitoring.scrape import UNAUTHORIZED, scrape_allowed
from serving.gateway import Answer, Gateway, GatewayError, error_body
from serving.metrics import GatewayMetrics
from serving.prediction_hook import PredictionHook
from serving.route_table import RouteTableSource
from serving.settings import GatewaySettings
from serving.tokens import TokenAuthenticator


def create_app(
    *,
    source: RouteTableSource | None = None,
    authenticator: TokenAuthenticator | None = None,
    settings: GatewaySettings | None = None,
    on_prediction: PredictionHook | None = None,
    **gateway_options: Any,
) -> Starlette:
    """The gateway app; ``source`` and ``authenticator`` default to the database's (Django
    must then be set up). ``app.state.gateway`` is the ``Gateway`` behind it."""
    if source is None or authenticator is None:
        from serving.database import database_authenticator, database_source

        source = source or database_source()
        authenticator = authenticator or database_authenticator()
    gateway = Gateway(
        source=source,
        authenticator=authenticator,
        settings=settings or GatewaySettings.from_environment(),
        on_prediction=on_prediction,
        **gateway_options,
    )
    attach = getattr(on_prediction, "attach", None)
    if attach is not None:
        attach(gateway)
    metrics = GatewayMetrics(gateway, on_prediction)
    max_body = gateway.settings.max_body_bytes

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()

        async def read_body() -> bytes:
            return await _read_body(request, max_body)

        model = request.path_params["model"]
        deployment = request.path_params.get("deployment")
        answer = await gateway.invoke(
            model=model,
            # A deployment is named by its id or its name (a name is never all digits).
            deployment_id=int(deployment) if deployment is not None and deployment.isdigit() else None,
            deployment_name=deployment if deployment is not None and not deployment.isdigit() else None,
            headers=request.headers,
            read_body=read_body,
        )
        headers = answer.headers
        metrics.observe(
            model=model if "X-ModelGate-Deployment" in headers else None,
            version=headers.get("X-ModelGate-Version"),
            route=headers.get("X-ModelGate-Route"),
            status=answer.status,
            seconds=time.perf_counter() - started,
        )
        return _response(answer)

    async def prometheus(request: Request) -> Response:
        if not scrape_allowed(request.headers.get("authorization"), gateway.settings.metrics_token):
            return Response(
                json.dumps(UNAUTHORIZED),
                401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                media_type="application/json",
            )
        return Response(generate_latest(metrics.registry), 200, media_type=CONTENT_TYPE_LATEST)

    async def health(request: Request) -> Response:
        return _response(gateway.health())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        message = f"no such endpoint: {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return Response(error_body(code, message), exc.status_code, headers=exc.headers, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.running():
            yield

    app = Starlette(
        routes=[
            Route("/serve/-/health", health, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/serve/{model}/invocations", invocations, methods=["POST"]),
            Route("/serve/{model}/{deployment}/invocations", invocations, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.metrics = metrics
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be larger than ``limit``."""
    too_large = GatewayError(413, "payload_too_large", f"the request body is larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _response(answer: Answer) -> Response:
    return Response(answer.body, answer.status, headers=answer.headers, media_type=answer.media_type)


def production_app() -> Starlette:
    """The app ``uvicorn serving.app:app`` serves: Django set up, database-backed."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from serving.prediction_logging import prediction_log_hook_from_settings

    return create_app(on_prediction=prediction_log_hook_from_settings())


_production: Starlette | None = None


def __getattr__(name: str) -> Any:
    # ``serving.app:app`` is built on first access, so importing this module (tests,
    # benchmarks) sets nothing up.
    global _production
    if name == "app":
        if _production is None:
            _production = production_app()
        return _production
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
