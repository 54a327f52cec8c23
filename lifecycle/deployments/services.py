"""Every write of the deployment stage: create, change settings, canary, shadow, promote,
abort, stop.

Each change of a deployment's routes locks the deployment's row, writes a revision (who,
when, why, before and after), an audit record and a ``deployment.updated`` event, and
publishes a new route table, all in one transaction: the gateway sees the new routes
exactly when they commit. Replicas are jobs (kind ``deploy``) placed by the scheduler;
``deployments_reconcile`` keeps their number right and drains the ones no route needs.
A change of settings (monitoring windows, log sample rate, cache) is a revision too; it
publishes a route table only when the gateway reads what changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from lifecycle.deployments.choices import (
    DEPLOYABLE_STAGES,
    REPLICA_LIVE_STATES,
    DeploymentState,
    DeploymentTarget,
    ReplicaState,
    RouteMode,
)
from lifecycle.deployments.models import Deployment, DeploymentRevision, Replica, Route, RouteTablePublication
from lifecycle.deployments.monitor_windows import window_next_end
from lifecycle.deployments.selectors import route_table_build
from lifecycle.governance.models import Transition
from lifecycle.governance.services.audit import audit_append
from lifecycle.governance.services.outbox import event_publish
from lifecycle.governance.services.transitions import transition_request
from lifecycle.jobs.choices import JOB_FINAL_STATES, JobKind
from lifecycle.jobs.models import Job
from lifecycle.jobs.services import job_cancel_system, job_submit
from registry.choices import Role, Stage
from registry.errors import Conflict, InvalidInput
from registry.models import ModelVersion, RegisteredModel
from registry.permissions import require_role

logger = logging.getLogger(__name__)

REPLICA_PROGRAM = ["python", "-m", "lifecycle.deployments.replica"]
MAX_REPLICAS = 16
# A version whose replicas failed this many times in a row fails its deployment.
MAX_REPLICA_FAILURES = 3
_ROUTE_TABLE_LOCK = 0x4D47_5254
# Monitoring windows last at most a week.
MONITOR_EVERY_MINUTES_MAX = 7 * 24 * 60
# What ``deployment_settings_update`` may change, and which of those the gateway reads
# from the route table (a change of those publishes a new one).
DEPLOYMENT_SETTINGS = ("monitor_every_minutes", "log_sample_rate", "cache")
_GATEWAY_SETTINGS = frozenset({"log_sample_rate", "cache"})


def deployment_snapshot(deployment: Deployment) -> dict[str, Any]:
    """The deployment's routes and state, as revisions and the audit trail record them."""
    return {
        "state": deployment.state,
        "replicas": deployment.replicas,
        "routes": [
            {"version": r.version.version, "mode": r.mode, "weight": round(r.weight, 6)}
            for r in deployment.routes.select_related("version").order_by("mode", "id")
        ],
    }


def route_table_publish() -> RouteTablePublication:
    """Publish the route table of every running deployment, in the caller's transaction.

    Publications are serialised so that a larger revision never holds older routes."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ROUTE_TABLE_LOCK])
    publication = RouteTablePublication.objects.create(document={})
    publication.document = route_table_build(revision=publication.pk, at=timezone.now())
    publication.save(update_fields=["document"])
    return publication


def _revise(
    deployment: Deployment,
    *,
    action: str,
    actor: AbstractBaseUser | None,
    reason: str,
    before: dict[str, Any] | None,
    snapshot: Callable[[Deployment], dict[str, Any]] = deployment_snapshot,
    publish: bool = True,
) -> DeploymentRevision:
    """Number and record a change (revision, audit record, event), and publish the route
    table unless the change is none of the gateway's business (``publish=False``)."""
    deployment.revision += 1
    deployment.save(update_fields=["revision", "state", "state_detail", "updated_at", "stopped_at", "previous_primary"])
    # A new route is not served until its replicas answer: the state says so at once.
    _deployment_state_refresh(deployment.pk)
    deployment.refresh_from_db(fields=["state", "state_detail"])
    after = snapshot(deployment)
    revision = DeploymentRevision.objects.create(
        deployment=deployment,
        number=deployment.revision,
        action=action,
        actor=actor,
        reason=reason,
        before=before,
        after=after,
    )
    audit_append(
        actor=actor,
        action=f"deployment.{action}",
        object_type="deployment",
        object_id=deployment.pk,
        model_name=deployment.model.name,
        before=before,
        after={**after, "revision": deployment.revision},
        reason=reason,
    )
    event_publish(
        team=deployment.model.team,
        event_type="deployment.updated",
        data={"deployment": deployment.pk, "model": deployment.model.name, "action": action, **after},
    )
    if publish:
        route_table_publish()
    return revision


