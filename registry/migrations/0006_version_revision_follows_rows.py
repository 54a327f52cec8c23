"""A version's revision changes with its tags, metric values and aliases
(``registry/revisions.py``): the triggers that do it. Stored version documents keyed the
old way are rebuilt on read until ``manage.py version_documents_rebuild`` (or their next
write) stores them again."""

from django.db import migrations

from registry.revisions import revision_triggers_install, version_revision_triggers_remove


def _install(apps, schema_editor) -> None:
    revision_triggers_install(schema_editor.connection)


def _remove(apps, schema_editor) -> None:
    version_revision_triggers_remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0005_merge_documents_login_throttle"),
    ]

    operations = [migrations.RunPython(_install, _remove)]
