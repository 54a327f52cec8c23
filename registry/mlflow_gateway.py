"""The only place that talks to MLflow.

Wraps ``MlflowClient`` with the calls the registry needs and translates its failures:
an unknown run is ``NotFound``/``InvalidInput``, an unreachable tracking server is
``DependencyUnavailable("mlflow")`` (503 at the API), never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings
from mlflow.entities import LoggedModel
from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from registry.errors import DependencyUnavailable, InvalidInput, NotFound

logger = logging.getLogger(__name__)

# Tag on an MLflow model version naming the ModelGate request that created it, so a
# retry after a lost response adopts that version instead of creating a second one.
REQUEST_TAG = "modelgate.request"
IMPORT_EXPERIMENT = "modelgate-imports"


def client() -> MlflowClient:
    uri = settings.MLFLOW_TRACKING_URI
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


_UNREACHABLE_HINTS = ("API request to", "Max retries exceeded", "Connection refused", "timed out", "OperationalError")


@contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Translate MLflow client failures while doing ``what``."""
    try:
        yield
    except MlflowException as exc:
        code = exc.error_code or ""
        message = exc.message if hasattr(exc, "message") else str(exc)
        if code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
            raise NotFound(f"{what}: {message}") from exc
        if code in {"INVALID_PARAMETER_VALUE", "BAD_REQUEST"} and not any(h in message for h in _UNREACHABLE_HINTS):
            raise InvalidInput(f"{what}: {message}") from exc
        if code == "RESOURCE_ALREADY_EXISTS":
            raise
        raise DependencyUnavailable("mlflow", f"{what}: MLflow failed: {message[:500]}") from exc
    except requests.RequestException as exc:
        raise DependencyUnavailable("mlflow", f"{what}: MLflow unreachable: {exc}") from exc
    except OSError as exc:
        raise DependencyUnavailable("mlflow", f"{what}: MLflow unreachable: {exc}") from exc


@dataclass(frozen=True)
class RunModel:
    """What a run logged as a model: where to register it from and what it measured."""

    run_id: str
    source: str
    model_id: str | None
    metrics: dict[str, float]
    experiment_id: str


def run_model(run_id: str, *, artifact_path: str | None = None) -> RunModel:
    """Find the model that a run logged (MLflow 3 logged models, or an ``MLmodel``
    directory among the run's artifacts for older clients)."""
    mlflow = client()
    with mlflow_errors(f"run {run_id!r}"):
        try:
            run = mlflow.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
                raise InvalidInput(
                    f"MLflow has no run {run_id!r}", details={"run_id": f"no MLflow run {run_id!r}"}
                ) from exc
            raise
        metrics = dict(run.data.metrics)
        experiment_id = run.info.experiment_id
        outputs = run.outputs.model_outputs if run.outputs else []
        steps = {o.model_id: o.step for o in outputs}
        # The models the run logged are its outputs (one lookup each by id); a search
        # of the experiment is only needed for models that name the run as their
        # source without being among its outputs, or where one search costs less than
        # a lookup per output.
        logged = []
        if len(outputs) <= _OUTPUT_LOOKUPS_MAX:
            logged = _logged_models_of_run(mlflow, run_id, [o.model_id for o in outputs], artifact_path)
        if not logged:
            logged = _logged_models_of_run_searched(mlflow, run_id, experiment_id, artifact_path)
        if logged:
            chosen = max(logged, key=lambda m: (steps.get(m.model_id, 0), m.creation_timestamp))
            return RunModel(run_id, chosen.artifact_location, chosen.model_id, metrics, experiment_id)
        base = run.info.artifact_uri.rstrip("/")
        candidates = [artifact_path] if artifact_path else [a.path for a in mlflow.list_artifacts(run_id) if a.is_dir]
        for path in candidates:
            if any(a.path.endswith("MLmodel") for a in mlflow.list_artifacts(run_id, path)):
                return RunModel(run_id, f"{base}/{path}", None, metrics, experiment_id)
    where = f" at artifact path {artifact_path!r}" if artifact_path else ""
    raise InvalidInput(
        f"run {run_id!r} logged no model{where}",
        details={"run_id": f"run {run_id!r} has no logged model{where}"},
    )


# A run with more model outputs than this (checkpoints logged as models) is searched once.
_OUTPUT_LOOKUPS_MAX = 5


