"""Versions served from their kept renderings: never stale, whoever changes the rows.

Every change below is made around the services (a raw ``update()``, a row created
directly, as the admin or a script would), so only the database's revisions can tell
the kept rendering is out of date.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import selectors
from registry.api import documents
from registry.api.serializers import VersionOut
from registry.models import Alias, Dataset, ModelVersion, VersionMetric, VersionTag
from registry.prepared import PreparedQuery
from registry.revisions import REVISIONED_TABLES, revision_triggers_install
from tests.registry.factories import alias_create, dataset_row_create, version_create

pytestmark = pytest.mark.django_db

BASE = "/api/v1/models/fraud-detector"


@pytest.fixture
def version(fraud_model) -> ModelVersion:
    return version_create(model=fraud_model, metrics={"f1": 0.9}, tags={"framework": "sklearn"})


def reads(actor: Any) -> dict[str, Any]:
    """The version as the three reads that serve renderings show it."""
    listed = actor.client.get(f"{BASE}/versions/")
    one = actor.client.get(f"{BASE}/versions/1/")
    assert listed.status_code == one.status_code == 200, (listed.content, one.content)
    shown = {"list": next(v for v in listed.json()["results"] if v["version"] == 1), "detail": one.json()}
    aliased = actor.client.get(f"{BASE}/aliases/latest/")
    if aliased.status_code == 200 and aliased.json()["version"] == 1:
        shown["alias"] = aliased.json()
    return shown


def assert_shows(actor: Any, version: ModelVersion) -> None:
    expected = documents.render_json(VersionOut(selectors.versions_for_output([version.pk])[0]).data)
    for where, shown in reads(actor).items():
        assert documents.render_json(shown) == expected, where


def test_a_version_is_rendered_once_then_served_as_kept(owner, version):
    documents.rendered_versions.clear()
    assert_shows(owner, version)
    with CaptureQueriesContext(connection) as captured:
        owner.client.get(f"{BASE}/versions/1/")
    # The token, the version's revisions: no query builds the version again.
    assert not any("registry_versiontag" in q["sql"] and "SUM" not in q["sql"] for q in captured.captured_queries)
    assert len(documents.rendered_versions) >= 1


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda v: ModelVersion.objects.filter(pk=v.pk).update(description="raw update"), id="version"),
        pytest.param(lambda v: VersionTag.objects.filter(version=v).update(value="xgboost"), id="tag-value"),
        pytest.param(lambda v: VersionTag.objects.create(version=v, key="owner", value="risk"), id="tag-added"),
        pytest.param(lambda v: VersionTag.objects.filter(version=v).delete(), id="tag-deleted"),
        pytest.param(lambda v: VersionMetric.objects.filter(version=v).update(value=0.5), id="metric-value"),
        pytest.param(lambda v: VersionMetric.objects.filter(version=v).delete(), id="metric-deleted"),
        pytest.param(lambda v: alias_create(version=v, name="latest"), id="alias-added"),
        pytest.param(
            lambda v: ModelVersion.objects.filter(pk=v.pk).update(
                dataset=dataset_row_create(team=v.model.team, name="holdout")
            ),
            id="dataset-set",
        ),
    ],
)
def test_a_change_made_around_the_services_is_shown_at_once(owner, version, change):
    assert_shows(owner, version)  # rendered and kept
    change(version)
    assert_shows(owner, version)


def test_moving_an_alias_or_renaming_a_dataset_re_renders_every_version_it_shows(owner, fraud_model, version):
    dataset = dataset_row_create(team=fraud_model.team, name="holdout")
    ModelVersion.objects.filter(pk=version.pk).update(dataset=dataset)
    other = version_create(model=fraud_model)
    alias_create(version=version, name="latest")
    assert_shows(owner, version)
    first = owner.client.get(f"{BASE}/versions/2/").json()
    assert first["aliases"] == []

    Alias.objects.filter(name="latest").update(version=other)
    Dataset.objects.filter(pk=dataset.pk).update(name="holdout-2024", digest="1" * 64)

    assert owner.client.get(f"{BASE}/versions/1/").json()["aliases"] == []
    assert owner.client.get(f"{BASE}/versions/2/").json()["aliases"] == ["latest"]
    assert owner.client.get(f"{BASE}/aliases/latest/").json()["version"] == 2
    assert owner.client.get(f"{BASE}/versions/1/").json()["dataset"] == {"name": "holdout-2024", "digest": "1" * 64}


def test_every_revisioned_table_gets_a_new_revision_on_insert_and_update(version):
    tag = VersionTag.objects.get(version=version)
    before = {
        "version": ModelVersion.objects.values_list("revision", flat=True).get(pk=version.pk),
        "tag": tag.revision,
    }
    tag.refresh_from_db()
    assert tag.revision != 0  # set by the database on insert
    VersionTag.objects.filter(pk=tag.pk).update(value="x")
    ModelVersion.objects.filter(pk=version.pk).update(description="y")
    assert VersionTag.objects.values_list("revision", flat=True).get(pk=tag.pk) != tag.revision
    assert ModelVersion.objects.values_list("revision", flat=True).get(pk=version.pk) != before["version"]


def test_a_versions_revision_changes_with_its_tags_metrics_and_aliases(fraud_model, version):
    other = version_create(model=fraud_model)

    def revisions() -> tuple[int, int]:
        rows = dict(ModelVersion.objects.filter(pk__in=[version.pk, other.pk]).values_list("pk", "revision"))
        return rows[version.pk], rows[other.pk]

    seen = [revisions()]
    VersionTag.objects.bulk_create([VersionTag(version=version, key=f"k{i}", value="v") for i in range(3)])
    seen.append(revisions())
    VersionTag.objects.filter(version=version, key="k0").update(value="w")
    seen.append(revisions())
    VersionMetric.objects.filter(version=version).delete()
    seen.append(revisions())
    assert [s[1] for s in seen] == [seen[0][1]] * 4, "the other version was revised"
    assert len({s[0] for s in seen}) == 4
    alias_create(version=version, name="latest")
    before = revisions()
    Alias.objects.filter(name="latest").update(version=other)
    after = revisions()
    assert after[0] != before[0] and after[1] != before[1]  # moved: both versions show it changed


def test_installing_the_triggers_again_is_harmless(version):
    revision_triggers_install(connection)
    revision_triggers_install(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE %s", ["%_revise"])
        tables = sorted(row[0] for row in cursor.fetchall())
    assert tables == sorted(REVISIONED_TABLES)
    before = VersionTag.objects.values_list("revision", flat=True).get(version=version)
    VersionTag.objects.filter(version=version).update(value="z")
    assert VersionTag.objects.values_list("revision", flat=True).get(version=version) != before


def test_the_kept_renderings_are_bounded():
    kept = documents.RenderedVersions(capacity=2)
    kept.put(("a",), b"1")
    kept.put(("b",), b"2")
    assert kept.get_many([("a",)]) == [b"1"]  # a is now the most recent
    kept.put(("c",), b"3")
    assert kept.get_many([("a",), ("b",), ("c",)]) == [b"1", None, b"3"]
    assert len(kept) == 2
    off = documents.RenderedVersions(capacity=0)
    off.put(("a",), b"1")
    assert off.get_many([("a",)]) == [None]


def test_renderings_follow_the_settings_they_depend_on(owner, version, settings):
    settings.MLFLOW_UI_URL = "http://mlflow.example"
    assert owner.client.get(f"{BASE}/versions/1/").json()["mlflow_url"].startswith("http://mlflow.example/")
    settings.MLFLOW_UI_URL = ""
    assert owner.client.get(f"{BASE}/versions/1/").json()["mlflow_url"] is None


@pytest.mark.parametrize("prepared_statements", [True, False])
def test_reads_answer_the_same_with_and_without_prepared_statements(owner, version, settings, prepared_statements):
    settings.MODELGATE_PREPARED_STATEMENTS = prepared_statements
    alias_create(version=version, name="latest")
    assert_shows(owner, version)
    assert owner.client.get(f"{BASE}/versions/?tag=framework:sklearn").json()["results"][0]["version"] == 1
    assert owner.client.get(f"{BASE}/versions/?tag=framework:none").json()["results"] == []


def test_a_prepared_query_answers_as_the_queryset_does(fraud_model, version):
    query = PreparedQuery(
        lambda name, number: ModelVersion.objects.filter(model__name=name, version=number).values("pk", "created_at"),
        name=str,
        number=int,
    )
    assert query.rows(name="fraud-detector", number=1) == list(
        ModelVersion.objects.filter(model__name="fraud-detector", version=1).values("pk", "created_at")
    )
    assert query.first(name="fraud-detector", number=2) is None
    assert query.first(name="no-such-model", number=1) is None


def test_a_prepared_query_refuses_arguments_it_cannot_place(fraud_model):
    transformed = PreparedQuery(
        lambda name: ModelVersion.objects.filter(model__name__icontains=name).values("pk"), name=str
    )
    with pytest.raises(ValueError, match="transformed"):
        transformed.rows(name="fraud")
    unused = PreparedQuery(
        lambda name, number: ModelVersion.objects.filter(model__name=name).values("pk"), name=str, number=int
    )
    with pytest.raises(ValueError, match="not used"):
        unused.rows(name="fraud", number=1)
    with pytest.raises(TypeError, match="values"):
        PreparedQuery(lambda name: ModelVersion.objects.filter(model__name=name), name=str).rows(name="x")


def test_an_unknown_model_version_or_alias_is_still_a_404_naming_it(owner, version, outsider):
    assert (
        owner.client.get(f"{BASE}/versions/7/").json()["error"]["message"] == "model 'fraud-detector' has no version 7"
    )
    assert (
        owner.client.get(f"{BASE}/aliases/nope/").json()["error"]["message"]
        == "model 'fraud-detector' has no alias 'nope'"
    )
    assert outsider.client.get(f"{BASE}/versions/1/").status_code == 404
    assert outsider.client.get(f"{BASE}/versions/").status_code == 404
