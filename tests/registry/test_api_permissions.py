"""Who may call which endpoint: one table of endpoints, the answer each role gets.

Each row of ``ENDPOINTS`` is an endpoint, a method and a body, with the status code each
relation to the objects' team gets: ``viewer``, ``developer``, ``approver`` and ``admin``
of that team, or ``stranger`` (a member of other teams only). Every caller of the cast is
run against the objects of team fraud and of team ads; its relation to each team is in
``CALLERS``. Lifecycle endpoints join the matrix by adding rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.urls import resolve
from rest_framework.permissions import SAFE_METHODS

from registry.api import urls as registry_urls
from registry.models import Dataset, RegisteredModel
from tests.registry.factories import artifact_write

pytestmark = pytest.mark.django_db

RELATIONS = ("viewer", "developer", "approver", "admin", "stranger")
TEAM_ROLES = ("viewer", "developer", "approver", "admin")


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(RELATIONS, status)


def members(status: int, *, stranger: int = 404) -> dict[str, int]:
    """Any role in the team; a stranger gets ``stranger`` (404: existence is not leaked)."""
    return {**dict.fromkeys(TEAM_ROLES, status), "stranger": stranger}


def at_least(role: str, status: int, *, below: int = 403, stranger: int = 404) -> dict[str, int]:
    """``role`` and the roles above it get ``status``; the roles below get ``below``."""
    rank = TEAM_ROLES.index(role)
    return {
        **{name: status if i >= rank else below for i, name in enumerate(TEAM_ROLES)},
        "stranger": stranger,
    }


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    expect: Mapping[str, int]
    body: Any = None
    public: bool = False
    # A POST that changes nothing (verify): read-only tokens may call it.
    reads_only: bool = False
    # Fixtures the call needs besides the caller and the team's objects.
    needs: tuple[str, ...] = ()


MODEL = "models/{model}/"
VERSION = "models/{model}/versions/1/"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("health", "GET", "health", everyone(200), public=True),
    Endpoint("config", "GET", "config", members(200, stranger=200)),
    Endpoint("model-list", "GET", "models/", members(200, stranger=200)),
    Endpoint(
        "model-create",
        "POST",
        "models/",
        at_least("developer", 201, stranger=403),
        body={"name": "new-model", "team": "{team}"},
    ),
    Endpoint("model-detail", "GET", MODEL, members(200)),
    Endpoint("model-update", "PATCH", MODEL, at_least("developer", 200), body={"description": "retrained weekly"}),
    Endpoint(
        "model-policy-update",
        "PATCH",
        MODEL,
        at_least("approver", 200),
        body={"policy": {"rules": [{"type": "metric_threshold", "metric": "f1", "op": ">=", "value": 0.9}]}},
    ),
    Endpoint("version-list", "GET", f"{MODEL}versions/", members(200)),
    Endpoint(
        "version-register",
        "POST",
        f"{MODEL}versions/",
        at_least("developer", 201),
        body={"source": "{artifact}"},
        needs=("mlflow_store",),
    ),
    Endpoint("version-detail", "GET", VERSION, members(200)),
    Endpoint("version-download", "GET", f"{VERSION}download/", members(200)),
    Endpoint("version-verify", "POST", f"{VERSION}verify/", members(200), reads_only=True),
    Endpoint("alias-get", "GET", f"{MODEL}aliases/candidate/", members(200)),
    Endpoint("alias-get-champion", "GET", f"{MODEL}aliases/champion/", members(200)),
    Endpoint(
        "alias-set",
        "PUT",
        f"{MODEL}aliases/candidate/",
        at_least("developer", 200),
        body={"version": 2},
        needs=("mlflow_store",),
    ),
    Endpoint("alias-set-champion", "PUT", f"{MODEL}aliases/champion/", at_least("developer", 409), body={"version": 2}),
    Endpoint(
        "alias-delete", "DELETE", f"{MODEL}aliases/candidate/", at_least("developer", 204), needs=("mlflow_store",)
    ),
    Endpoint("alias-delete-champion", "DELETE", f"{MODEL}aliases/champion/", at_least("developer", 409)),
    Endpoint("dataset-list", "GET", "datasets/", members(200, stranger=200)),
    Endpoint(
        "dataset-create",
        "POST",
        "datasets/",
        at_least("developer", 201, stranger=403),
        body={"name": "new-data", "team": "{team}", "uri": "builtin:iris", "target": "target"},
    ),
    Endpoint("dataset-detail", "GET", "datasets/{dataset}/", members(200)),
)

# A caller's relation to team fraud and to team ads; ``None``: no valid credentials.
CALLERS: dict[str, tuple[str | None, str | None]] = {
    "anonymous": (None, None),
    "expired": (None, None),
    "revoked": (None, None),
    "viewer": ("viewer", "stranger"),
    "owner": ("developer", "stranger"),
    "approver": ("approver", "stranger"),
    "fraud_admin": ("admin", "stranger"),
    "outsider": ("stranger", "admin"),
    "superuser": ("admin", "admin"),
    "read_only": ("admin", "stranger"),
}
READ_ONLY_CALLERS = {"read_only"}
TEAMS = ("fraud", "ads")


def expected_status(endpoint: Endpoint, caller: str, team: str) -> int:
    if endpoint.public:
        return endpoint.expect["stranger"]
    relation = CALLERS[caller][TEAMS.index(team)]
    if relation is None:
        return 401
    if caller in READ_ONLY_CALLERS and endpoint.method not in SAFE_METHODS and not endpoint.reads_only:
        return 403
    return endpoint.expect[relation]


def _cases() -> list[Any]:
    cases = []
    for endpoint in ENDPOINTS:
        for caller, relations in CALLERS.items():
            # Without credentials, or for a public endpoint, the team makes no difference.
            for team in TEAMS if relations[0] is not None and not endpoint.public else TEAMS[:1]:
                cases.append(pytest.param(endpoint, caller, team, id=f"{endpoint.name}-{caller}-{team}"))
    return cases


def _filled(value: Any, names: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _filled(v, names) for k, v in value.items()}
    return value


@pytest.fixture
def cast(owner, approver, viewer, fraud_admin, outsider, superuser, read_only, expired, revoked, anonymous):
    """Every caller's API client, by the names of ``CALLERS``."""
    actors = {
        "owner": owner,
        "approver": approver,
        "viewer": viewer,
        "fraud_admin": fraud_admin,
        "outsider": outsider,
        "superuser": superuser,
        "read_only": read_only,
        "expired": expired,
        "revoked": revoked,
    }
    return {"anonymous": anonymous, **{name: actor.client for name, actor in actors.items()}}