def _lock(deployment: Deployment) -> Deployment:
    locked = Deployment.objects.select_for_update().select_related("model", "model__team").get(pk=deployment.pk)
    if locked.state == DeploymentState.STOPPED:
        raise Conflict(f"deployment {locked} is stopped", code="stopped")
    return locked


def _deployable(model: RegisteredModel, number: int | None, field: str) -> ModelVersion:
    if number is None:
        version = ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).first()
        if version is None:
            raise InvalidInput(
                f"model {model.name!r} has no production version; name the version to deploy",
                details={field: "required: the model has no production version"},
            )
        return version
    version = ModelVersion.objects.filter(model=model, version=number).first()
    if version is None:
        raise InvalidInput(f"model {model.name!r} has no version {number}", details={field: "unknown version"})
    if version.stage not in DEPLOYABLE_STAGES:
        raise InvalidInput(
            f"v{number} is in {version.stage}; only staging and production versions are served",
            details={field: f"v{number} is in {version.stage}"},
        )
    return version


def _replica_start(deployment: Deployment, version: ModelVersion, actor: AbstractBaseUser | None) -> Replica:
    replica = Replica.objects.create(deployment=deployment, version=version)
    resources = {"cpus": 1, "memory_mb": 512, **(deployment.resources or {})}
    job = job_submit(
        actor=actor,
        team=deployment.model.team,
        kind=JobKind.DEPLOY,
        spec={
            "entrypoint": REPLICA_PROGRAM,
            "params": {"program": "replica", "replica": replica.pk, "model": deployment.model.name},
            "resources": resources,
            "max_attempts": 1,
        },
        pool=deployment.pool,
        model=deployment.model,
        version=version,
    )
    replica.job = job
    replica.save(update_fields=["job"])
    return replica


def monitoring_settings_validate(
    *, cache: bool = False, log_sample_rate: float = 1.0, monitor_every_minutes: int | None = None
) -> None:
    """The rules of the settings a deployment may change after creation, as creation and
    ``deployment_settings_update`` apply them: ``InvalidInput`` naming the first bad one."""
    if not isinstance(cache, bool):
        raise InvalidInput("cache must be true or false", details={"cache": "not a boolean"})
    if isinstance(log_sample_rate, bool) or not isinstance(log_sample_rate, (int, float)):
        raise InvalidInput("log_sample_rate must be a number", details={"log_sample_rate": "not a number"})
    if not 0.0 <= log_sample_rate <= 1.0:
        raise InvalidInput(
            "log_sample_rate must be between 0 and 1", details={"log_sample_rate": "not between 0 and 1"}
        )
    if monitor_every_minutes is not None and (
        isinstance(monitor_every_minutes, bool)
        or not isinstance(monitor_every_minutes, int)
        or not 1 <= monitor_every_minutes <= MONITOR_EVERY_MINUTES_MAX
    ):
        raise InvalidInput(
            f"monitor_every_minutes must be between 1 and {MONITOR_EVERY_MINUTES_MAX} (a week)",
            details={"monitor_every_minutes": "out of range"},
        )


