"""Every write of the registry: one function per use case, the actor passed explicitly.

One module per entity; this package re-exports the public names for the other apps
(``from registry.services import model_create``). Code inside ``registry`` imports
from the module itself, and no module here imports this one.

- ``validation``: names, tags, tasks and metric names as the writes accept them
- ``changes``: tag sets replaced, changes announced to the lifecycle app
- ``teams``: teams and memberships
- ``tokens``: API tokens
- ``datasets``: datasets
- ``models``: registered models
- ``versions``: model versions, their artifact facts and metric values
- ``sync``: versions registered straight into MLflow, brought in
- ``aliases``: aliases, here and in MLflow
"""

from registry.services.aliases import alias_delete, alias_mirror, alias_point, alias_set
from registry.services.datasets import dataset_create, dataset_digest_refresh
from registry.services.models import model_create, model_policy_extend, model_snapshot, model_update
from registry.services.sync import SyncReport, mlflow_sync
from registry.services.teams import membership_set, team_ensure
from registry.services.tokens import api_token_authenticate, api_token_issue, user_with_token
from registry.services.validation import name_validate, tags_validate
from registry.services.versions import (
    ArtifactFacts,
    artifact_facts,
    metrics_record,
    model_version_register,
    version_snapshot,
)
from registry.version_documents import version_documents_refresh

__all__ = [
    "ArtifactFacts",
    "SyncReport",
    "alias_delete",
    "alias_mirror",
    "alias_point",
    "alias_set",
    "api_token_authenticate",
    "api_token_issue",
    "artifact_facts",
    "dataset_create",
    "dataset_digest_refresh",
    "membership_set",
    "metrics_record",
    "mlflow_sync",
    "model_create",
    "model_policy_extend",
    "model_snapshot",
    "model_update",
    "model_version_register",
    "name_validate",
    "tags_validate",
    "team_ensure",
    "user_with_token",
    "version_documents_refresh",
    "version_snapshot",
]
