"""Routes of the web UI (mounted at the site root, after the API's)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import deployment_views, design_views, job_views, login_views, monitoring_views, views

app_name = "frontend"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("login/", login_views.ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="frontend:login"), name="logout"),
    path("models/", views.model_list, name="model-list"),
    path("models/<str:name>/", views.model_detail, name="model-detail"),
    path("models/<str:name>/rollback/", views.model_rollback, name="model-rollback"),
    path("models/<str:name>/monitoring/", monitoring_views.model_monitoring, name="model-monitoring"),
    path("models/<str:name>/monitors/", monitoring_views.monitor_add, name="monitor-add"),
    path("models/<str:name>/monitors/remove/", monitoring_views.monitor_remove, name="monitor-remove"),
    path("alerts/<int:pk>/acknowledge/", monitoring_views.alert_acknowledge, name="alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", monitoring_views.alert_resolve, name="alert-resolve"),
    path("models/<str:name>/design/", design_views.design_edit, name="design-edit"),
    path("models/<str:name>/design/complete/", design_views.design_complete, name="design-complete"),
    path("models/<str:name>/card.md", design_views.design_markdown, name="design-markdown"),
    path(
        "models/<str:name>/versions/<int:number>/card.md",
        design_views.version_card_markdown,
        name="version-card-markdown",
    ),
    path("models/<str:name>/versions/<int:number>/", views.version_detail, name="version-detail"),
    path(
        "models/<str:name>/versions/<int:number>/transitions/",
        views.transition_request,
        name="transition-request",
    ),
    path(
        "models/<str:name>/versions/<int:number>/evaluations/<int:pk>/plots/<str:plot>",
        views.evaluation_plot,
        name="evaluation-plot",
    ),
    path("deployments/<int:pk>/", deployment_views.deployment_detail, name="deployment-detail"),
    path("deployments/<int:pk>/settings/", deployment_views.deployment_settings, name="deployment-settings"),
    path("deployments/<int:pk>/canary/", deployment_views.deployment_canary, name="deployment-canary"),
    path("deployments/<int:pk>/shadow/", deployment_views.deployment_shadow, name="deployment-shadow"),
    path("deployments/<int:pk>/promote-canary/", deployment_views.deployment_promote, name="deployment-promote"),
    path("deployments/<int:pk>/abort-canary/", deployment_views.deployment_abort, name="deployment-abort"),
    path("deployments/<int:pk>/stop/", deployment_views.deployment_stop, name="deployment-stop"),
    path("transitions/<int:pk>/approve/", views.transition_approve, name="transition-approve"),
    path("transitions/<int:pk>/reject/", views.transition_reject, name="transition-reject"),
    path("transitions/<int:pk>/cancel/", views.transition_cancel, name="transition-cancel"),
    path("transitions/<int:pk>/recheck/", views.transition_recheck, name="transition-recheck"),
    path("audit/", views.audit, name="audit"),
    path("jobs/", job_views.job_list, name="job-list"),
    path("jobs/<int:pk>/", job_views.job_detail, name="job-detail"),
    path("jobs/<int:pk>/log", job_views.job_log, name="job-log"),
    path("jobs/<int:pk>/cancel/", job_views.job_cancel, name="job-cancel"),
    path("workers/", job_views.workers, name="workers"),
]
