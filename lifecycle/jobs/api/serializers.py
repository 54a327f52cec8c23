"""Serializers of the jobs API: what comes in, and every response's shape."""

from __future__ import annotations

from rest_framework import serializers

from lifecycle.jobs.choices import JobKind
from registry.api.serializers import StrictSerializer


class JobCreateIn(StrictSerializer):
    kind = serializers.ChoiceField(choices=JobKind.choices)
    team = serializers.CharField(required=False, max_length=64)
    model = serializers.CharField(required=False, allow_null=True, max_length=128)
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    spec = serializers.JSONField()
    priority = serializers.IntegerField(required=False, default=0, min_value=-1000, max_value=1000)
    pool = serializers.CharField(required=False, default="default", max_length=64)
    deadline = serializers.DateTimeField(required=False, allow_null=True)


class JobOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    team = serializers.CharField(source="team.name")
    model = serializers.CharField(source="model.name", default=None, allow_null=True)
    version = serializers.IntegerField(source="version.version", default=None, allow_null=True)
    spec = serializers.JSONField()
    priority = serializers.IntegerField()
    pool = serializers.CharField(source="pool.name")
    state = serializers.CharField()
    state_detail = serializers.CharField()
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    assignment = serializers.JSONField()
    strategy = serializers.CharField()
    progress = serializers.FloatField()
    result = serializers.JSONField()
    exit_code = serializers.IntegerField(allow_null=True)
    cancel_requested = serializers.BooleanField()
    cost_estimate = serializers.FloatField(allow_null=True)
    cost_actual = serializers.FloatField(allow_null=True)
    log_size = serializers.IntegerField()
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    created_at = serializers.DateTimeField()
    scheduled_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    deadline = serializers.DateTimeField(allow_null=True)


class JobLogOut(serializers.Serializer):
    job = serializers.IntegerField()
    state = serializers.CharField()
    offset = serializers.IntegerField()
    next_offset = serializers.IntegerField()
    text = serializers.CharField()
    complete = serializers.BooleanField()


class WorkerOut(serializers.Serializer):
    """A worker with its live load (a row of ``selectors.workers_with_load``)."""

    name = serializers.CharField(source="worker.name")
    hostname = serializers.CharField(source="worker.hostname")
    pool = serializers.CharField(source="worker.pool.name")
    state = serializers.CharField(source="worker.state")
    gpus = serializers.JSONField(source="worker.gpus")
    inventory_source = serializers.CharField(source="worker.inventory_source")
    cpus = serializers.IntegerField(source="worker.cpus")
    memory_mb = serializers.IntegerField(source="worker.memory_mb")
    labels = serializers.JSONField(source="worker.labels")
    cost_per_hour = serializers.FloatField(source="worker.cost_per_hour")
    slots = serializers.IntegerField(source="worker.slots")
    gpus_in_use = serializers.ListField(child=serializers.IntegerField())
    running_jobs = serializers.ListField(child=serializers.IntegerField())
    load = serializers.FloatField()
    last_heartbeat = serializers.DateTimeField(source="worker.last_heartbeat")


class PoolTeamUsageOut(serializers.Serializer):
    team = serializers.CharField()
    gpu_limit = serializers.IntegerField(allow_null=True)
    gpus_in_use = serializers.IntegerField()


class PoolOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    workers = serializers.ListField(child=serializers.CharField())
    gpus = serializers.IntegerField()
    teams = PoolTeamUsageOut(many=True)


def unpaged(serializer_class: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:
    """The ``{"results": [...], "next": null}`` envelope of a list served in one page."""
    return type(
        name,
        (serializers.Serializer,),
        {"results": serializer_class(many=True), "next": serializers.CharField(allow_null=True)},
    )


WorkerListOut = unpaged(WorkerOut, "WorkerListOut")
PoolListOut = unpaged(PoolOut, "PoolListOut")