def deployment_create(
    *,
    actor: AbstractBaseUser,
    model: RegisteredModel,
    name: str = "production",
    target: str = DeploymentTarget.LOCAL,
    pool: str | None = None,
    version: int | None = None,
    alias: str | None = None,
    replicas: int = 1,
    resources: dict[str, Any] | None = None,
    cache: bool = False,
    log_sample_rate: float = 1.0,
    monitor_every_minutes: int | None = None,
) -> Deployment:
    """Serve a version (the production one unless ``version`` or ``alias`` names another);
    ``log_sample_rate`` of its calls go to the prediction log, and its monitoring windows
    last ``monitor_every_minutes`` (None: the settings' default)."""
    require_role(actor, model.team, Role.DEVELOPER, action="deploying a model")
    if target not in DeploymentTarget.values:
        raise InvalidInput(
            f"unknown target {target!r}; expected one of {', '.join(DeploymentTarget.values)}",
            details={"target": "unknown target"},
        )
    if not 1 <= replicas <= MAX_REPLICAS:
        raise InvalidInput(f"replicas must be between 1 and {MAX_REPLICAS}", details={"replicas": "out of range"})
    if name.isdigit():
        # The gateway takes /serve/{model}/{id or name}/: a name of digits would read as an id.
        raise InvalidInput(
            f"a deployment name cannot be all digits ({name!r}); it would read as a deployment id",
            details={"name": "all digits"},
        )
    monitoring_settings_validate(
        cache=cache, log_sample_rate=log_sample_rate, monitor_every_minutes=monitor_every_minutes
    )
    if version is not None and alias is not None:
        raise InvalidInput("give a version or an alias, not both", details={"alias": "conflicts with version"})
    if alias is not None:
        pointed = model.aliases.filter(name=alias).select_related("version").first()
        if pointed is None or pointed.version is None:
            raise InvalidInput(f"model {model.name!r} has no alias {alias!r}", details={"alias": "unknown alias"})
        version = pointed.version.version
    served = _deployable(model, version, "alias" if alias is not None else "version")
    with transaction.atomic():
        if Deployment.objects.filter(model=model, name=name).exists():
            raise Conflict(f"model {model.name!r} already has a deployment named {name!r}", code="duplicate")
        running = Deployment.objects.filter(model=model).exclude(state=DeploymentState.STOPPED)
        deployment = Deployment.objects.create(
            model=model,
            name=name,
            target=target,
            pool=pool or "default",
            replicas=replicas,
            resources=resources or {},
            state=DeploymentState.STARTING,
            follows_production=(version is None and alias is None) or alias == "champion",
            is_default=not running.filter(is_default=True).exists(),
            cache=cache,
            log_sample_rate=log_sample_rate,
            monitor_every_minutes=monitor_every_minutes,
            created_by=actor,
        )
        Route.objects.create(
            deployment=deployment, version=served, mode=RouteMode.PRIMARY, weight=1.0, started_at=timezone.now()
        )
        if target != DeploymentTarget.KUBERNETES:
            for _ in range(replicas):
                _replica_start(deployment, served, actor)
        else:
            deployment.state, deployment.state_detail = DeploymentState.PENDING, "render with GET …/manifests/"
        _revise(deployment, action="create", actor=actor, reason=f"serve v{served.version}", before=None)
    return deployment


def deployment_settings_snapshot(deployment: Deployment) -> dict[str, Any]:
    """The settings ``deployment_settings_update`` changes, as its revisions record them."""
    return {
        "monitor_every_minutes": deployment.monitor_every_minutes,
        "log_sample_rate": deployment.log_sample_rate,
        "cache": deployment.cache,
    }


def deployment_settings_update(
    *, actor: AbstractBaseUser, deployment: Deployment, changes: Mapping[str, Any], reason: str = ""
) -> Deployment:
    """Change how a running deployment is monitored and served: ``monitor_every_minutes``
    (None: the settings' default), ``log_sample_rate`` and ``cache``, any of them.

    Validated as creation validates them, by the role creation needs; the change is a
    revision and an audit record (before, after, reason) in one transaction. A new window
    length makes the deployment due when its current window of that length ends; a new
    sample rate or cache setting reaches the gateway in a new route table. Values equal
    to the current ones change nothing and record nothing."""
    unknown = sorted(set(changes) - set(DEPLOYMENT_SETTINGS))
    if unknown:
        raise InvalidInput(
            f"cannot change {', '.join(unknown)}; a deployment's settings are {', '.join(DEPLOYMENT_SETTINGS)}",
            details={name: "cannot be changed" for name in unknown},
        )
    require_role(actor, deployment.model.team, Role.DEVELOPER, action="changing a deployment's settings")
    with transaction.atomic():
        deployment = _lock(deployment)
        before = deployment_settings_snapshot(deployment)
        monitoring_settings_validate(**{**before, **changes})
        changed = {name for name, value in changes.items() if before[name] != value}
        if not changed:
            return deployment
        for name in changed:
            setattr(deployment, name, changes[name])
        fields = sorted(changed)
        if "monitor_every_minutes" in changed:
            deployment.monitor_due_at = window_next_end(deployment, timezone.now())
            fields.append("monitor_due_at")
        deployment.save(update_fields=fields)
        _revise(
            deployment,
            action="settings",
            actor=actor,
            reason=reason or "changed " + ", ".join(sorted(changed)),
            before=before,
            snapshot=deployment_settings_snapshot,
            publish=bool(changed & _GATEWAY_SETTINGS),
        )
    return deployment