def _logged_by_run(model: LoggedModel, run_id: str, artifact_path: str | None) -> bool:
    return model.source_run_id == run_id and (not artifact_path or model.name == artifact_path)


def _logged_models_of_run(
    mlflow: MlflowClient, run_id: str, model_ids: list[str], artifact_path: str | None
) -> list[LoggedModel]:
    found = []
    for model_id in dict.fromkeys(model_ids):
        try:
            model = mlflow.get_logged_model(model_id)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
                continue  # deleted since the run logged it
            raise
        if _logged_by_run(model, run_id, artifact_path):
            found.append(model)
    return found


def _logged_models_of_run_searched(
    mlflow: MlflowClient, run_id: str, experiment_id: str, artifact_path: str | None
) -> list[LoggedModel]:
    found = []
    page_token = None
    while True:
        page = mlflow.search_logged_models(
            experiment_ids=[experiment_id],
            filter_string=f"source_run_id = '{run_id}'",
            page_token=page_token,
        )
        found.extend(m for m in page if _logged_by_run(m, run_id, artifact_path))
        page_token = page.token
        if not page_token:
            return found


def registered_model_ensure(name: str, *, description: str = "") -> None:
    mlflow = client()
    with mlflow_errors(f"registered model {name!r}"):
        try:
            mlflow.create_registered_model(name, description=description or None)
        except MlflowException as exc:
            if exc.error_code not in {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}:
                raise


def model_version_create(
    *,
    name: str,
    source: str,
    run_id: str | None,
    model_id: str | None,
    request_key: str,
    tags: dict[str, str],
    adopt: bool = True,
) -> MlflowModelVersion:
    """Create the MLflow model version, creating the registered model the first time.

    With ``adopt`` (the caller may be retrying: it sent an ``Idempotency-Key``), a
    version that an earlier try of the same request created is returned instead (its
    response may have been lost); without, no earlier try can exist and MLflow is not
    searched.
    """
    mlflow = client()

    def create() -> MlflowModelVersion:
        return mlflow._create_model_version(
            name=name,
            source=source,
            run_id=run_id,
            tags={**tags, REQUEST_TAG: request_key},
            model_id=model_id,
            await_creation_for=0,
        )

    with mlflow_errors(f"model {name!r}"):
        if adopt:
            existing = mlflow.search_model_versions(
                filter_string=f"name = '{_quote(name)}' and tag.`{REQUEST_TAG}` = '{_quote(request_key)}'"
            )
            if existing:
                return existing[0]
        try:
            return create()
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        # The first version of this model (or MLflow lost the registered model).
        registered_model_ensure(name)
        return create()


def model_version_download_uri(name: str, version: int | str) -> str:
    with mlflow_errors(f"model {name!r} version {version}"):
        return client().get_model_version_download_uri(name, str(version))


def model_versions(name: str) -> list[MlflowModelVersion]:
    """Every MLflow version of a registered model (empty when MLflow does not know it)."""
    mlflow = client()
    versions: list[MlflowModelVersion] = []
    page_token = None
    with mlflow_errors(f"model {name!r}"):
        while True:
            page = mlflow.search_model_versions(
                filter_string=f"name = '{_quote(name)}'", max_results=1000, page_token=page_token
            )
            versions.extend(page)
            page_token = page.token
            if not page_token:
                return versions


def run_metrics(run_id: str) -> dict[str, float]:
    with mlflow_errors(f"run {run_id!r}"):
        return dict(client().get_run(run_id).data.metrics)


def alias_set(name: str, alias: str, version: int) -> None:
    with mlflow_errors(f"alias {name}@{alias}"):
        client().set_registered_model_alias(name, alias, str(version))


def alias_delete(name: str, alias: str) -> None:
    with mlflow_errors(f"alias {name}@{alias}"):
        try:
            client().delete_registered_model_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code not in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
                raise


