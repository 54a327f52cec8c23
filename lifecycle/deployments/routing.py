"""The route table the control plane publishes and the serving gateway follows. Pure
(no Django): the gateway reads it on every request without touching the database.

A route table is a JSON document with a revision number::

    {"revision": 12, "published_at": "2026-12-03T08:00:00+00:00",
     "deployments": [
       {"id": 3, "model": "fraud-detector", "name": "production", "default": true,
        "state": "ready", "cache": false,
        "log": {"sample_rate": 1.0, "pii": ["email"]},
        "routes": [
          {"version": 2, "weight": 0.8, "mode": "primary", "signature": {...},
           "replicas": [{"id": 7, "url": "http://10.0.0.5:5501", "healthy": true}]},
          {"version": 3, "weight": 0.2, "mode": "canary", ...},
          {"version": 4, "weight": 0.0, "mode": "shadow", ...}]}]}

``weight`` is a share of live traffic among the ``primary`` and ``canary`` routes (they
sum to 1); a ``shadow`` route receives a copy of every call and its answer is never
returned. A caller that sends the same request id always lands on the same route.
``log`` (optional; every call logged, nothing masked without it) is what the prediction
log needs: the share of calls it keeps and the columns of the model's ``"pii"`` policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

RouteMode = Literal["primary", "canary", "shadow"]
ROUTE_MODES: tuple[str, ...] = ("primary", "canary", "shadow")
LIVE_MODES: frozenset[str] = frozenset({"primary", "canary"})
# Weights are compared and summed with this slack (they come from JSON decimals).
WEIGHT_TOLERANCE = 1e-9


class RouteTableError(ValueError):
    """A route table document that does not have the shape above."""


@dataclass(frozen=True)
class Replica:
    id: int
    url: str
    healthy: bool = True


@dataclass(frozen=True)
class Route:
    version: int
    weight: float
    mode: str
    replicas: tuple[Replica, ...] = ()
    signature: Mapping[str, Any] | None = None

    @property
    def live(self) -> bool:
        return self.mode in LIVE_MODES


@dataclass(frozen=True)
class Deployment:
    id: int
    model: str
    name: str
    routes: tuple[Route, ...]
    default: bool = False
    state: str = "ready"
    cache: bool = False
    # The share of calls written to the prediction log, and the columns masked there.
    log_sample_rate: float = 1.0
    pii: tuple[str, ...] = ()

    @property
    def live_routes(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.live and r.weight > 0)

    @property
    def shadow_routes(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.mode == "shadow")

    @property
    def primary(self) -> Route | None:
        return next((r for r in self.routes if r.mode == "primary"), None)


@dataclass(frozen=True)
class RouteTable:
    revision: int
    deployments: tuple[Deployment, ...] = ()
    published_at: str | None = None
    _by_model: dict[str, list[Deployment]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for deployment in self.deployments:
            self._by_model.setdefault(deployment.model, []).append(deployment)

    def deployment_for(
        self, model: str, deployment_id: int | None = None, *, name: str | None = None
    ) -> Deployment | None:
        """The model's deployment with that id or name, or its default one (else its only one)."""
        candidates = self._by_model.get(model, [])
        if deployment_id is not None:
            return next((d for d in candidates if d.id == deployment_id), None)
        if name is not None:
            return next((d for d in candidates if d.name == name), None)
        default = [d for d in candidates if d.default]
        if default:
            return default[0]
        return candidates[0] if len(candidates) == 1 else None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RouteTableError(f"{where} must be a number, not {value!r}")
    return float(value)


def _parse_route(raw: Mapping[str, Any], where: str) -> Route:
    mode = raw.get("mode")
    if mode not in ROUTE_MODES:
        raise RouteTableError(f"{where}.mode must be one of {', '.join(ROUTE_MODES)}, not {mode!r}")
    weight = _number(raw.get("weight", 0.0), f"{where}.weight")
    if not 0.0 <= weight <= 1.0 + WEIGHT_TOLERANCE:
        raise RouteTableError(f"{where}.weight must be between 0 and 1, not {weight}")
    replicas = tuple(
        Replica(id=int(r["id"]), url=str(r["url"]).rstrip("/"), healthy=bool(r.get("healthy", True)))
        for r in raw.get("replicas") or ()
    )
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RouteTableError(f"{where}.version must be a positive whole number, not {version!r}")
    return Route(version=version, weight=weight, mode=mode, replicas=replicas, signature=raw.get("signature"))


def parse_route_table(document: Mapping[str, Any]) -> RouteTable:
    """The route table of a published document, or ``RouteTableError`` naming the bad part."""
    if not isinstance(document, Mapping):
        raise RouteTableError("a route table is a JSON object")
    revision = document.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise RouteTableError(f"revision must be a whole number, not {revision!r}")
    deployments = []
    for i, raw in enumerate(document.get("deployments") or ()):
        where = f"deployments[{i}]"
        routes = tuple(_parse_route(r, f"{where}.routes[{j}]") for j, r in enumerate(raw.get("routes") or ()))
        live = sum(r.weight for r in routes if r.live)
        if routes and any(r.live for r in routes) and abs(live - 1.0) > 1e-6:
            raise RouteTableError(f"{where}: the weights of its primary and canary routes sum to {live}, not 1")
        log = raw.get("log") or {}
        if not isinstance(log, Mapping):
            raise RouteTableError(f"{where}.log must be an object, not {log!r}")
        sample_rate = _number(log.get("sample_rate", 1.0), f"{where}.log.sample_rate")
        if not 0.0 <= sample_rate <= 1.0:
            raise RouteTableError(f"{where}.log.sample_rate must be between 0 and 1, not {sample_rate}")
        pii = log.get("pii") or []
        if not isinstance(pii, list) or not all(isinstance(c, str) for c in pii):
            raise RouteTableError(f"{where}.log.pii must be a list of column names, not {pii!r}")
        deployments.append(
            Deployment(
                id=int(raw["id"]),
                model=str(raw["model"]),
                name=str(raw.get("name", "")),
                routes=routes,
                default=bool(raw.get("default", False)),
                state=str(raw.get("state", "ready")),
                cache=bool(raw.get("cache", False)),
                log_sample_rate=sample_rate,
                pii=tuple(pii),
            )
        )
    return RouteTable(revision=revision, deployments=tuple(deployments), published_at=document.get("published_at"))


def request_point(request_id: str) -> float:
    """Where in [0, 1) a request id falls: the same id always falls at the same point."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_route(routes: Sequence[Route], point: float) -> Route | None:
    """The live route whose share of [0, 1) contains ``point``: routes in order, each
    taking its weight; rounding leftovers go to the last."""
    live = [r for r in routes if r.live and r.weight > 0]
    if not live:
        return None
    edge = 0.0
    for route in live:
        edge += route.weight
        if point < edge:
            return route
    return live[-1]


def replica_order(route: Route, point: float) -> list[Replica]:
    """The route's replicas to try in turn: healthy ones first, starting at one chosen by
    ``point`` so that load spreads over them, then those marked unhealthy (they may be
    back before the next table)."""
    healthy = [r for r in route.replicas if r.healthy]
    unhealthy = [r for r in route.replicas if not r.healthy]
    if healthy:
        start = int(point * len(healthy)) % len(healthy)
        healthy = healthy[start:] + healthy[:start]
    return healthy + unhealthy


def fallback_routes(deployment: Deployment, chosen: Route) -> list[Route]:
    """Where to go when every replica of the chosen route is down: the primary route
    (when the chosen one was the canary)."""
    primary = deployment.primary
    return [primary] if primary is not None and primary is not chosen else []
