"""The prediction log's writes through the API: batches of prediction records from models
served outside ModelGate, and ground-truth labels. The gateway's own calls are written by
``serving.prediction_logging`` with the same store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from lifecycle.deployments.choices import DeploymentState
from lifecycle.deployments.models import Deployment
from lifecycle.deployments.services import route_table_publish
from lifecycle.monitoring.prediction_log import LoggedCall
from lifecycle.monitoring.store import pii_columns, prediction_store
from registry.choices import Role
from registry.errors import DependencyUnavailable, InvalidInput
from registry.models import RegisteredModel
from registry.permissions import require_role


def _written(write: Any, what: str) -> int:
    try:
        return int(write())
    except OSError as exc:
        raise DependencyUnavailable(
            "artifacts", f"the prediction log's store cannot be written now ({type(exc).__name__}); retry later"
        ) from exc


def _deployment_ids(
    model: RegisteredModel, records: Sequence[Mapping[str, Any]], batch: int | str | None
) -> list[int | None]:
    """The deployment id of each record: its own ``deployment`` (id or name) or
    ``deployment_id``, else the batch's; ``InvalidInput`` naming the field of a deployment
    the model does not have, or of a record whose two fields disagree."""
    deployments = list(Deployment.objects.filter(model=model).values_list("pk", "name"))
    by_id = {pk: pk for pk, _ in deployments}
    by_name = {name: pk for pk, name in deployments}

    def resolve(ref: int | str, field: str) -> int:
        found = by_id.get(ref) if isinstance(ref, int) else by_name.get(ref)
        if found is None:
            raise InvalidInput(
                f"{field}: model {model.name!r} has no deployment {ref!r}",
                details={field: f"no deployment {ref!r} of this model"},
            )
        return found

    default = resolve(batch, "deployment") if batch is not None else None
    ids: list[int | None] = []
    for index, record in enumerate(records):
        chosen = default
        named = record.get("deployment")
        numbered = record.get("deployment_id")
        if named is not None:
            chosen = resolve(named, f"records[{index}].deployment")
        if numbered is not None:
            numbered = resolve(numbered, f"records[{index}].deployment_id")
            if named is not None and numbered != chosen:
                raise InvalidInput(
                    f"records[{index}]: deployment and deployment_id name different deployments",
                    details={f"records[{index}].deployment_id": "not the deployment named by 'deployment'"},
                )
            chosen = numbered
        ids.append(chosen)
    return ids


def predictions_ingest(
    *,
    actor: AbstractBaseUser,
    model: RegisteredModel,
    records: Sequence[Mapping[str, Any]],
    deployment: int | str | None = None,
) -> dict[str, int]:
    """Write prediction records of a model served elsewhere: each ``{request_id, version,
    inputs, outputs, ts?, latency_ms?, status?, deployment?, deployment_id?}`` (already
    validated), with the model's PII columns masked. A record's deployment (its own, else
    the batch's ``deployment``: an id or a name) must be one of the model's, so that the
    deployment's monitoring windows include it. Data, not a state change: no audit record
    per batch."""
    require_role(actor, model.team, Role.DEVELOPER, action="logging predictions")
    deployment_ids = _deployment_ids(model, records, deployment)
    pii = pii_columns(model)
    now = timezone.now()
    calls = [
        LoggedCall(
            request_id=str(record["request_id"]),
            model=model.name,
            version=int(record["version"]),
            ts=record.get("ts") or now,
            latency_ms=float(record.get("latency_ms") or 0.0),
            status=int(record.get("status") or 200),
            input=record.get("inputs"),
            output=record.get("outputs"),
            deployment_id=deployment_id,
            mode=None,
            source="api",
            pii=pii,
        )
        for record, deployment_id in zip(records, deployment_ids, strict=True)
    ]
    rows = _written(lambda: prediction_store().write_calls(calls), "predictions")
    return {"records": len(calls), "rows": rows}


def feedback_ingest(
    *, actor: AbstractBaseUser, model: RegisteredModel, labels: Sequence[Mapping[str, Any]], at: datetime | None = None
) -> dict[str, int]:
    """Write ground-truth labels ``{request_id, label, row?}``; a label may come long after
    its prediction, and a later label for the same row replaces an earlier one."""
    require_role(actor, model.team, Role.DEVELOPER, action="sending ground truth")
    received = at or timezone.now()
    written = _written(
        lambda: prediction_store().write_labels(model=model.name, labels=labels, received_at=received), "labels"
    )
    return {"labels": written}


def on_policy_changed(sender: Any, *, action: str, target: Any, before: Any, after: Any, **_: Any) -> None:
    """A model's ``pii`` columns reach the gateway in the route table: publish a new one
    when they change while the model is served."""
    if action != "model.policy_change" or not isinstance(target, RegisteredModel):
        return
    old = ((before or {}).get("policy") or {}).get("pii") or []
    new = ((after or {}).get("policy") or {}).get("pii") or []
    if old == new:
        return
    if Deployment.objects.filter(model=target).exclude(state=DeploymentState.STOPPED).exists():
        route_table_publish()
