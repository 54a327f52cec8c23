"""The gateway's settings, read from the environment with the project's strict parsers
(``config.env``): a malformed value stops the gateway at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from config import env


@dataclass(frozen=True)
class GatewaySettings:
    # How often the route table is asked for; a rollback reaches callers within this.
    refresh_seconds: float = 1.0
    # How long a checked token is believed without asking the database again: a revoked
    # token keeps working for at most this long.
    token_ttl_seconds: float = 30.0
    token_cache_size: int = 10_000
    connect_timeout_seconds: float = 1.0
    # A replica that takes longer than this to predict is treated as down for the call.
    replica_timeout_seconds: float = 30.0
    # One call's deadline across all of its attempts (replicas, retries, fallback routes):
    # each attempt gets what is left, so a caller never waits out every replica's timeout.
    call_deadline_seconds: float = 45.0
    max_connections: int = 256
    # Below uvicorn's own 5 s keep-alive on the replicas, so the gateway drops an idle
    # connection before the replica does and never writes into one being closed.
    keepalive_expiry_seconds: float = 4.0
    # After a connection failure a replica is tried last for this long.
    replica_suspend_seconds: float = 5.0
    # Shadow copies in flight at once; beyond this a copy is dropped (and counted), so a
    # slow shadow cannot pile up tasks.
    shadow_concurrency: int = 32
    cache_size: int = 1024
    cache_ttl_seconds: float = 60.0
    # Answers larger than this are not cached.
    cache_max_answer_bytes: int = 256 * 1024
    max_body_bytes: int = 8 * 1024 * 1024
    # Bearer token a scrape of /metrics must send (empty: none needed).
    metrics_token: str = ""

    @classmethod
    def from_environment(cls) -> GatewaySettings:
        """The settings of the ``MODELGATE_GATEWAY_*`` variables, defaults for the rest."""
        d = cls()
        return cls(
            refresh_seconds=env.number("MODELGATE_GATEWAY_REFRESH_SECONDS", d.refresh_seconds, minimum=0.05),
            token_ttl_seconds=env.number("MODELGATE_GATEWAY_TOKEN_TTL_SECONDS", d.token_ttl_seconds, minimum=0),
            token_cache_size=env.integer("MODELGATE_GATEWAY_TOKEN_CACHE_SIZE", d.token_cache_size, minimum=1),
            connect_timeout_seconds=env.number(
                "MODELGATE_GATEWAY_CONNECT_TIMEOUT_SECONDS", d.connect_timeout_seconds, minimum=0.01
            ),
            replica_timeout_seconds=env.number(
                "MODELGATE_GATEWAY_REPLICA_TIMEOUT_SECONDS", d.replica_timeout_seconds, minimum=0.01
            ),
            call_deadline_seconds=env.number(
                "MODELGATE_GATEWAY_CALL_DEADLINE_SECONDS", d.call_deadline_seconds, minimum=0.01
            ),
            max_connections=env.integer("MODELGATE_GATEWAY_MAX_CONNECTIONS", d.max_connections, minimum=1),
            keepalive_expiry_seconds=env.number(
                "MODELGATE_GATEWAY_KEEPALIVE_EXPIRY_SECONDS", d.keepalive_expiry_seconds, minimum=0
            ),
            replica_suspend_seconds=env.number(
                "MODELGATE_GATEWAY_REPLICA_SUSPEND_SECONDS", d.replica_suspend_seconds, minimum=0
            ),
            shadow_concurrency=env.integer("MODELGATE_GATEWAY_SHADOW_CONCURRENCY", d.shadow_concurrency, minimum=0),
            cache_size=env.integer("MODELGATE_GATEWAY_CACHE_SIZE", d.cache_size, minimum=1),
            cache_ttl_seconds=env.number("MODELGATE_GATEWAY_CACHE_TTL_SECONDS", d.cache_ttl_seconds, minimum=0),
            cache_max_answer_bytes=env.integer(
                "MODELGATE_GATEWAY_CACHE_MAX_ANSWER_BYTES", d.cache_max_answer_bytes, minimum=0
            ),
            max_body_bytes=env.integer("MODELGATE_GATEWAY_MAX_BODY_BYTES", d.max_body_bytes, minimum=1024),
            metrics_token=env.string("MODELGATE_METRICS_TOKEN", d.metrics_token),
        )
