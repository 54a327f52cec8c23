"""The prediction log keeps no table of its rows: predictions and ground-truth labels are
Parquet batches on the artifact store (``lifecycle.monitoring.prediction_log``), so the
gateway writes them while the database is down and millions of rows cost no database
space. What the database holds for it is each deployment's sample rate
(``Deployment.log_sample_rate``) and the model's ``"pii"`` policy, both published to the
gateway in the route table, and the lease that lets one upkeep (compaction and retention)
of a log run at a time."""

from __future__ import annotations

from django.db import models


class PredictionLogLease(models.Model):
    """Who may run the upkeep of one prediction log (``name``: its root) now, and until
    when. A run claims the row with one compare-and-swap ``UPDATE`` that matches only a
    free or expired lease (so on SQLite as on PostgreSQL exactly one of two claims
    wins), renews it before each partition it compacts, and frees it when done; a run
    that died holds it only until ``expires_at``."""

    name = models.CharField(max_length=500, unique=True)
    holder = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"lease of {self.name} ({self.holder or 'free'})"