@pytest.mark.parametrize(("endpoint", "caller", "team"), _cases())
def test_endpoint_answers_each_caller_as_the_table_says(
    request: pytest.FixtureRequest, endpoint: Endpoint, caller: str, team: str, tmp_path: Path
):
    # Only the fixtures this case needs: the whole cast would triple the setup time.
    for name in endpoint.needs:
        request.getfixturevalue(name)
    objects = request.getfixturevalue(f"{team}_objects")
    client = request.getfixturevalue(caller)
    client = getattr(client, "client", client)
    names = {"team": objects.team, "model": objects.model.name, "dataset": str(objects.dataset.pk)}
    if "{artifact}" in str(endpoint.body):
        names["artifact"] = str(artifact_write(tmp_path / "upload"))
    call = getattr(client, endpoint.method.lower())
    body = _filled(endpoint.body, names)

    response = call(f"/api/v1/{_filled(endpoint.path, names)}", body, format="json")

    expected = expected_status(endpoint, caller, team)
    payload = response.json() if response.content else None
    assert response.status_code == expected, payload
    if expected >= 400:
        assert set(payload) == {"error"}
        assert set(payload["error"]) == {"code", "message", "details"}
        assert payload["error"]["code"] == {401: "unauthenticated", 403: "forbidden", 404: "not_found"}.get(
            expected, payload["error"]["code"]
        )
    if expected == 401:
        assert response["WWW-Authenticate"] == "Bearer"


