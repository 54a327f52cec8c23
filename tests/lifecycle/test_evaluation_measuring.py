"""Whether an evaluation measures latency and peak memory: the request says, else the
installation (``MODELGATE_EVALUATION_MEASURE``); a model whose policy has a latency or
memory gate is measured either way, and the job says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.evaluation.services import evaluation_submit
from registry.choices import Stage
from registry.services import model_update
from tests.conftest import Actor
from tests.registry.factories import dataset_row_create, version_create
from tests.test_deploy import start_django

LATENCY_GATE = {"type": "max_latency_ms", "percentile": 95, "value": 5}
MEMORY_GATE = {"type": "max_memory_mb", "value": 512}


@pytest.fixture
def evaluable(fraud_model):
    fraud_model.dataset = dataset_row_create(team=fraud_model.team, name="holdout")
    fraud_model.save(update_fields=["dataset"])
    return version_create(model=fraud_model, stage=Stage.EVALUATION)


def _gated(version, approver: Actor, *rules: dict) -> None:
    model_update(actor=approver.user, model=version.model, changes={"policy": {"rules": list(rules)}}, reason="budget")
    version.model.refresh_from_db()


def _params(job) -> dict:
    return job.spec["params"]


@pytest.mark.django_db
def test_an_evaluation_measures_by_default(evaluable, owner: Actor):
    params = _params(evaluation_submit(actor=owner.user, version=evaluable))

    assert params["measure"] is True and "measure_reason" not in params


@pytest.mark.django_db
def test_the_installation_setting_turns_measuring_off_where_the_request_does_not_say(evaluable, owner: Actor, settings):
    settings.MODELGATE_EVALUATION_MEASURE = False

    assert _params(evaluation_submit(actor=owner.user, version=evaluable))["measure"] is False
    assert _params(evaluation_submit(actor=owner.user, version=evaluable, measure=True))["measure"] is True


@pytest.mark.django_db
def test_the_request_turns_measuring_off_for_one_job(evaluable, owner: Actor):
    assert _params(evaluation_submit(actor=owner.user, version=evaluable, measure=False))["measure"] is False


@pytest.mark.django_db
def test_a_latency_gate_is_measured_although_the_installation_turned_measuring_off(
    evaluable, owner: Actor, approver: Actor, settings
):
    settings.MODELGATE_EVALUATION_MEASURE = False
    _gated(evaluable, approver, LATENCY_GATE)

    params = _params(evaluation_submit(actor=owner.user, version=evaluable))

    assert params["measure"] is True
    assert params["measure_reason"] == (
        "measured although MODELGATE_EVALUATION_MEASURE turns measuring off: "
        "the policy's max_latency_ms gate reads the figures"
    )


@pytest.mark.django_db
def test_a_memory_gate_is_measured_with_memory_although_the_request_said_not_to(
    evaluable, owner: Actor, approver: Actor
):
    _gated(evaluable, approver, LATENCY_GATE, MEMORY_GATE)

    params = _params(
        evaluation_submit(actor=owner.user, version=evaluable, measure=False, extra={"measure_memory": False})
    )

    assert params["measure"] is True and params["measure_memory"] is True
    assert params["measure_reason"] == (
        "measured although the request turns measuring off: "
        "the policy's max_latency_ms and max_memory_mb gates read the figures"
    )


@pytest.mark.django_db
def test_the_api_takes_measure_per_request_and_refuses_a_value_that_is_not_a_boolean(evaluable, owner: Actor):
    url = f"/api/v1/models/{evaluable.model.name}/versions/{evaluable.version}/evaluations/"

    off = owner.client.post(url, {"measure": False}, format="json")
    default = owner.client.post(url, {}, format="json")
    bad = owner.client.post(url, {"measure": "sometimes"}, format="json")

    assert off.status_code == 201 and off.json()["spec"]["params"]["measure"] is False
    assert default.status_code == 201 and default.json()["spec"]["params"]["measure"] is True
    assert bad.status_code == 400 and "measure" in bad.json()["error"]["details"]


@pytest.mark.parametrize(("value", "parsed"), [("false", "False"), ("0", "False"), ("on", "True")])
def test_the_setting_is_parsed_as_a_strict_boolean(tmp_path: Path, value: str, parsed: str):
    show = "; from django.conf import settings; print(settings.MODELGATE_EVALUATION_MEASURE)"
    result = start_django(tmp_path, show, MODELGATE_EVALUATION_MEASURE=value)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == parsed


def test_a_setting_that_is_not_a_boolean_stops_the_start(tmp_path: Path):
    result = start_django(tmp_path, MODELGATE_EVALUATION_MEASURE="sometimes")

    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    assert "MODELGATE_EVALUATION_MEASURE='sometimes' is not a boolean" in result.stderr


@pytest.mark.django_db
def test_an_evaluation_that_could_not_take_a_gates_figure_does_not_start_the_next_by_itself(
    evaluable, owner: Actor, approver: Actor
):
    from lifecycle.evaluation.services import evaluation_outcome_apply
    from lifecycle.governance.models import Transition
    from lifecycle.governance.services.transitions import transition_recheck, transition_request
    from lifecycle.jobs.choices import JobKind, JobState
    from lifecycle.jobs.models import Job

    _gated(evaluable, approver, MEMORY_GATE)
    requested = transition_request(version=evaluable, to="staging", reason="ready", actor=owner.user)
    (job,) = Job.objects.filter(version=evaluable, kind=JobKind.EVALUATE)
    assert requested.status == "blocked" and f"evaluation job {job.pk} started" in requested.status_detail

    # The job ends without the figure (a model only MLflow's pyfunc loads is not measured).
    candidate = {"metrics": {"f1": 0.9}, "role": "candidate", "figures": {"skipped": "not scikit-learn"}}
    job.state, job.result = (
        JobState.SUCCEEDED,
        {
            "dataset_digest": "0" * 64,
            "primary_metric": "f1",
            "evaluations": {str(evaluable.version): candidate},
            "deltas": {},
        },
    )
    job.save(update_fields=["state", "result"])
    evaluation_outcome_apply(job)

    rechecked = Transition.objects.get(pk=requested.pk)
    assert rechecked.status == "blocked" and "no peak memory measured" in rechecked.status_detail
    assert "recheck it once the version has what the gates need" in rechecked.status_detail
    assert Job.objects.filter(version=evaluable, kind=JobKind.EVALUATE).count() == 1

    # A person's recheck asks for an evaluation again.
    again = transition_recheck(transition=rechecked, actor=owner.user)
    assert "evaluation job" in again.status_detail
    assert Job.objects.filter(version=evaluable, kind=JobKind.EVALUATE).count() == 2
