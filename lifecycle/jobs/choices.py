"""Enumerations of jobs and workers.

The pure cores keep plain copies of these names (``spec.JOB_KINDS``, the scheduler's
``WorkerState``) so they import without Django; a test checks that they agree.
"""

from __future__ import annotations

from django.db import models


class JobKind(models.TextChoices):
    TRAIN = "train", "Train"
    EVALUATE = "evaluate", "Evaluate"
    COMPRESS = "compress", "Compress"
    CONVERT = "convert", "Convert"
    DEPLOY = "deploy", "Deploy"
    BATCH_INFER = "batch_infer", "Batch inference"
    RETRAIN = "retrain", "Retrain"
    DERIVE = "derive", "Derive"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


JOB_FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
JOB_ACTIVE_STATES = frozenset({JobState.SCHEDULED, JobState.RUNNING})


class WorkerState(models.TextChoices):
    ONLINE = "online", "Online"
    DRAINING = "draining", "Draining"
    OFFLINE = "offline", "Offline"