def source_import(local_dir: Path, *, model_name: str) -> tuple[str, str]:
    """Log a local artifact into a new MLflow run (MLflow refuses local paths as model
    version sources); returns ``(run_id, source URI)`` of the logged copy."""
    mlflow = client()
    with mlflow_errors(f"importing {local_dir}"):
        experiment = mlflow.get_experiment_by_name(IMPORT_EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(IMPORT_EXPERIMENT)
        run = mlflow.create_run(
            experiment_id, tags={"modelgate.model": model_name, "mlflow.runName": f"import-{model_name}"}
        )
        if local_dir.is_file():
            mlflow.log_artifact(run.info.run_id, str(local_dir), "model")
        else:
            mlflow.log_artifacts(run.info.run_id, str(local_dir), "model")
        mlflow.set_terminated(run.info.run_id)
        return run.info.run_id, f"{run.info.artifact_uri.rstrip('/')}/model"


def artifacts_download(uri: str, destination: Path) -> Path:
    """Fetch an artifact MLflow serves (``mlflow-artifacts:``, ``runs:``, ``models:``)."""
    import mlflow.artifacts

    with mlflow_errors(f"downloading {uri}"):
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(destination), tracking_uri=settings.MLFLOW_TRACKING_URI
            )
        )


def health() -> str:
    """``"ok"`` when the tracking server answers, else the reason."""
    uri = settings.MLFLOW_TRACKING_URI
    try:
        if uri.startswith("http"):
            response = requests.get(f"{uri.rstrip('/')}/health", timeout=2)
            return "ok" if response.ok else f"MLflow answered {response.status_code}"
        with mlflow_errors("health check"):
            client().search_experiments(max_results=1)
        return "ok"
    except (requests.RequestException, DependencyUnavailable) as exc:
        return f"unreachable: {exc}"[:300]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# --- backup and restore of the registry ---------------------------------------------------


def registry_export() -> list[dict]:
    """Every registered model of MLflow's registry with its tags, description, aliases
    and versions (number, source, run, tags, description, status), for a backup."""
    mlflow = client()
    exported = []
    page_token = None
    with mlflow_errors("exporting the registry"):
        while True:
            page = mlflow.search_registered_models(max_results=1000, page_token=page_token)
            for registered in page:
                exported.append(
                    {
                        "name": registered.name,
                        "description": registered.description or "",
                        "tags": dict(registered.tags or {}),
                        "aliases": {alias: int(number) for alias, number in (registered.aliases or {}).items()},
                        "versions": [
                            {
                                "version": int(version.version),
                                "source": version.source,
                                "run_id": version.run_id or "",
                                "description": version.description or "",
                                "tags": dict(version.tags or {}),
                                "status": version.status,
                            }
                            for version in sorted(model_versions(registered.name), key=lambda v: int(v.version))
                        ],
                    }
                )
            page_token = page.token
            if not page_token:
                return sorted(exported, key=lambda item: item["name"])


def registry_names(*, limit: int = 1000) -> list[str]:
    """Names of up to ``limit`` registered models (an empty list: an empty registry)."""
    mlflow = client()
    with mlflow_errors("listing registered models"):
        return [registered.name for registered in mlflow.search_registered_models(max_results=limit)]


def registered_model_restore(exported: dict, sources: dict[int, str]) -> None:
    """Recreate one exported registered model in an empty registry with the same version
    numbers; ``sources`` gives the new artifact location of each version (where absent,
    the exported source). A gap in the numbering (a version deleted in MLflow) is kept
    by creating and deleting a stand-in version, since MLflow numbers versions itself."""
    mlflow = client()
    name = exported["name"]
    with mlflow_errors(f"restoring model {name!r}"):
        mlflow.create_registered_model(name, tags=exported["tags"] or None, description=exported["description"] or None)
        by_number = {item["version"]: item for item in exported["versions"]}
        fallback = next(iter(sources.values()), None) or next((v["source"] for v in exported["versions"]), "")
        for number in range(1, max(by_number, default=0) + 1):
            item = by_number.get(number)
            created = mlflow._create_model_version(
                name=name,
                source=sources.get(number) or (item["source"] if item else fallback),
                tags=(item["tags"] or None) if item else None,
                description=(item["description"] or None) if item else None,
                await_creation_for=0,
            )
            if int(created.version) != number:
                raise DependencyUnavailable(
                    "mlflow", f"restoring {name!r}: MLflow numbered version {created.version}, expected {number}"
                )
            if item is None:
                mlflow.delete_model_version(name, str(number))
        for alias, number in exported["aliases"].items():
            mlflow.set_registered_model_alias(name, alias, str(number))


def registered_model_delete(name: str) -> None:
    with mlflow_errors(f"deleting model {name!r}"):
        try:
            client().delete_registered_model(name)
        except MlflowException as exc:
            if exc.error_code not in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
                raise