def _routes(deployment: Deployment) -> dict[str, Route]:
    return {r.mode: r for r in deployment.routes.select_related("version")}


def _ensure_replicas(deployment: Deployment, version: ModelVersion, actor: AbstractBaseUser | None) -> None:
    if deployment.target == DeploymentTarget.KUBERNETES:
        return
    live = Replica.objects.filter(deployment=deployment, version=version, state__in=REPLICA_LIVE_STATES).count()
    for _ in range(max(deployment.replicas - live, 0)):
        _replica_start(deployment, version, actor)


def canary_set(
    *, actor: AbstractBaseUser, deployment: Deployment, version: int, weight: float, reason: str = ""
) -> Deployment:
    """Start a canary of ``version`` taking ``weight`` of live traffic, or widen it."""
    require_role(actor, deployment.model.team, Role.APPROVER, action="starting a canary")
    if not 0.0 < weight < 1.0:
        raise InvalidInput(
            "a canary's weight is a share of traffic between 0 and 1", details={"weight": "out of range"}
        )
    with transaction.atomic():
        deployment = _lock(deployment)
        before = deployment_snapshot(deployment)
        routes = _routes(deployment)
        candidate = _deployable(deployment.model, version, "version")
        primary = routes[RouteMode.PRIMARY]
        if candidate.pk == primary.version_id:
            raise InvalidInput(f"v{version} is the primary already", details={"version": "is the primary"})
        canary = routes.get(RouteMode.CANARY)
        if canary is not None and canary.version_id != candidate.pk:
            raise Conflict(
                f"v{canary.version.version} is the canary of {deployment}; promote or abort it first", code="canary"
            )
        shadow = routes.get(RouteMode.SHADOW)
        if shadow is not None and shadow.version_id == candidate.pk:
            shadow.delete()
        action = "canary_widen" if canary is not None else "canary_start"
        if canary is None:
            canary = Route(deployment=deployment, version=candidate, mode=RouteMode.CANARY, started_at=timezone.now())
        canary.weight = weight
        canary.save()
        primary.weight = 1.0 - weight
        primary.save(update_fields=["weight"])
        _ensure_replicas(deployment, candidate, actor)
        _revise(
            deployment, action=action, actor=actor, reason=reason or f"v{version} takes {weight:.0%}", before=before
        )
    return deployment


def shadow_set(*, actor: AbstractBaseUser, deployment: Deployment, version: int, reason: str = "") -> Deployment:
    """Mirror every call to ``version`` as well; its answers never reach callers."""
    require_role(actor, deployment.model.team, Role.DEVELOPER, action="adding a shadow")
    with transaction.atomic():
        deployment = _lock(deployment)
        before = deployment_snapshot(deployment)
        candidate = _deployable(deployment.model, version, "version")
        if deployment.routes.filter(version=candidate).exists():
            raise Conflict(f"v{version} already has a route in {deployment}", code="routed")
        deployment.routes.filter(mode=RouteMode.SHADOW).delete()
        Route.objects.create(
            deployment=deployment, version=candidate, mode=RouteMode.SHADOW, weight=0.0, started_at=timezone.now()
        )
        _ensure_replicas(deployment, candidate, actor)
        _revise(deployment, action="shadow", actor=actor, reason=reason or f"v{version} mirrored", before=before)
    return deployment


def _drop_canary(deployment: Deployment, routes: dict[str, Route]) -> None:
    routes[RouteMode.CANARY].delete()
    primary = routes[RouteMode.PRIMARY]
    primary.weight = 1.0
    primary.save(update_fields=["weight"])


