"""Routes of the lifecycle's part of API v1 (mounted under ``/api/v1/``): each stage's API."""

from django.urls import path

from lifecycle.deployments import api as deployments
from lifecycle.derivations import api as derivations
from lifecycle.design import api as design
from lifecycle.evaluation import api as evaluation
from lifecycle.governance.api import views
from lifecycle.jobs.api import views as jobs
from lifecycle.monitoring.api import alerts as monitoring_alerts
from lifecycle.monitoring.api import predictions as monitoring_predictions
from lifecycle.training import api as training

urlpatterns = [
    path("models/<str:name>/design/", design.DesignView.as_view(), name="model-design"),
    path("models/<str:name>/design/complete/", design.DesignCompleteView.as_view(), name="model-design-complete"),
    path("models/<str:name>/design/revisions/", design.DesignRevisionsView.as_view(), name="model-design-revisions"),
    path("models/<str:name>/design/card.md", design.DesignMarkdownView.as_view(), name="model-design-markdown"),
    path(
        "models/<str:name>/versions/<int:version>/card.md",
        design.VersionCardMarkdownView.as_view(),
        name="version-card-markdown",
    ),
    path(
        "models/<str:name>/versions/<int:version>/transitions/",
        views.TransitionRequestView.as_view(),
        name="transition-request",
    ),
    path("models/<str:name>/rollback/", views.RollbackView.as_view(), name="model-rollback"),
    path("models/<str:name>/history/", views.HistoryView.as_view(), name="model-history"),
    path("transitions/", views.TransitionListView.as_view(), name="transition-list"),
    path("transitions/<int:pk>/", views.TransitionDetailView.as_view(), name="transition-detail"),
    path("transitions/<int:pk>/approve/", views.TransitionApproveView.as_view(), name="transition-approve"),
    path("transitions/<int:pk>/reject/", views.TransitionRejectView.as_view(), name="transition-reject"),
    path("transitions/<int:pk>/recheck/", views.TransitionRecheckView.as_view(), name="transition-recheck"),
    path("transitions/<int:pk>/cancel/", views.TransitionCancelView.as_view(), name="transition-cancel"),
    path("models/<str:name>/train/", training.TrainView.as_view(), name="model-train"),
    path("models/<str:name>/retrain/", training.RetrainView.as_view(), name="model-retrain"),
    path("models/<str:name>/retrain-schedule/", training.RetrainScheduleView.as_view(), name="model-retrain-schedule"),
    path(
        "models/<str:name>/versions/<int:version>/evaluations/",
        evaluation.EvaluateView.as_view(),
        name="version-evaluations",
    ),
    path(
        "models/<str:name>/versions/<int:version>/derive/",
        derivations.DeriveView.as_view(),
        name="version-derive",
    ),
    path(
        "models/<str:name>/versions/<int:version>/lineage/",
        derivations.LineageView.as_view(),
        name="version-lineage",
    ),
    path("models/<str:name>/deployments/", deployments.DeploymentListView.as_view(), name="deployment-list"),
    path("deployments/<int:pk>/", deployments.DeploymentDetailView.as_view(), name="deployment-detail"),
    path("deployments/<int:pk>/canary/", deployments.CanaryView.as_view(), name="deployment-canary"),
    path("deployments/<int:pk>/shadow/", deployments.ShadowView.as_view(), name="deployment-shadow"),
    path("deployments/<int:pk>/promote-canary/", deployments.PromoteCanaryView.as_view(), name="deployment-promote"),
    path("deployments/<int:pk>/abort-canary/", deployments.AbortCanaryView.as_view(), name="deployment-abort"),
    path("deployments/<int:pk>/stop/", deployments.StopView.as_view(), name="deployment-stop"),
    path("deployments/<int:pk>/manifests/", deployments.ManifestsView.as_view(), name="deployment-manifests"),
    path(
        "models/<str:name>/predictions/",
        monitoring_predictions.PredictionBatchView.as_view(),
        name="model-predictions",
    ),
    path("models/<str:name>/feedback/", monitoring_predictions.FeedbackView.as_view(), name="model-feedback"),
    path(
        "models/<str:name>/live-metrics/",
        monitoring_predictions.LiveMetricsView.as_view(),
        name="model-live-metrics",
    ),
    path("models/<str:name>/alerts/", monitoring_alerts.AlertListView.as_view(), name="model-alerts"),
    path("models/<str:name>/drift/", monitoring_alerts.DriftView.as_view(), name="model-drift"),
    path("alerts/<int:pk>/acknowledge/", monitoring_alerts.AlertAcknowledgeView.as_view(), name="alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", monitoring_alerts.AlertResolveView.as_view(), name="alert-resolve"),
    path("jobs/", jobs.JobListView.as_view(), name="job-list"),
    path("jobs/<int:pk>/", jobs.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<int:pk>/cancel/", jobs.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<int:pk>/logs/", jobs.JobLogsView.as_view(), name="job-logs"),
    path("workers/", jobs.WorkerListView.as_view(), name="worker-list"),
    path("pools/", jobs.PoolListView.as_view(), name="pool-list"),
    path("audit/", views.AuditListView.as_view(), name="audit-list"),
    path("audit/verify/", views.AuditVerifyView.as_view(), name="audit-verify"),
    path("webhooks/", views.WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/<int:pk>/", views.WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<int:pk>/deliveries/", views.WebhookDeliveriesView.as_view(), name="webhook-deliveries"),
    path(
        "webhooks/<int:pk>/deliveries/<uuid:delivery_id>/resend/",
        views.DeliveryResendView.as_view(),
        name="webhook-delivery-resend",
    ),
]
