"""Evaluation results of versions."""

from __future__ import annotations

from django.db import models

from registry.models import ModelVersion


class Evaluation(models.Model):
    """A version scored on a dataset (by digest) by an evaluation job; with the champion's
    paired deltas when it was evaluated beside one."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    job = models.ForeignKey("lifecycle.Job", null=True, on_delete=models.SET_NULL, related_name="evaluations")
    role = models.CharField(max_length=16, default="candidate")
    dataset_digest = models.CharField(max_length=64)
    primary_metric = models.CharField(max_length=250, blank=True)
    metrics = models.JSONField(default=dict)
    # ci, cv, importance, slices, calibration, roc, confusion matrix.
    details = models.JSONField(default=dict)
    compared_with = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    deltas = models.JSONField(default=dict)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    report_uri = models.CharField(max_length=1024, blank=True)
    plots = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["version", "dataset_digest"], name="evaluation_version_digest")]

    def __str__(self) -> str:
        return f"{self.version} on {self.dataset_digest[:12]}"
