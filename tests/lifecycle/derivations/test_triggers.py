"""Update triggers: a retraining schedule that names a derivation method, and the
``derivation_wanted`` signal a monitoring alert sends, both derive from production."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from lifecycle.derivations.models import Derivation
from lifecycle.governance.signals import derivation_wanted
from lifecycle.jobs.models import Job
from lifecycle.training.models import RetrainSchedule
from lifecycle.training.services import retrain_schedule_set, retrains_due
from registry.errors import InvalidInput
from registry.models import RegisteredModel
from registry.services import dataset_create, model_update, team_ensure
from tests.registry.factories import version_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(fraud_model, owner):
    dataset = dataset_create(
        actor=owner.user, team=team_ensure(name="fraud"), name="tumours", uri="builtin:breast_cancer", target="target"
    )
    model_update(actor=owner.user, model=fraud_model, changes={"dataset": dataset.name})
    return version_create(model=fraud_model, stage="production")


def test_a_due_schedule_naming_a_method_derives_from_production_instead_of_retraining(production, approver):
    model = production.model
    retrain_schedule_set(
        actor=approver.user, model=model, cron="* * * * *", method="incremental", method_params={"epochs": 2}
    )
    RetrainSchedule.objects.filter(model=model).update(last_run_at=timezone.now() - timedelta(minutes=5))

    started = retrains_due()

    (job,) = Job.objects.filter(pk__in=started)
    assert job.kind == "derive" and job.spec["params"]["request_stage"] == "production"
    derivation = Derivation.objects.get(job=job)
    assert derivation.parent == production and derivation.method == "incremental"
    assert derivation.params["epochs"] == 2 and derivation.reason.startswith("scheduled (* * * * *)")
    assert RetrainSchedule.objects.get(model=model).last_job_id == job.pk


def test_a_schedule_with_an_unknown_method_is_refused_naming_the_field(production, approver):
    with pytest.raises(InvalidInput) as caught:
        retrain_schedule_set(actor=approver.user, model=production.model, cron="0 3 * * *", method="compress")
    assert "method" in caught.value.details


def test_an_alert_asks_for_an_update_through_the_signal(production, owner):
    answers = derivation_wanted.send(
        sender=RegisteredModel,
        model=production.model,
        method="prune",
        params={"sparsity": 0.3},
        actor=owner.user,
        reason="alert 7: drift on amount",
    )

    jobs = [job for _, job in answers if job is not None]
    assert len(jobs) == 1
    derivation = Derivation.objects.get(job=jobs[0])
    assert derivation.reason == "alert 7: drift on amount" and derivation.parent == production


def test_an_update_that_cannot_start_answers_none_and_starts_nothing(fraud_model, owner):
    answers = derivation_wanted.send(
        sender=RegisteredModel, model=fraud_model, method="onnx", params={}, actor=owner.user, reason="alert"
    )

    assert [job for _, job in answers] == [None]
    assert not Job.objects.exists()


def test_a_schedule_asks_for_an_incremental_update_on_the_last_weeks_labelled_predictions(production, approver):
    model = production.model
    retrain_schedule_set(
        actor=approver.user,
        model=model,
        cron="* * * * *",
        method="incremental",
        method_params={"data": {"source": "predictions", "days": 7}},
    )
    RetrainSchedule.objects.filter(model=model).update(last_run_at=timezone.now() - timedelta(minutes=5))
    before = timezone.now()

    (job,) = Job.objects.filter(pk__in=retrains_due())

    window = job.spec["params"]["new_data"]
    assert (window["source"], window["model"], window["min_rows"]) == ("predictions", model.name, 20)
    start, end = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
    assert end >= before and end - start == timedelta(days=7)
    assert Derivation.objects.get(job=job).params["data"] == {"source": "predictions", "days": 7, "min_rows": 20}


def test_a_schedule_with_a_bad_data_source_starts_nothing(production, approver):
    model = production.model
    retrain_schedule_set(
        actor=approver.user,
        model=model,
        cron="* * * * *",
        method="incremental",
        method_params={"data": {"source": "predictions", "days": 9999}},
    )
    RetrainSchedule.objects.filter(model=model).update(last_run_at=timezone.now() - timedelta(minutes=5))

    assert retrains_due() == []
    assert not Job.objects.exists()
