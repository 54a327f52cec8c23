"""Jobs, the workers that run them, resource pools and team quotas."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from lifecycle.jobs.choices import JobKind, JobState, WorkerState
from registry.models import ModelVersion, RegisteredModel, Team


class ResourcePool(models.Model):
    """A named group of workers; teams get GPU quotas per pool."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=256, blank=True)

    def __str__(self) -> str:
        return self.name


class PoolQuota(models.Model):
    pool = models.ForeignKey(ResourcePool, on_delete=models.CASCADE, related_name="quotas")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="pool_quotas")
    gpu_limit = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pool", "team"], name="one_quota_per_pool_team")]

    def __str__(self) -> str:
        return f"{self.team} in {self.pool}: {self.gpu_limit} GPUs"


class Worker(models.Model):
    """A Celery worker on a training host, with the inventory it reported."""

    name = models.CharField(max_length=128, unique=True)
    hostname = models.CharField(max_length=255)
    address = models.CharField(max_length=255, blank=True)
    pool = models.ForeignKey(ResourcePool, on_delete=models.PROTECT, related_name="workers")
    queue = models.CharField(max_length=160)
    gpus = models.JSONField(default=list)
    gpu_type = models.CharField(max_length=32, blank=True)
    inventory_source = models.CharField(max_length=16, blank=True)
    cpus = models.PositiveIntegerField(default=1)
    memory_mb = models.PositiveIntegerField(default=0)
    labels = models.JSONField(default=dict)
    cost_per_hour = models.FloatField(default=0.0)
    slots = models.PositiveIntegerField(default=4)
    state = models.CharField(max_length=16, choices=WorkerState.choices, default=WorkerState.ONLINE)
    last_heartbeat = models.DateTimeField()
    started_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["state", "pool"], name="worker_state_pool")]

    def __str__(self) -> str:
        return self.name


class Job(models.Model):
    """Something that runs in the background on a worker; the API and UI read this row."""

    kind = models.CharField(max_length=16, choices=JobKind.choices)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="jobs")
    model = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs")
    spec = models.JSONField()
    priority = models.IntegerField(default=0)
    pool = models.ForeignKey(ResourcePool, on_delete=models.PROTECT, related_name="jobs")
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    state_detail = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    # [{"worker": name, "gpus": [indices], "rank": n}], rank 0 first (the gang's master).
    assignment = models.JSONField(default=list)
    strategy = models.CharField(max_length=32, blank=True)
    progress = models.FloatField(default=0.0)
    result = models.JSONField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    cost_estimate = models.FloatField(null=True, blank=True)
    cost_actual = models.FloatField(null=True, blank=True)
    log_size = models.PositiveBigIntegerField(default=0)
    # A sweep's children point at the sweep; the sweep itself never runs a process.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    # When what the job's result means (a new version, evaluation results) was applied.
    outcome_applied_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "pool", "priority"], name="job_queue"),
            models.Index(fields=["state", "lease_expires_at"], name="job_lease"),
            models.Index(fields=["team", "state"], name="job_team_state"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=JobState.values), name="job_state_valid"),
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="job_progress_fraction"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.kind}, {self.state})"


class JobLogChunk(models.Model):
    """A piece of a job's output, in order; the API tails the concatenation by offset."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_chunks")
    attempt = models.PositiveIntegerField()
    offset = models.PositiveBigIntegerField()
    text = models.TextField()

    class Meta:
        ordering = ["job", "offset"]
        constraints = [models.UniqueConstraint(fields=["job", "offset"], name="job_log_offset_unique")]
