"""Reference profiles: built after a dataset is registered (by the task its registration
enqueues), one per content digest, and refused when the file changed since."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from celery import current_app

from lifecycle.monitoring.models import ReferenceProfile
from lifecycle.monitoring.services.references import reference_profile_build
from registry.errors import Conflict
from registry.services import dataset_create, team_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Tasks run in this process when enqueued, as ``CELERY_TASK_ALWAYS_EAGER`` makes them."""
    before = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = before


@pytest.fixture
def csv_file(settings, tmp_path: Path) -> Path:
    settings.MODELGATE_LOCAL_SOURCE_ROOTS = (tmp_path.resolve(),)
    rng = np.random.default_rng(0)
    path = tmp_path / "payments.csv"
    pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, 400),
            "country": rng.choice(["fr", "de", "it"], 400),
            "fraud": rng.integers(0, 2, 400),
        }
    ).to_csv(path, index=False)
    return path


def test_registering_a_dataset_builds_its_reference_profile_after_the_commit(
    owner, csv_file, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        dataset = dataset_create(
            actor=owner.user, team=team_ensure(name="fraud"), name="payments", uri=str(csv_file), target="fraud"
        )
    stored = ReferenceProfile.objects.get(digest=dataset.digest)
    assert stored.rows == 400 and stored.target == "fraud"
    assert set(stored.profile["features"]) == {"amount", "country"}
    assert stored.profile["features"]["amount"]["kind"] == "numeric"
    assert stored.profile["features"]["country"]["kind"] == "categorical"
    assert stored.profile["prediction"]["kind"] == "categorical"
    # Built once per digest: asking again reads the stored one.
    assert reference_profile_build(dataset=dataset).pk == stored.pk


def test_a_dataset_file_changed_since_registration_is_not_a_reference(owner, csv_file):
    dataset = dataset_create(
        actor=owner.user, team=team_ensure(name="fraud"), name="payments", uri=str(csv_file), target="fraud"
    )
    csv_file.write_text(csv_file.read_text().replace("fr", "es"))
    with pytest.raises(Conflict) as caught:
        reference_profile_build(dataset=dataset)
    assert caught.value.code == "dataset_changed"
    assert not ReferenceProfile.objects.exists()
