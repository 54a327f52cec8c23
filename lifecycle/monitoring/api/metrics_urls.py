"""The route of Prometheus' ``/metrics``, included at the site's root by ``config/urls.py``."""

from django.urls import path

from lifecycle.monitoring.api.metrics import metrics_view

urlpatterns = [path("metrics", metrics_view, name="metrics")]