def canary_abort(*, actor: AbstractBaseUser | None, deployment: Deployment, reason: str) -> Deployment:
    """Take the canary out: the primary serves all live traffic again at once."""
    if actor is not None:
        require_role(actor, deployment.model.team, Role.APPROVER, action="aborting a canary")
    if not (reason or "").strip():
        raise InvalidInput("aborting a canary needs a reason", details={"reason": "required"})
    with transaction.atomic():
        deployment = _lock(deployment)
        routes = _routes(deployment)
        if RouteMode.CANARY not in routes:
            raise Conflict(f"{deployment} has no canary", code="no_canary")
        before = deployment_snapshot(deployment)
        _drop_canary(deployment, routes)
        _revise(deployment, action="canary_abort", actor=actor, reason=reason, before=before)
    return deployment


def canary_promote(*, actor: AbstractBaseUser, deployment: Deployment, reason: str = "") -> Transition:
    """Ask for the canary's version to become production: a governed transition with
    the model's gates and approvals. Once it is applied, every deployment that follows
    production (this one included) takes it as primary."""
    require_role(actor, deployment.model.team, Role.APPROVER, action="promoting a canary")
    canary = deployment.routes.filter(mode=RouteMode.CANARY).select_related("version").first()
    if canary is None:
        raise Conflict(f"{deployment} has no canary to promote", code="no_canary")
    return transition_request(
        version=canary.version,
        to=Stage.PRODUCTION,
        reason=reason or f"canary of deployment {deployment.pk} promoted",
        actor=actor,
    )


def deployment_stop(*, actor: AbstractBaseUser, deployment: Deployment, reason: str) -> Deployment:
    """Stop serving: routes leave the route table now, replicas drain and stop."""
    require_role(actor, deployment.model.team, Role.APPROVER, action="stopping a deployment")
    if not (reason or "").strip():
        raise InvalidInput("stopping a deployment needs a reason", details={"reason": "required"})
    with transaction.atomic():
        deployment = _lock(deployment)
        before = deployment_snapshot(deployment)
        deployment.state, deployment.state_detail, deployment.stopped_at = (
            DeploymentState.STOPPED,
            reason,
            timezone.now(),
        )
        deployment.is_default = False
        deployment.save(update_fields=["is_default"])
        for replica in Replica.objects.filter(deployment=deployment, state__in=REPLICA_LIVE_STATES):
            _replica_drain(replica)
        _revise(deployment, action="stop", actor=actor, reason=reason, before=before)
    return deployment


def on_production_changed(
    sender: Any, *, model: RegisteredModel, version: ModelVersion, actor: Any, reason: str, **_: Any
) -> None:
    """Move the primary route of every deployment that follows production to the new
    production version, in the transaction of the promotion or rollback itself."""
    for deployment in (
        Deployment.objects.select_for_update()
        .filter(model=model, follows_production=True)
        .exclude(state=DeploymentState.STOPPED)
    ):
        deployment.model = model
        routes = _routes(deployment)
        primary = routes[RouteMode.PRIMARY]
        if primary.version_id == version.pk:
            continue
        before = deployment_snapshot(deployment)
        for mode in (RouteMode.CANARY, RouteMode.SHADOW):
            route = routes.get(mode)
            if route is not None and route.version_id == version.pk:
                route.delete()
        deployment.previous_primary = primary.version
        canary = routes.get(RouteMode.CANARY)
        if canary is not None and canary.version_id == version.pk:
            canary = None  # deleted above: the canary became the primary
        primary.version, primary.started_at = version, timezone.now()
        primary.weight = 1.0 - (canary.weight if canary is not None else 0.0)
        primary.save()
        _ensure_replicas(deployment, version, actor)
        _revise(
            deployment,
            action="primary",
            actor=actor,
            reason=reason or f"v{version.version} in production",
            before=before,
        )


def canary_started_at(sender: Any, *, version: ModelVersion, **_: Any) -> datetime | None:
    """When the version's canary began taking live traffic in a running deployment."""
    route = (
        Route.objects.filter(version=version, mode=RouteMode.CANARY, weight__gt=0)
        .exclude(deployment__state=DeploymentState.STOPPED)
        .order_by("started_at")
        .first()
    )
    return route.started_at if route is not None else None


