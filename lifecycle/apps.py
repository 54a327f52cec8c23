from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    """What happens to models: transitions, gates, approvals, audit, events."""

    name = "lifecycle"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lifecycle import policies, receivers
        from registry.signals import registry_changed

        policies.install()
        registry_changed.connect(receivers.on_registry_changed, dispatch_uid="lifecycle.audit")