def test_every_registry_route_and_method_is_in_the_matrix():
    sample = {"team": "fraud", "model": "m", "dataset": "1", "artifact": "/tmp"}
    covered = {(resolve(f"/api/v1/{_filled(e.path, sample)}").url_name, e.method) for e in ENDPOINTS}
    routes = {
        (pattern.name, method.upper())
        for pattern in registry_urls.urlpatterns
        for method in pattern.callback.view_class.http_method_names
        if method not in {"head", "options", "trace"} and hasattr(pattern.callback.view_class, method)
    }
    assert routes <= covered, f"add rows for {sorted(routes - covered)}"


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if not e.public], ids=lambda e: e.name)
def test_every_endpoint_has_a_forbidden_case(endpoint: Endpoint):
    statuses = {expected_status(endpoint, caller, team) for caller in CALLERS for team in TEAMS}
    # Config and the lists are open to every signed-in user: they refuse anonymous callers
    # and show each user only their teams' objects (tested below).
    open_to_all = endpoint.method in SAFE_METHODS and endpoint.expect["stranger"] == 200
    assert 401 in statuses
    assert open_to_all or statuses & {403, 404}, f"{endpoint.name} refuses no signed-in caller"


@pytest.mark.parametrize(
    ("caller", "models", "datasets"),
    [
        ("viewer", ["fraud-detector"], ["fraud-eval"]),
        ("owner", ["fraud-detector"], ["fraud-eval"]),
        ("outsider", ["ads-ctr"], ["ads-eval"]),
        ("read_only", ["fraud-detector"], ["fraud-eval"]),
        ("superuser", ["ads-ctr", "fraud-detector"], ["ads-eval", "fraud-eval"]),
    ],
)
def test_lists_show_only_the_callers_teams(cast, fraud_objects, ads_objects, caller, models, datasets):
    client = cast[caller]

    listed_models = client.get("/api/v1/models/").json()["results"]
    listed_datasets = client.get("/api/v1/datasets/").json()["results"]

    assert [m["name"] for m in listed_models] == models
    assert sorted(d["name"] for d in listed_datasets) == datasets


def test_filtering_by_another_teams_name_shows_nothing_of_it(viewer, fraud_objects, ads_objects):
    assert viewer.client.get("/api/v1/models/", {"team": "ads"}).json()["results"] == []
    assert viewer.client.get("/api/v1/datasets/", {"team": "ads"}).json()["results"] == []


def test_a_stranger_gets_the_same_404_for_an_existing_and_a_missing_model(outsider, fraud_objects):
    existing = outsider.client.get("/api/v1/models/fraud-detector/versions/1/")
    missing = outsider.client.get("/api/v1/models/no-such-model/versions/1/")

    assert existing.status_code == missing.status_code == 404
    assert existing.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"


def test_expired_and_revoked_tokens_say_why(expired, revoked):
    assert expired.client.get("/api/v1/models/").json()["error"]["message"] == "token expired"
    assert revoked.client.get("/api/v1/models/").json()["error"]["message"] == "token revoked"


def test_a_refused_write_changes_nothing(cast, fraud_objects):
    before = (RegisteredModel.objects.count(), Dataset.objects.count(), fraud_objects.model.description)

    cast["viewer"].patch("/api/v1/models/fraud-detector/", {"description": "hijacked"}, format="json")
    cast["read_only"].post("/api/v1/models/", {"name": "sneaky", "team": "fraud"}, format="json")
    cast["outsider"].post(
        "/api/v1/datasets/", {"name": "sneaky", "team": "fraud", "uri": "builtin:iris"}, format="json"
    )
    cast["owner"].patch("/api/v1/models/fraud-detector/", {"policy": {"rules": []}}, format="json")

    fraud_objects.model.refresh_from_db()
    assert (RegisteredModel.objects.count(), Dataset.objects.count(), fraud_objects.model.description) == before
    assert fraud_objects.model.policy["rules"][0]["value"] == 0.8


def test_the_registered_version_and_moved_alias_are_in_mlflow(mlflow_store, owner, fraud_objects, tmp_path: Path):
    source = str(artifact_write(tmp_path / "upload"))

    registered = owner.client.post("/api/v1/models/fraud-detector/versions/", {"source": source}, format="json")
    moved = owner.client.put("/api/v1/models/fraud-detector/aliases/candidate/", {"version": 2}, format="json")

    assert registered.status_code == 201, registered.json()
    number = registered.json()["version"]
    assert mlflow_store.get_model_version("fraud-detector", str(number)).run_id == registered.json()["run_id"]
    assert moved.json()["version"] == 2
    assert str(mlflow_store.get_model_version_by_alias("fraud-detector", "candidate").version) == "2"
