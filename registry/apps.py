from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """What a model is: registered models, versions, aliases, datasets, tokens."""

    name = "registry"
    default_auto_field = "django.db.models.BigAutoField"