# --- replicas, as their program reports them ---------------------------------------------


def _replica_locked(replica_id: int) -> Replica | None:
    """The replica under a row lock, its deployment's row locked first.

    Every change that refreshes a deployment's state takes the deployment's lock before a
    replica's (as reconciliation does), so two replicas turning ready at once are judged one
    after the other, each seeing the other's commit, and no two writers wait on each other.
    """
    deployment_id = Replica.objects.filter(pk=replica_id).values_list("deployment_id", flat=True).first()
    if deployment_id is None:
        return None
    Deployment.objects.select_for_update().filter(pk=deployment_id).values_list("pk", flat=True).first()
    return Replica.objects.select_for_update().filter(pk=replica_id).first()


def replica_ready(*, replica_id: int, url: str, host: str) -> Replica | None:
    """The replica's scoring server answers: routes may send it traffic."""
    with transaction.atomic():
        replica = _replica_locked(replica_id)
        if replica is None or replica.state not in REPLICA_LIVE_STATES:
            return None
        replica.state, replica.url, replica.host, replica.state_detail = ReplicaState.READY, url, host, ""
        replica.ready_at = replica.last_heartbeat = timezone.now()
        replica.save()
        _deployment_state_refresh(replica.deployment_id)
        route_table_publish()
    return replica


def replica_heartbeat(*, replica_id: int, healthy: bool, detail: str = "", restarts: int = 0) -> bool:
    """Record a health check; publish a new route table when health changed. False when
    the replica should stop (drained, or its deployment stopped)."""
    with transaction.atomic():
        replica = _replica_locked(replica_id)
        if replica is None or replica.state not in REPLICA_LIVE_STATES:
            return False
        state = ReplicaState.READY if healthy else ReplicaState.UNHEALTHY
        changed = replica.state != state
        replica.state, replica.state_detail, replica.restarts = state, detail, restarts
        replica.last_heartbeat = timezone.now()
        replica.save(update_fields=["state", "state_detail", "restarts", "last_heartbeat"])
        if changed:
            _deployment_state_refresh(replica.deployment_id)
            route_table_publish()
    return True


def replica_failed(*, replica_id: int, detail: str) -> None:
    """The replica could not start or gave up (a digest mismatch, a model that does not load)."""
    with transaction.atomic():
        replica = _replica_locked(replica_id)
        if replica is None or replica.state in (ReplicaState.FAILED, ReplicaState.STOPPED):
            return
        replica.state, replica.state_detail, replica.stopped_at = ReplicaState.FAILED, detail[:2000], timezone.now()
        replica.save(update_fields=["state", "state_detail", "stopped_at"])
        _deployment_state_refresh(replica.deployment_id)
        route_table_publish()


def _replica_drain(replica: Replica) -> None:
    replica.state, replica.stopped_at = ReplicaState.DRAINING, timezone.now()
    replica.save(update_fields=["state", "stopped_at"])
    if replica.job_id is not None:
        job_cancel_system(job_id=replica.job_id, reason=f"replica {replica.pk} drained")


def replica_outcome_apply(job: Job) -> None:
    """The outcome handler of ``deploy`` jobs: a replica whose job ended is stopped (or
    failed, with the job's reason) and the next reconciliation replaces it if needed."""
    replica = Replica.objects.filter(job=job).first()
    if replica is None:
        return
    with transaction.atomic():
        replica = _replica_locked(replica.pk)
        if replica is None:
            return
        if replica.state not in (ReplicaState.FAILED, ReplicaState.STOPPED):
            failed = job.state == "failed" and replica.state != ReplicaState.DRAINING
            replica.state = ReplicaState.FAILED if failed else ReplicaState.STOPPED
            replica.state_detail = replica.state_detail or job.state_detail
            replica.stopped_at = replica.stopped_at or timezone.now()
            replica.save(update_fields=["state", "state_detail", "stopped_at"])
        _deployment_state_refresh(replica.deployment_id)
        route_table_publish()


# --- reconciliation -----------------------------------------------------------------------


