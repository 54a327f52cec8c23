"""Stored version documents stay current: every service that changes what a version
shows stores its document again in the same transaction.

Each test starts from a stored, current document, makes one kind of write through its
service, and checks the stored document against the rows (``document_assert_current``):
a writer that forgot to store it leaves a key the read no longer accepts, and fails here.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from registry.choices import MetricSource
from registry.models import ModelVersion, VersionDocument
from registry.services import (
    alias_delete,
    alias_point,
    alias_set,
    dataset_digest_refresh,
    metrics_record,
    version_documents_refresh,
)
from registry.services.versions import ArtifactFacts, version_row_write
from tests.registry.factories import (
    artifact_write,
    dataset_row_create,
    document_assert_current,
    version_create,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1/models/fraud-detector"


@pytest.fixture
def version(fraud_model) -> ModelVersion:
    version = version_create(model=fraud_model, metrics={"f1": 0.9}, tags={"framework": "sklearn"})
    version_documents_refresh(versions=[version])
    document_assert_current(version)
    return version


def test_registration_stores_the_new_versions_document(owner, fraud_model, mlflow_store, settings, tmp_path):
    roots = (tmp_path / "allowed").resolve()
    settings.MODELGATE_LOCAL_SOURCE_ROOTS = (roots,)
    source = artifact_write(roots / "model")
    response = owner.client.post(
        f"{BASE}/versions/", {"source": str(source), "tags": {"framework": "sklearn"}}, format="json"
    )
    assert response.status_code == 201, response.content
    version = ModelVersion.objects.get(model=fraud_model, version=response.json()["version"])
    document_assert_current(version)
    assert (
        VersionDocument.objects.get(version=version).body.encode()
        == owner.client.get(f"{BASE}/versions/{version.version}/").content
    )


def test_a_version_completed_by_sync_stores_its_tags_in_the_document(owner, fraud_model, version):
    facts = ArtifactFacts(uri=version.artifact_uri, manifest=version.manifest, digest=version.digest, size=0)
    version_row_write(
        model=fraud_model,
        number=version.version,
        facts=facts,
        source=version.source,
        run_id="",
        description="completed",
        tags={"owner": "risk"},
        parent=None,
        dataset=None,
        actor=owner.user,
        action="version.sync",
    )
    document_assert_current(version)
    assert VersionDocument.objects.get(version=version).body.count('"owner":"risk"') == 1


def test_recording_metrics_stores_the_document(version):
    metrics_record(version=version, metrics={"f1": 0.95, "auc": 0.9}, source=MetricSource.EVALUATION)
    document_assert_current(version)


def test_setting_and_moving_an_alias_stores_both_versions_documents(owner, fraud_model, version, mlflow_store):
    other = version_create(model=fraud_model)
    version_documents_refresh(versions=[other])
    alias_set(actor=owner.user, model=fraud_model, name="candidate", version=version)
    document_assert_current(version)
    alias_set(actor=owner.user, model=fraud_model, name="candidate", version=other)
    document_assert_current(version)
    document_assert_current(other)


def test_deleting_an_alias_stores_the_document(owner, fraud_model, version, mlflow_store):
    alias_set(actor=owner.user, model=fraud_model, name="candidate", version=version)
    alias_delete(actor=owner.user, model=fraud_model, name="candidate")
    document_assert_current(version)


def test_a_stage_alias_moved_with_a_stage_stores_both_documents(fraud_model, version):
    other = version_create(model=fraud_model)
    version_documents_refresh(versions=[other])
    with transaction.atomic():
        alias_point(model=fraud_model, name="challenger", version=version)
    document_assert_current(version)
    with transaction.atomic():
        alias_point(model=fraud_model, name="challenger", version=other)
    document_assert_current(version)
    document_assert_current(other)
    with transaction.atomic():
        alias_point(model=fraud_model, name="challenger", version=None)
    document_assert_current(other)


def test_a_new_dataset_digest_stores_the_documents_of_its_versions(fraud_model, version):
    dataset = dataset_row_create(team=fraud_model.team, name="holdout")
    ModelVersion.objects.filter(pk=version.pk).update(dataset=dataset)
    version_documents_refresh(versions=[version])
    dataset_digest_refresh(dataset=dataset, digest="f" * 64)
    document_assert_current(version)


def test_a_current_document_is_served_without_building_the_version(owner, version):
    with CaptureQueriesContext(connection) as captured:
        listed = owner.client.get(f"{BASE}/versions/")
        one = owner.client.get(f"{BASE}/versions/{version.version}/")
    assert listed.status_code == one.status_code == 200
    # Tags are read only as revision sums: nothing loads them to build a version.
    assert not any("registry_versiontag" in q["sql"] and "SUM" not in q["sql"] for q in captured.captured_queries)
    assert one.content == VersionDocument.objects.get(version=version).body.encode()


def test_a_document_left_behind_by_a_raw_update_is_not_served(owner, version):
    ModelVersion.objects.filter(pk=version.pk).update(description="changed around the services")
    shown = owner.client.get(f"{BASE}/versions/{version.version}/").json()
    assert shown["description"] == "changed around the services"
    assert "changed around" not in VersionDocument.objects.get(version=version).body


def test_a_document_rendered_under_other_settings_is_not_served(owner, version, settings):
    settings.MLFLOW_UI_URL = "http://mlflow.elsewhere:5000"
    shown = owner.client.get(f"{BASE}/versions/{version.version}/").json()
    assert shown["mlflow_url"].startswith("http://mlflow.elsewhere:5000/")


def test_refreshing_unknown_or_no_versions_is_harmless(version):
    version_documents_refresh(versions=[])
    version_documents_refresh(versions=[None])
    version_documents_refresh(versions=[version.pk, version])
    document_assert_current(version)


def test_the_rebuild_command_stores_every_versions_document(fraud_model):
    versions = [version_create(model=fraud_model, tags={"n": str(n)}) for n in range(3)]
    out = io.StringIO()
    call_command("version_documents_rebuild", "fraud-detector", stdout=out)
    assert "3 version documents stored" in out.getvalue()
    for version in versions:
        document_assert_current(version)
