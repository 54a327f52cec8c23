"""Top-level routes: API v1, its schema and docs, the admin, Prometheus' ``/metrics``."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from registry.api import errors

urlpatterns = [
    path("api/v1/", include("registry.api.urls")),
    path("api/v1/", include("lifecycle.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("", include("lifecycle.monitoring.api.metrics_urls")),
    path("", include("frontend.urls")),
]

handler400 = errors.json_bad_request
handler403 = errors.json_forbidden
handler404 = errors.json_not_found
handler500 = errors.json_server_error
