from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """The server-rendered web UI: approvals inbox, models, versions and the audit trail."""

    name = "frontend"
    default_auto_field = "django.db.models.BigAutoField"
