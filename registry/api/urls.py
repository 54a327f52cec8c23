"""Routes of the registry's part of API v1 (mounted under ``/api/v1/``)."""

from django.urls import path

from registry.api import views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
    path("config", views.ConfigView.as_view(), name="config"),
    path("models/", views.ModelListView.as_view(), name="model-list"),
    path("models/<str:name>/", views.ModelDetailView.as_view(), name="model-detail"),
    path("models/<str:name>/versions/", views.VersionListView.as_view(), name="version-list"),
    path("models/<str:name>/versions/<int:version>/", views.VersionDetailView.as_view(), name="version-detail"),
    path(
        "models/<str:name>/versions/<int:version>/download/",
        views.VersionDownloadView.as_view(),
        name="version-download",
    ),
    path("models/<str:name>/versions/<int:version>/verify/", views.VersionVerifyView.as_view(), name="version-verify"),
    path("models/<str:name>/aliases/<str:alias>/", views.AliasView.as_view(), name="alias-detail"),
    path("datasets/", views.DatasetListView.as_view(), name="dataset-list"),
    path("datasets/<int:pk>/", views.DatasetDetailView.as_view(), name="dataset-detail"),
]
