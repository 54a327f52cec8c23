"""Filters, ordering and cursor pagination of the registry's lists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from registry.choices import MetricSource, Stage
from registry.services import metrics_record, team_ensure
from tests.registry.factories import dataset_row_create, model_row_create, version_create

pytestmark = pytest.mark.django_db

VERSIONS = "/api/v1/models/fraud-detector/versions/"


@pytest.fixture
def versions(fraud_model):
    """Five versions of fraud-detector, created in the order 3, 1, 5, 2, 4."""
    now = timezone.now()
    rows = [
        (Stage.TRAINING, {"f1": 0.99}, {"team": "risk"}, 1),
        (Stage.EVALUATION, {"f1": 0.9, "auc": 0.97}, {"framework": "sklearn"}, 3),
        (Stage.STAGING, {"f1": 0.95}, {"framework": "sklearn", "url": "s3://bucket/x"}, 0),
        (Stage.PRODUCTION, {"f1": 0.9, "auc": 0.93}, {"framework": "xgboost"}, 4),
        (Stage.ARCHIVED, {"auc": 0.5}, {}, 2),
    ]
    created = [
        version_create(
            model=fraud_model, stage=stage, metrics=metrics, tags=tags, created_at=now + timedelta(minutes=m)
        )
        for stage, metrics, tags, m in rows
    ]
    # Version 1 was re-evaluated: its first f1 (0.99) is kept but no longer current.
    metrics_record(version=created[0], metrics={"f1": 0.85}, source=MetricSource.EVALUATION)
    return created


def numbers(response: Any) -> list[int]:
    assert response.status_code == 200, response.json()
    return [v["version"] for v in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [5, 4, 3, 2, 1]),
        ({"stage": "production"}, [4]),
        ({"stage": "staging,production"}, [4, 3]),
        ({"stage": "rolled_back"}, []),
        ({"tag": "framework:sklearn"}, [3, 2]),
        ({"tag": ["framework:sklearn", "url:s3://bucket/x"]}, [3]),
        ({"tag": "url:s3://bucket/x"}, [3]),
        ({"tag": "framework:"}, []),
        ({"tag": "framework:SKLEARN"}, []),
        ({"metric": "f1>=0.9"}, [4, 3, 2]),
        ({"metric": "f1 >= 0.9"}, [4, 3, 2]),
        ({"metric": "f1>0.9"}, [3]),
        ({"metric": "f1<=0.9"}, [4, 2, 1]),
        ({"metric": "f1<0.9"}, [1]),
        ({"metric": "f1==0.9"}, [4, 2]),
        ({"metric": "f1=0.9"}, [4, 2]),
        ({"metric": "f1!=0.9"}, [3, 1]),
        ({"metric": "f1>=0.99"}, []),
        ({"metric": "f1>=9e-1"}, [4, 3, 2]),
        ({"metric": "auc>-1"}, [5, 4, 2]),
        ({"metric": ["f1>=0.9", "auc>0.95"]}, [2]),
        ({"metric": "recall>0"}, []),
        ({"stage": "evaluation,production", "tag": "framework:sklearn", "metric": "f1>=0.9"}, [2]),
        ({"ordering": "version"}, [1, 2, 3, 4, 5]),
        ({"ordering": "-version"}, [5, 4, 3, 2, 1]),
        ({"ordering": "created_at"}, [3, 1, 5, 2, 4]),
        ({"ordering": "-created_at"}, [4, 2, 5, 1, 3]),
        ({"ordering": "version", "metric": "f1>=0.9"}, [2, 3, 4]),
    ],
)
def test_version_list_filters_and_orders(owner, versions, query, expected):
    assert numbers(owner.client.get(VERSIONS, query)) == expected


def follow(client: Any, url: str, query: dict[str, Any] | None = None, key: str = "version") -> list[list[Any]]:
    """Every page of a list, following ``next`` until it is null."""
    pages = []
    response = client.get(url, query or {})
    while True:
        assert response.status_code == 200, response.json()
        body = response.json()
        pages.append([item[key] for item in body["results"]])
        if body["next"] is None:
            return pages
        assert len(pages) < 50, "next never became null"
        response = client.get(body["next"])


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("-version", [[9, 8, 7], [6, 5, 4], [3, 2, 1]]),
        ("version", [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
    ],
)
def test_following_next_visits_every_version_once(owner, fraud_model, ordering, expected):
    for _ in range(9):
        version_create(model=fraud_model)

    assert follow(owner.client, VERSIONS, {"page_size": 3, "ordering": ordering}) == expected


def test_pages_keep_their_filters_and_versions_created_at_the_same_instant_are_neither_lost_nor_repeated(
    owner, fraud_model
):
    same_instant = timezone.now()
    for number in range(1, 12):
        version_create(
            model=fraud_model,
            stage=Stage.EVALUATION if number % 2 else Stage.TRAINING,
            created_at=same_instant + timedelta(seconds=number // 4),
        )

    pages = follow(owner.client, VERSIONS, {"page_size": 2, "ordering": "created_at", "stage": "evaluation"})

    seen = [n for page in pages for n in page]
    assert sorted(seen) == [1, 3, 5, 7, 9, 11]
    assert len(seen) == len(set(seen))
    assert all(len(page) == 2 for page in pages)


def test_previous_leads_back_to_the_first_page(owner, fraud_model):
    for _ in range(5):
        version_create(model=fraud_model)
    first = owner.client.get(VERSIONS, {"page_size": 2}).json()
    second = owner.client.get(first["next"]).json()

    back = owner.client.get(second["previous"]).json()

    assert first["previous"] is None
    assert [v["version"] for v in back["results"]] == [v["version"] for v in first["results"]] == [5, 4]


def test_page_size_bounds_are_accepted(owner, fraud_model):
    version_create(model=fraud_model)
    version_create(model=fraud_model)

    assert numbers(owner.client.get(VERSIONS, {"page_size": 1})) == [2]
    assert numbers(owner.client.get(VERSIONS, {"page_size": 500})) == [2, 1]


@pytest.fixture
def models(owner, outsider, fraud_model):
    fraud = team_ensure(name="fraud")
    model_row_create(team=fraud, name="churn-predictor", description="Who leaves", tags={"domain": "retention"})
    model_row_create(team=fraud, name="chargeback-risk", description="FRAUD on disputes", tags={"domain": "payments"})
    model_row_create(team=team_ensure(name="ads"), name="ads-fraud-filter", tags={"domain": "payments"})
    return fraud_model


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["chargeback-risk", "churn-predictor", "fraud-detector"]),
        ({"team": "fraud"}, ["chargeback-risk", "churn-predictor", "fraud-detector"]),
        ({"team": "ads"}, []),
        ({"search": "fraud"}, ["chargeback-risk", "fraud-detector"]),
        ({"search": "CHURN"}, ["churn-predictor"]),
        ({"search": "leaves"}, ["churn-predictor"]),
        ({"tag": "domain:payments"}, ["chargeback-risk", "fraud-detector"]),
        ({"tag": ["domain:payments", "domain:retention"]}, []),
        ({"tag": "domain:payments", "search": "risk"}, ["chargeback-risk"]),
        ({"search": "nothing-like-this"}, []),
    ],
)
def test_model_list_filters(owner, models, query, expected):
    response = owner.client.get("/api/v1/models/", query)

    assert response.status_code == 200, response.json()
    assert [m["name"] for m in response.json()["results"]] == expected


def test_a_superuser_filters_across_teams(superuser, models):
    response = superuser.client.get("/api/v1/models/", {"tag": "domain:payments"})

    assert [m["name"] for m in response.json()["results"]] == ["ads-fraud-filter", "chargeback-risk", "fraud-detector"]


def test_model_and_dataset_lists_page_by_cursor(owner, models):
    fraud = team_ensure(name="fraud")
    for n in range(5):
        dataset_row_create(team=fraud, name=f"data-{n}")

    model_pages = follow(owner.client, "/api/v1/models/", {"page_size": 2}, key="name")
    dataset_pages = follow(owner.client, "/api/v1/datasets/", {"page_size": 2}, key="name")

    assert model_pages == [["chargeback-risk", "churn-predictor"], ["fraud-detector"]]
    assert dataset_pages == [["data-4", "data-3"], ["data-2", "data-1"], ["data-0"]]
