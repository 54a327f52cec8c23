from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    """What happens to models: transitions, gates, approvals, jobs, audit."""

    name = "lifecycle"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lifecycle import policies

        policies.install()