def _deployment_state_refresh(deployment_id: int) -> None:
    """Derive the deployment's state from its routes' replicas; announce ready and failed."""
    deployment = Deployment.objects.select_related("model", "model__team").get(pk=deployment_id)
    if deployment.state == DeploymentState.STOPPED or deployment.target == DeploymentTarget.KUBERNETES:
        return
    routed = set(deployment.routes.values_list("version_id", flat=True))
    replicas = list(Replica.objects.filter(deployment=deployment, version_id__in=routed))
    ready = {r.version_id for r in replicas if r.state == ReplicaState.READY}
    failures: dict[int, int] = {}
    for r in sorted(replicas, key=lambda r: r.pk):
        failures[r.version_id] = failures.get(r.version_id, 0) + 1 if r.state == ReplicaState.FAILED else 0
    failed = [v for v, n in failures.items() if n >= MAX_REPLICA_FAILURES]
    if failed:
        last = next(r for r in sorted(replicas, key=lambda r: -r.pk) if r.version_id in failed)
        state, detail = DeploymentState.FAILED, f"replicas keep failing: {last.state_detail}"
    elif routed <= ready and all(
        sum(1 for r in replicas if r.version_id == v and r.state == ReplicaState.READY) >= deployment.replicas
        for v in routed
    ):
        state, detail = DeploymentState.READY, ""
    elif ready:
        state, detail = DeploymentState.DEGRADED, f"{len(ready)} of {len(routed)} routes have a ready replica"
    else:
        state, detail = DeploymentState.STARTING, "waiting for replicas"
    if (state, detail) == (deployment.state, deployment.state_detail):
        return
    was = deployment.state
    Deployment.objects.filter(pk=deployment.pk).update(state=state, state_detail=detail, updated_at=timezone.now())
    if state != was and state in (DeploymentState.READY, DeploymentState.FAILED):
        event_publish(
            team=deployment.model.team,
            event_type=f"deployment.{state}",
            data={"deployment": deployment.pk, "model": deployment.model.name, "detail": detail},
        )


def deployments_reconcile() -> dict[str, int]:
    """Start the replicas routes are missing, drain those no route needs once every route
    has a ready one, and refresh each deployment's state (run periodically)."""
    started = drained = 0
    for deployment_id in Deployment.objects.exclude(state=DeploymentState.STOPPED).values_list("id", flat=True):
        with transaction.atomic():
            deployment = (
                Deployment.objects.select_for_update().select_related("model", "model__team").get(pk=deployment_id)
            )
            if deployment.target == DeploymentTarget.KUBERNETES or deployment.state == DeploymentState.FAILED:
                continue
            routed = {r.version_id: r.version for r in deployment.routes.select_related("version")}
            live = list(Replica.objects.filter(deployment=deployment, state__in=REPLICA_LIVE_STATES))
            for version in routed.values():
                count = sum(1 for r in live if r.version_id == version.pk)
                for _ in range(max(deployment.replicas - count, 0)):
                    _replica_start(deployment, version, None)
                    started += 1
            every_route_ready = all(
                any(r.version_id == v and r.state == ReplicaState.READY for r in live) for v in routed
            )
            if every_route_ready:
                for replica in live:
                    if replica.version_id not in routed:
                        _replica_drain(replica)
                        drained += 1
                if deployment.previous_primary_id is not None:
                    Deployment.objects.filter(pk=deployment.pk).update(previous_primary=None)
            # A ready replica that stopped reporting (its host is gone, or hangs) is tried last.
            silent_since = timezone.now() - timedelta(seconds=settings.MODELGATE_REPLICA_HEARTBEAT_TIMEOUT_SECONDS)
            silenced = Replica.objects.filter(
                deployment=deployment, state=ReplicaState.READY, last_heartbeat__lt=silent_since
            ).update(state=ReplicaState.UNHEALTHY, state_detail="no heartbeat")
            # A replica job that ended without telling us (its worker died) is no replica.
            for replica in live:
                job_state = Job.objects.filter(pk=replica.job_id).values_list("state", flat=True).first()
                if job_state in JOB_FINAL_STATES:
                    replica_outcome_apply(Job.objects.get(pk=replica.job_id))
            _deployment_state_refresh(deployment.pk)
            if started or drained or silenced:
                route_table_publish()
    return {"started": started, "drained": drained}
