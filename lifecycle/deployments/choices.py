"""Enumerations of the deployment stage."""

from __future__ import annotations

from django.db import models

from registry.choices import Stage


class DeploymentTarget(models.TextChoices):
    # Replicas run as jobs on the job workers of a pool (``local``: the default pool,
    # which is the embedded worker under ``make run``).
    LOCAL = "local", "Local worker"
    POOL = "pool", "A worker pool"
    # Rendered as manifests for a cluster (``deploy/``); applying them is the cluster's job.
    KUBERNETES = "kubernetes", "Kubernetes"


class DeploymentState(models.TextChoices):
    PENDING = "pending", "Pending"
    STARTING = "starting", "Starting"
    READY = "ready", "Ready"
    DEGRADED = "degraded", "Degraded"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


class RouteMode(models.TextChoices):
    PRIMARY = "primary", "Primary"
    CANARY = "canary", "Canary"
    SHADOW = "shadow", "Shadow"


class ReplicaState(models.TextChoices):
    STARTING = "starting", "Starting"
    READY = "ready", "Ready"
    UNHEALTHY = "unhealthy", "Unhealthy"
    DRAINING = "draining", "Draining"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


REPLICA_LIVE_STATES = frozenset({ReplicaState.STARTING, ReplicaState.READY, ReplicaState.UNHEALTHY})
REPLICA_FINAL_STATES = frozenset({ReplicaState.FAILED, ReplicaState.STOPPED})

# The stages a version may be served from: a route never serves one still in training.
DEPLOYABLE_STAGES = frozenset({Stage.STAGING, Stage.PRODUCTION})
