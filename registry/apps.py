from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate

from registry import quickack


def _revision_triggers_ensure(sender: AppConfig, using: str, **kwargs: Any) -> None:
    """Re-create the revision triggers after ``migrate``: SQLite drops a table's triggers
    when a migration rebuilds the table. Nothing to do before the columns exist."""
    from registry.revisions import REVISIONED_TABLES, revision_triggers_install

    connection = connections[using]
    with connection.cursor() as cursor:
        if not set(REVISIONED_TABLES) <= set(connection.introspection.table_names(cursor)):
            return
        columns = {c.name for c in connection.introspection.get_table_description(cursor, "registry_modelversion")}
    if "revision" in columns:
        revision_triggers_install(connection)


class RegistryConfig(AppConfig):
    """What a model is: registered models, versions, aliases, datasets, tokens."""

    name = "registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_revision_triggers_ensure, sender=self, dispatch_uid="registry_revision_triggers")
        # Every process that runs Django (web, Celery workers, management commands) talks
        # to MLflow through its client: without this, each call on a kept-alive connection
        # to ``mlflow server`` can wait 40 ms for a delayed TCP acknowledgement.
        quickack.install_for_mlflow()
