"""The production topology in ``deploy/`` agrees with the code it deploys.

Nothing here builds an image or starts a container (no Docker engine runs in the test
environment): the compose file, the Dockerfile, the Kubernetes manifests and the CI
example are parsed and checked against what the settings read (``config.env``), the
entry points that exist and the URLs the project serves. The settings' own start-up
checks are exercised in real subprocesses, with the environment production gives them.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVING_DOCKERFILE = DEPLOY / "Dockerfile.serving"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S = DEPLOY / "k8s"
CI_WORKFLOW = DEPLOY / "ci" / "modelgate-promote.yml"
DEPLOY_DOC = REPO / "docs" / "deploy.md"

# The services every production topology of ModelGate runs from its image.
APPLICATION_SERVICES = {"web", "worker", "beat", "migrate"}
# What every ModelGate process needs in production (SECRET_KEY may come as SECRET_KEY_FILE).
ESSENTIAL_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "MLFLOW_TRACKING_URI", "MODELGATE_ARTIFACT_ROOT")
# The variables whose value points at another service of the topology.
SERVICE_URL_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "MLFLOW_TRACKING_URI",
    "AWS_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_BACKEND_STORE_URI",
)
# Services that talk to only some of the servers their settings name (beat only sends
# messages; migrate only migrates); every other service waits for all of them.
WAITS_FOR = {"migrate": {"DATABASE_URL"}, "beat": {"CELERY_BROKER_URL"}}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
HEALTH_PATH = "/api/v1/health"

# Compose interpolation: $$ escapes, ${NAME}, ${NAME:-default}, ${NAME?error}, ..., $NAME.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_SETUP = "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup()"
_PRINT_KNOWN = "; import json; from config.env import KNOWN_VARIABLES; print(json.dumps(sorted(KNOWN_VARIABLES)))"


# --- reading the deployment files -----------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def interpolations(value: str) -> Iterator[re.Match[str]]:
    return (m for m in _INTERPOLATION.finditer(value) if not m["escaped"])


def interpolated_names(value: str) -> list[str]:
    """The variables a compose string interpolates, in order."""
    return [m["braced"] or m["bare"] for m in interpolations(value)]


def substitute(value: str, variables: dict[str, str]) -> str:
    """What compose makes of ``value`` with ``variables`` in its environment."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        current = variables.get(name)
        present = current is not None and (current != "" or not (op or "").startswith(":"))
        if op in {"-", ":-"}:
            return current if present else arg
        if op in {"?", ":?"}:
            if not present:
                raise AssertionError(f"compose would refuse to start: {name}: {arg}")
            return current
        if op in {"+", ":+"}:
            return arg if present else ""
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def strings(node: Any) -> Iterator[str]:
    """Every string of a parsed YAML document, keys included (comments are gone)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's ``environment`` in either form; ``None`` for a name passed through."""
    raw = service.get("environment") or {}
    if isinstance(raw, dict):
        return {str(name): None if value is None else str(value) for name, value in raw.items()}
    pairs: dict[str, str | None] = {}
    for item in raw:
        name, sep, value = str(item).partition("=")
        pairs[name] = value if sep else None
    return pairs


def command_words(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def runs_modelgate_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if isinstance(build, dict):
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        return (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE.resolve()
    return False


def image_services() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in services().items() if runs_modelgate_image(spec)}


def application_services() -> dict[str, dict[str, Any]]:
    """Services that run ModelGate itself: the image, minus the MLflow server it also hosts."""
    return {name: spec for name, spec in image_services().items() if command_words(spec)[:1] != ["mlflow"]}


def _placeholders(value: str) -> str:
    """``value`` with each interpolation replaced by a word, so that it parses as a URL."""
    return _INTERPOLATION.sub(lambda m: "$" if m["escaped"] else "placeholder", value)


def reachable(name: str) -> set[str]:
    """The services ``name`` waits for, directly or through others."""
    seen: set[str] = set()
    stack = list(depends_on(services()[name]))
    while stack:
        current = stack.pop()
        if current not in seen and current in services():
            seen.add(current)
            stack.extend(depends_on(services()[current]))
    return seen


@cache
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@cache
def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile_instructions() if name == keyword]


def dockerfile_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in dockerfile("ENV"):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            values[name] = value
    return values


@cache
def k8s_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def k8s_containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for doc in k8s_documents():
        if doc["kind"] in {"Deployment", "Job"}:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                found.append((f"{doc['kind']}/{doc['metadata']['name']}", container))
    return found


def k8s_config_map() -> dict[str, str]:
    (config_map,) = [doc for doc in k8s_documents() if doc["kind"] == "ConfigMap"]
    return {name: str(value) for name, value in config_map["data"].items()}


def k8s_environment(container: dict[str, Any]) -> dict[str, str | None]:
    """A container's variables: its config maps' data, then ``env`` (``None`` if from a Secret)."""
    values: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"only the config map may be imported whole: {source}"
        assert source["configMapRef"]["name"] == "modelgate-config"
        values.update(k8s_config_map())
    for entry in container.get("env", []):
        values[entry["name"]] = entry.get("value")
    return values


# --- the settings, in subprocesses ------------------------------------------------------


def start_django(tmp_path: Path, code: str = "", **variables: str) -> subprocess.CompletedProcess[str]:
    """``django.setup()`` in a fresh interpreter with only ``variables`` set (plus PATH),
    the state directory and the database inside ``tmp_path``."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "MODELGATE_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'modelgate.sqlite3'}",
    }
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-c", _SETUP + code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def known_variables(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every variable the settings read: in this (test) process, and in production, where
    a few more are read (the secure-cookie switches)."""
    from config.env import KNOWN_VARIABLES

    production = start_django(
        tmp_path_factory.mktemp("known"), _PRINT_KNOWN, MODELGATE_ENV="production", SECRET_KEY=secrets.token_hex(32)
    )
    assert production.returncode == 0, production.stderr
    return set(KNOWN_VARIABLES) | set(json.loads(production.stdout.strip().splitlines()[-1]))


def compose_variables() -> dict[str, str]:
    """The env file an operator writes: ``.env.example`` with every empty value filled."""
    return {name: value or secrets.token_hex(32) for name, value in env_example().items()}


# --- 1. variables on ModelGate services are the ones the settings read -----------------


def test_a_service_environment_reads_the_same_in_list_and_mapping_form() -> None:
    mapping = {"environment": {"DEBUG": "false", "SECRET_KEY": "${SECRET_KEY:?}", "LOG_LEVEL": None}}
    listing = {"environment": ["DEBUG=false", "SECRET_KEY=${SECRET_KEY:?}", "LOG_LEVEL"]}
    assert (
        environment(mapping)
        == environment(listing)
        == {
            "DEBUG": "false",
            "SECRET_KEY": "${SECRET_KEY:?}",
            "LOG_LEVEL": None,
        }
    )
    assert interpolated_names("postgres://u:${A:?x}@h/$B?c=$$C&d=${D:-e}") == ["A", "B", "D"]
    assert substitute("${A:-x}/${B-y}/${C:+z}/$$D", {"B": "", "C": "1"}) == "x//z/$D"


def test_the_compose_file_runs_web_worker_beat_and_migrate_from_the_modelgate_image() -> None:
    assert set(application_services()) >= APPLICATION_SERVICES
    assert "mlflow" in image_services(), "the MLflow server runs from the ModelGate image (mlflow, psycopg, boto3)"


@pytest.mark.parametrize("name", sorted(application_services()))
def test_every_variable_set_on_a_modelgate_service_is_read_by_the_settings(
    name: str, known_variables: set[str]
) -> None:
    unknown = sorted(set(environment(services()[name])) - known_variables)
    assert not unknown, f"{name} sets variables config/env.py never reads: {unknown}"
    assert "env_file" not in services()[name], "variables come from the environment block, where this test sees them"


@pytest.mark.parametrize("name", sorted(application_services()))
def test_every_variable_interpolated_into_a_modelgate_service_is_a_setting_or_the_credential_of_its_server(
    name: str, known_variables: set[str]
) -> None:
    """``${VAR}`` in a ModelGate service names a setting, or (inside a URL's userinfo) the
    password the server at that URL's host is started with in this same file, so that a
    misspelt name cannot silently become an empty password."""
    for variable, value in environment(services()[name]).items():
        for match in interpolations(value or ""):
            interpolated = match["braced"] or match["bare"]
            if interpolated in known_variables:
                continue
            parts = urlsplit(_placeholders(value or ""))
            userinfo = (value or "").partition("://")[2].rpartition("@")[0]
            assert match.group(0) in userinfo, (
                f"{name}: {variable} interpolates {interpolated}, which the settings do not read"
            )
            server = services().get(parts.hostname or "", {})
            server_interpolates = {
                found for text in environment(server).values() for found in interpolated_names(text or "")
            }
            assert interpolated in server_interpolates, (
                f"{name}: {variable} authenticates to {parts.hostname} with {interpolated}, "
                f"but that service is not started with it"
            )


# --- 2. the production essentials -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(application_services()))
def test_every_modelgate_service_sets_production_and_the_essential_settings(name: str) -> None:
    env = environment(services()[name])
    assert env.get("MODELGATE_ENV") == "production"
    missing = [variable for variable in ESSENTIAL_VARIABLES if not env.get(variable)]
    assert not missing, f"{name} does not set {missing}"
    assert env.get("SECRET_KEY") or env.get("SECRET_KEY_FILE"), f"{name} sets neither SECRET_KEY nor SECRET_KEY_FILE"
    assert "DEBUG" not in env or env["DEBUG"] in {"0", "false", "no", "off"}


@pytest.mark.parametrize("name", sorted(application_services()))
def test_the_environment_compose_gives_a_modelgate_service_is_accepted_by_production_settings(
    name: str, tmp_path: Path
) -> None:
    variables = compose_variables()
    env = {key: substitute(value, variables) for key, value in environment(services()[name]).items() if value}
    # The image's own environment, with its state directory moved into the temp dir.
    image_env = {key: value for key, value in dockerfile_env().items() if key != "MODELGATE_VAR_DIR"}
    probe = (
        "; from django.conf import settings as s; import json; print(json.dumps({'debug': s.DEBUG, "
        "'engine': s.DATABASES['default']['ENGINE'], 'broker': s.CELERY_BROKER_URL, "
        "'artifacts': s.MODELGATE_ARTIFACT_ROOT, 'mlflow': s.MLFLOW_TRACKING_URI}))"
    )
    result = start_django(tmp_path, probe, **{**image_env, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["debug"] is False
    assert seen["engine"] == "django.db.backends.postgresql"
    assert seen["broker"].startswith(("redis://", "rediss://", "amqp://", "amqps://"))
    assert seen["artifacts"].startswith("s3://")
    assert seen["mlflow"].startswith("http")


# --- 3. hostnames and dependencies name services of the file ----------------------------


def test_service_urls_name_services_of_the_compose_file_on_ports_they_expose() -> None:
    checked = 0
    for name, service in services().items():
        for variable, value in environment(service).items():
            if variable not in SERVICE_URL_VARIABLES or not value:
                continue
            parts = urlsplit(_placeholders(value))
            assert parts.hostname in services(), f"{name}: {variable} points at {parts.hostname!r}, not a service"
            assert parts.port is not None, f"{name}: {variable} should name its port explicitly"
            target = services()[parts.hostname]
            exposed = {str(port).split("/")[0] for port in target.get("expose", [])}
            assert str(parts.port) in exposed, (
                f"{name}: {variable} uses port {parts.port}, {parts.hostname} exposes {exposed}"
            )
            if variable in WAITS_FOR.get(name, {variable}):
                assert parts.hostname in reachable(name), f"{name} uses {parts.hostname} but does not wait for it"
            checked += 1
    assert checked >= 4 * len(APPLICATION_SERVICES)


def test_every_depends_on_names_an_existing_service_with_a_condition_it_can_meet() -> None:
    for name, service in services().items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services(), f"{name} depends on {dependency!r}, which does not exist"
            assert condition in DEPENDS_ON_CONDITIONS, f"{name}: unknown condition {condition!r}"
            target = services()[dependency]
            if condition == "service_healthy":
                check = target.get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{name} waits for {dependency} to be healthy"
            if condition == "service_completed_successfully":
                assert str(target.get("restart", "no")) in {"no", "on-failure"}, f"{dependency} is not a one-shot"


def test_the_dependency_graph_has_no_cycle() -> None:
    graph = {name: set(depends_on(service)) for name, service in services().items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for dependency in graph.get(name, ()):
                visit(dependency, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())


def test_modelgate_services_start_after_migrations_and_mlflow_after_its_database() -> None:
    for name in APPLICATION_SERVICES - {"migrate"}:
        assert depends_on(services()[name]).get("migrate") == "service_completed_successfully", name
    assert depends_on(services()["migrate"]).get("postgres") == "service_healthy"
    assert depends_on(services()["mlflow"]).get("postgres") == "service_healthy"


def test_the_buckets_and_databases_the_services_use_are_created_by_the_one_shots() -> None:
    bucket_script = "\n".join(command_words(services()["minio-init"]))
    created_buckets = set(re.findall(r"mc mb (?:--ignore-existing )?local/([a-z0-9.-]+)", bucket_script))
    init_scripts = [
        (COMPOSE_FILE.parent / volume.split(":")[0]).resolve()
        for volume in services()["postgres"].get("volumes", [])
        if isinstance(volume, str) and "/docker-entrypoint-initdb.d/" in volume
    ]
    assert init_scripts and all(path.is_file() for path in init_scripts)
    created_databases = {
        name for path in init_scripts for name in re.findall(r"CREATE DATABASE (\w+)", path.read_text(), re.I)
    }
    used_buckets, used_databases = set(), set()
    for service in services().values():
        env = environment(service)
        for variable, value in env.items():
            if value and value.startswith("s3://"):
                used_buckets.add(urlsplit(value).hostname)
            if variable in {"DATABASE_URL", "MLFLOW_BACKEND_STORE_URI"} and value:
                used_databases.add(urlsplit(_placeholders(value)).path.lstrip("/"))
        words = command_words(service)
        used_buckets.update(urlsplit(word).hostname for word in words if word.startswith("s3://"))
    assert used_buckets and used_buckets <= created_buckets, f"buckets used {used_buckets}, created {created_buckets}"
    assert used_databases == {"modelgate", "mlflow"}
    assert used_databases <= created_databases, f"databases used {used_databases}, created {created_databases}"


def test_the_mlflow_server_listens_where_modelgate_looks_for_it() -> None:
    mlflow = services()["mlflow"]
    words = command_words(mlflow)
    assert words[:2] == ["mlflow", "server"]
    assert words[words.index("--host") + 1] == "0.0.0.0"
    backend = environment(mlflow).get("MLFLOW_BACKEND_STORE_URI") or words[words.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg://"), "the image ships psycopg 3, not psycopg2"
    tracking = {environment(services()[name])["MLFLOW_TRACKING_URI"] for name in application_services()}
    assert tracking == {f"http://mlflow:{words[words.index('--port') + 1]}"}
    # Other containers send Host: mlflow:<port>, which MLflow's DNS-rebinding guard must accept.
    allowed_hosts = substitute(environment(mlflow).get("MLFLOW_SERVER_ALLOWED_HOSTS") or "", {}).split(",")
    assert urlsplit(next(iter(tracking))).netloc in allowed_hosts


# --- 4. commands and the image's entry points exist -------------------------------------


def _module_defines(module: str, attribute: str) -> bool:
    path = REPO / Path(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        return False
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets)
        for node in tree.body
    )


def _assert_gunicorn_serves_the_project(words: list[str]) -> None:
    assert words[0] == "gunicorn"
    (application,) = [word for word in words[1:] if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", word)]
    module, _, attribute = application.partition(":")
    assert module == "config.wsgi"
    assert _module_defines(module, attribute), f"{application} does not exist"
    binds = [word.partition("=")[2] or words[words.index(word) + 1] for word in words if word.startswith("--bind")]
    assert binds == ["0.0.0.0:8000"]


def _assert_celery_runs_the_project_app(words: list[str], subcommand: str) -> None:
    from celery import Celery

    import config

    assert words[0] == "celery"
    app_index = next(i for i, word in enumerate(words) if word in {"-A", "--app"})
    assert words[app_index + 1] == "config"
    assert words[app_index + 2] == subcommand
    assert isinstance(config.celery_app, Celery), "celery -A config finds config.celery_app"


def test_web_worker_beat_and_migrate_commands_name_entry_points_that_exist() -> None:
    _assert_gunicorn_serves_the_project(command_words(services()["web"]))
    _assert_celery_runs_the_project_app(command_words(services()["worker"]), "worker")
    _assert_celery_runs_the_project_app(command_words(services()["beat"]), "beat")
    migrate = command_words(services()["migrate"])
    assert migrate[:3] == ["python", "manage.py", "migrate"] and "--noinput" in migrate
    assert (REPO / "manage.py").is_file()


def test_beat_keeps_its_schedule_on_a_volume_the_image_lets_it_write() -> None:
    words = command_words(services()["beat"])
    (schedule,) = [
        w.partition("=")[2] or words[words.index(w) + 1] for w in words if w.startswith(("--schedule", "-s"))
    ]
    mounts = [str(volume).split(":")[1] for volume in services()["beat"].get("volumes", [])]
    assert str(Path(schedule).parent) in mounts
    image_setup = substitute(" ".join(dockerfile("RUN")), dockerfile_env())
    assert str(Path(schedule).parent) in image_setup, "the Dockerfile creates it for the app user"


def test_the_dockerfile_builds_a_non_root_python_image_whose_entry_points_exist() -> None:
    assert dockerfile("FROM") == ["python:3.11-slim"]
    users = dockerfile("USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    last_user = max(i for i, (name, _) in enumerate(dockerfile_instructions()) if name == "USER")
    last_run = max(i for i, (name, _) in enumerate(dockerfile_instructions()) if name == "RUN")
    assert last_run < last_user, "nothing runs as root after the switch to the app user"
    for arguments in dockerfile("COPY"):
        *sources, _destination = shlex.split(arguments)
        for source in (s for s in sources if not s.startswith("--")):
            assert (REPO / source).exists(), f"COPY {source}: no such file in the build context"
    assert any("requirements.txt" in arguments for arguments in dockerfile("RUN"))
    (cmd,) = dockerfile("CMD")
    _assert_gunicorn_serves_the_project(json.loads(cmd))
    assert json.loads(cmd)[:2] == command_words(services()["web"])[:2], "compose's web runs what the image runs"
    assert "MODELGATE_VAR_DIR" in dockerfile_env()
    ignore_file = DOCKERFILE.with_name("Dockerfile.dockerignore").read_text().splitlines()
    context_filter = {line.strip() for line in ignore_file if line.strip() and not line.startswith("#")}
    assert {".venv", "var", ".git"} <= context_filter, "the build context leaves out local state"
    from django.conf import settings

    project = {"manage.py", "config"} | {app.split(".")[0] for app in settings.INSTALLED_APPS}
    left_out = sorted(name for name in project if (REPO / name).exists() and name in context_filter)
    assert not left_out, f"the build context leaves out {left_out}"


def test_the_image_collects_static_files_with_a_throwaway_key_and_production_settings(tmp_path: Path) -> None:
    (collect,) = [arguments for arguments in dockerfile("RUN") if "collectstatic" in arguments]
    assignments = dict(word.split("=", 1) for word in shlex.split(collect.split("python manage.py")[0]) if "=" in word)
    assert assignments.get("MODELGATE_ENV") == "production"
    assert len(assignments.get("SECRET_KEY", "")) >= 32
    assert "SECRET_KEY" not in dockerfile_env(), "no key is baked into the image"
    # The same step, here: it must succeed with exactly the build's environment.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        **{k: v for k, v in dockerfile_env().items() if k != "MODELGATE_VAR_DIR"},
        "MODELGATE_VAR_DIR": str(tmp_path / "var"),
        **assignments,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert any((tmp_path / "var" / "static").rglob("*.css"))


def _health_url(test: list[str] | str) -> str:
    text = test if isinstance(test, str) else " ".join(test)
    (url,) = re.findall(r"https?://[^'\" ]+", text)
    return url


def test_the_health_checks_probe_the_health_endpoint_on_an_allowed_host() -> None:
    from django.urls import resolve

    from registry.api.views import HealthView

    (image_check,) = dockerfile("HEALTHCHECK")
    urls = [_health_url(image_check), _health_url(services()["web"]["healthcheck"]["test"])]
    web_env = environment(services()["web"])
    allowed_hosts = substitute(web_env["ALLOWED_HOSTS"] or "", compose_variables()).split(",")
    for url in urls:
        parts = urlsplit(url)
        assert parts.path == HEALTH_PATH
        assert resolve(parts.path).func.view_class is HealthView
        assert parts.port == 8000
        assert parts.hostname in allowed_hosts, f"Django would answer {url} with 400 (DisallowedHost)"


def test_every_other_service_of_the_image_replaces_the_web_healthcheck() -> None:
    """The image's HEALTHCHECK calls port 8000, which only web listens on."""
    for name, service in image_services().items():
        if name == "web":
            continue
        check = service.get("healthcheck") or {}
        assert check.get("disable") or check.get("test"), f"{name} would inherit the web server's health check"
        assert ":8000" not in json.dumps(check), name


# --- 5 and 6. production settings refuse what they must ---------------------------------


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param({"DEBUG": "true", "SECRET_KEY": "s" * 50}, "DEBUG must be off", id="debug-on"),
        pytest.param({}, "SECRET_KEY must be set", id="no-secret-key"),
        pytest.param({"SECRET_KEY": "modelgate-insecure-development-key-change-me"}, "SECRET_KEY", id="default-key"),
        pytest.param({"SECRET_KEY": "too-short"}, "at least 32 characters", id="short-key"),
        pytest.param({"SECRET_KEY": "s" * 50, "DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean", id="bad-boolean"),
        pytest.param(
            {"SECRET_KEY": "s" * 50, "DATABASE_URL": "mysql://x"}, "DATABASE_URL='mysql://x' must be a URL", id="mysql"
        ),
        pytest.param({"SECRET_KEY": "s" * 50, "CELERY_BROKER_URL": "redis://"}, "CELERY_BROKER_URL=", id="no-host"),
        pytest.param({"SECRET_KEY": "s" * 50, "MODELGATE_ENV": "prod"}, "MODELGATE_ENV='prod'", id="unknown-env"),
        pytest.param(
            {"SECRET_KEY": "s" * 50, "DATABASE_CONN_MAX_AGE": "-1"}, "DATABASE_CONN_MAX_AGE", id="negative-int"
        ),
    ],
)
def test_production_settings_refuse_to_start(variables: dict[str, str], message: str, tmp_path: Path) -> None:
    result = start_django(tmp_path, **{"MODELGATE_ENV": "production", **variables})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr, result.stderr[-2000:]


def test_production_settings_start_with_a_proper_secret_key(tmp_path: Path) -> None:
    result = start_django(tmp_path, MODELGATE_ENV="production", SECRET_KEY=secrets.token_urlsafe(50), DEBUG="false")
    assert result.returncode == 0, result.stderr[-2000:]


def test_production_settings_read_the_secret_key_from_a_mounted_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(secrets.token_urlsafe(50) + "\n")
    result = start_django(
        tmp_path,
        "; from django.conf import settings; print(len(settings.SECRET_KEY))",
        MODELGATE_ENV="production",
        SECRET_KEY_FILE=str(secret_file),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(len(secret_file.read_text().strip()))


def test_production_reads_no_server_path_unless_told_which(tmp_path: Path) -> None:
    show = "; from django.conf import settings; print(list(map(str, settings.MODELGATE_LOCAL_SOURCE_ROOTS)))"
    key = secrets.token_urlsafe(50)
    default = start_django(tmp_path, show, MODELGATE_ENV="production", SECRET_KEY=key)
    configured = start_django(
        tmp_path, show, MODELGATE_ENV="production", SECRET_KEY=key, MODELGATE_LOCAL_SOURCE_ROOTS="/srv/models,/srv/data"
    )
    assert default.returncode == configured.returncode == 0, default.stderr[-2000:] + configured.stderr[-2000:]
    assert default.stdout.strip().splitlines()[-1] == "[]"
    assert configured.stdout.strip().splitlines()[-1] == "['/srv/models', '/srv/data']"


# --- secrets stay out of the repository -------------------------------------------------


def test_every_required_variable_is_listed_in_the_env_example_and_every_listed_one_is_used() -> None:
    found = [m for text in strings(compose()) for m in interpolations(text)]
    required = {m["braced"] for m in found if m["op"] in {"?", ":?"}}
    used = {m["braced"] or m["bare"] for m in found}
    listed = set(env_example())
    assert required <= listed, f"missing from .env.example: {sorted(required - listed)}"
    assert listed <= used, f".env.example lists variables compose never uses: {sorted(listed - used)}"


def test_the_env_example_commits_no_secret_values() -> None:
    for name, value in env_example().items():
        if re.search(r"PASSWORD|SECRET", name):
            assert value == "", f"{name} must be left empty in .env.example (compose then refuses to start)"


def test_the_compose_file_commits_no_credentials() -> None:
    for name, service in services().items():
        for variable, value in environment(service).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|AUTH", variable):
                match = _INTERPOLATION.fullmatch(value or "")
                assert match and match["op"] == ":?", f"{name}: {variable} must be a required ${{VAR:?}}"
            password = urlsplit(_placeholders(value or "")).password if "://" in (value or "") else None
            if password:
                userinfo = (value or "").partition("://")[2].rpartition("@")[0]
                assert interpolated_names(userinfo), f"{name}: {variable} has a literal password"


# --- Kubernetes ---------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_every_kubernetes_container_sets_only_known_variables_and_the_production_essentials(
    known_variables: set[str],
) -> None:
    containers = k8s_containers()
    assert {name.split("/")[1] for name, _ in containers} == {f"modelgate-{s}" for s in APPLICATION_SERVICES}
    for name, container in containers:
        env = k8s_environment(container)
        assert not set(env) - known_variables, f"{name}: {sorted(set(env) - known_variables)}"
        assert env.get("MODELGATE_ENV") == "production", name
        # Values from the Secret are None here: present is what can be checked.
        missing = [variable for variable in (*ESSENTIAL_VARIABLES, "SECRET_KEY") if variable not in env]
        assert not missing, f"{name} misses {missing}"
        for entry in container.get("env", []):
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["name"] == "modelgate-secrets" and reference["key"] == entry["name"]


def test_kubernetes_commands_and_probes_match_the_project() -> None:
    from django.urls import resolve

    allowed_hosts = k8s_config_map()["ALLOWED_HOSTS"].split(",")
    for name, container in k8s_containers():
        words = [str(word) for word in container["command"]]
        if name.endswith("-web"):
            _assert_gunicorn_serves_the_project(words)
            probe = container["readinessProbe"]["httpGet"]
            assert resolve(probe["path"]).url_name == "health"
            hosts = [h["value"] for h in probe.get("httpHeaders", []) if h["name"].lower() == "host"]
            assert hosts and hosts[0] in allowed_hosts, "probes send the pod IP as Host unless told otherwise"
        elif name.endswith(("-worker", "-beat")):
            _assert_celery_runs_the_project_app(words, name.rsplit("-", 1)[1])
        else:
            assert words[:3] == ["python", "manage.py", "migrate"]
    (beat,) = [doc for doc in k8s_documents() if doc["metadata"]["name"] == "modelgate-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"


# --- the CI example and the documentation ------------------------------------------------


def _workflow_curl_calls() -> list[str]:
    """Each curl invocation of the workflow's scripts, with the lines that continue it."""
    workflow = yaml.safe_load(CI_WORKFLOW.read_text())
    scripts = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    calls = []
    for script in scripts:
        for chunk in re.split(r"\n\s*(?=\S+=\$\(curl |curl )", script):
            if "curl " in chunk:
                calls.append(chunk[chunk.index("curl ") :].split("\n\n")[0])
    return calls


def test_the_ci_example_sends_an_idempotency_key_and_a_token_with_every_post() -> None:
    posts = [call for call in _workflow_curl_calls() if "-X POST" in call]
    assert len(posts) == 2, "register, then request the promotion"
    for call in posts:
        assert "Idempotency-Key:" in call, call
    for call in _workflow_curl_calls():
        assert "Authorization: Bearer $MODELGATE_TOKEN" in call, call


def test_every_api_call_of_the_ci_example_resolves_to_a_view_that_accepts_its_method() -> None:
    from django.urls import resolve

    sample = {"MODELGATE_URL": "", "MODEL_NAME": "fraud-detector", "VERSION": "3", "TRANSITION": "7"}
    paths = []
    for call in _workflow_curl_calls():
        (url,) = re.findall(r'"\$MODELGATE_URL(/api/v1/[^"]*)"', call)
        path = substitute(url, sample)
        method = "post" if "-X POST" in call else "get"
        assert hasattr(resolve(path).func.view_class, method), f"{method.upper()} {path} is not served"
        paths.append((method, resolve(path).url_name))
    assert paths == [("post", "version-list"), ("post", "transition-request"), ("get", "transition-detail")]
    text = CI_WORKFLOW.read_text()
    assert "{to: $to, reason: $reason}" in text
    assert all(status in text for status in ("pending", "applied", "blocked"))


def test_the_deploy_guide_documents_every_variable_and_service_the_deployment_files_use() -> None:
    """Settings added elsewhere are documented with them; what deploy/ sets must be here."""
    guide = DEPLOY_DOC.read_text()
    variables = {name for service in application_services().values() for name in environment(service)}
    variables |= {name for _, container in k8s_containers() for name in k8s_environment(container)}
    variables |= {name for text in strings(compose()) for name in interpolated_names(text)}
    undocumented = sorted(name for name in variables if f"`{name}`" not in guide)
    assert not undocumented, f"docs/deploy.md does not explain {undocumented}"
    missing_services = sorted(name for name in services() if f"`{name}`" not in guide)
    assert not missing_services, f"docs/deploy.md does not describe {missing_services}"


# --- the serving image: one model version on MLflow's scoring server -------------------------


def serving_dockerfile(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile_instructions(SERVING_DOCKERFILE) if name == keyword]


def serving_args() -> dict[str, str]:
    return dict(arguments.partition("=")[::2] for arguments in serving_dockerfile("ARG"))


def serving_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in serving_dockerfile("ENV"):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            values[name] = value
    return values


def serving_command() -> list[str]:
    (cmd,) = serving_dockerfile("CMD")
    return json.loads(cmd)


def serving_healthcheck() -> list[str]:
    (check,) = serving_dockerfile("HEALTHCHECK")
    return json.loads(check.split(" CMD ", 1)[1])


def requirement_pin(name: str) -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(\[[^]]*\])?==(?P<version>\S+)", line.strip())
        if match:
            return match["version"]
    raise AssertionError(f"requirements.txt does not pin {name}")


def test_the_serving_image_starts_from_a_pinned_python_of_the_modelgate_images_minor_version() -> None:
    (base,) = serving_dockerfile("FROM")
    pinned = re.fullmatch(r"python:(?P<minor>3\.\d+)\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base)
    assert pinned, f"{base} names no patch release and Debian release"
    (modelgate_base,) = dockerfile("FROM")
    assert modelgate_base.startswith(f"python:{pinned['minor']}-"), "the model runs on the Python it was trained on"


def test_the_serving_image_pins_the_mlflow_version_modelgate_runs() -> None:
    assert serving_args()["MLFLOW_VERSION"] == requirement_pin("mlflow")
    installs = [run for run in serving_dockerfile("RUN") if "pip install" in run]
    assert any(re.search(r'pip install "?mlflow==\$\{MLFLOW_VERSION\}"?', run) for run in installs)
    # The model's own requirements may not move MLflow: they are installed under a constraint.
    (model_install,) = [run for run in installs if "requirements.txt" in run]
    assert "mlflow==${MLFLOW_VERSION}" in model_install
    assert re.search(r"pip install -c (\S+) -r \S+/requirements\.txt", model_install)


def test_the_serving_image_bakes_in_the_model_directory_and_refuses_one_without_mlmodel() -> None:
    from mlflow.pyfunc import scoring_server

    assert "MODEL_DIR" in serving_args()
    (copy,) = serving_dockerfile("COPY")
    source, destination = shlex.split(copy)
    assert source == "${MODEL_DIR}"
    # The variable MLflow's scoring app loads its model from (`mlflow models serve` sets it).
    assert serving_env()[scoring_server._SERVER_MODEL_PATH] == destination
    instructions = dockerfile_instructions(SERVING_DOCKERFILE)
    copied = instructions.index(("COPY", copy))
    (check,) = [(i, run) for i, (name, run) in enumerate(instructions) if name == "RUN" and "MLmodel" in run]
    assert check[0] > copied and f"test -f {destination}/MLmodel" in check[1]


def test_the_serving_image_runs_as_the_unprivileged_user_the_manifests_ask_for() -> None:
    from lifecycle.deployments.kubernetes import SERVING_UID

    uid, _, gid = serving_dockerfile("USER")[-1].partition(":")
    # Numeric, so that the kubelet can check runAsNonRoot against the image.
    assert uid.isdigit() and gid.isdigit() and int(uid) == SERVING_UID != 0
    assert any(f"--uid {uid}" in run for run in serving_dockerfile("RUN"))
    instructions = dockerfile_instructions(SERVING_DOCKERFILE)
    last_user = max(i for i, (name, _) in enumerate(instructions) if name == "USER")
    last_run = max(i for i, (name, _) in enumerate(instructions) if name == "RUN")
    assert last_run < last_user, "nothing runs as root after the switch to the serving user"


def test_the_serving_image_runs_the_scoring_server_the_replicas_run_on_port_8080() -> None:
    import importlib.util

    from mlflow.pyfunc import scoring_server

    from lifecycle.deployments import kubernetes

    words = serving_command()
    # What `mlflow models serve --env-manager local` (a replica's program) execs.
    replica_words = shlex.split(scoring_server.get_cmd("/opt/model", port=5000, host="127.0.0.1", nworkers=1)[0])
    assert words[0] == replica_words[0] == "uvicorn"
    assert words[-1] == replica_words[-1] == "mlflow.pyfunc.scoring_server.app:app"
    assert importlib.util.find_spec(words[-1].split(":")[0]) is not None
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert int(words[words.index("--port") + 1]) == kubernetes.SERVING_PORT == 8080
    assert serving_dockerfile("EXPOSE") == ["8080"]
    health = urlsplit(_health_url(serving_healthcheck()))
    assert (health.path, health.port) == (kubernetes.HEALTH_PATH, 8080) == ("/ping", 8080)


def test_the_serving_image_reaches_no_network_at_run_time() -> None:
    from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY

    env = serving_env()
    assert env[MLFLOW_DISABLE_TELEMETRY.name] == "true" and env["DO_NOT_TRACK"] == "true"
    assert env["PIP_NO_INDEX"] == "1", "nothing is installed once the image is built"
    for url in re.findall(r"https?://[^'\" ]+", " ".join(serving_command() + serving_healthcheck())):
        assert urlsplit(url).hostname in {"127.0.0.1", "localhost"}, url


@pytest.fixture(scope="module")
def baked_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the image's build context holds: an MLflow model directory."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    features = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5)
    labels = np.array([0, 1, 1, 1] * 5)
    path = tmp_path_factory.mktemp("serving-image") / "model"
    mlflow.sklearn.save_model(LogisticRegression().fit(features, labels), path)
    return path


def test_the_serving_images_command_serves_the_baked_in_model_and_passes_its_health_check(
    baked_model: Path, tmp_path: Path
) -> None:
    """The image's CMD, ENV and HEALTHCHECK, run here as they would run in the container
    (with the model's path and a free port substituted)."""
    import signal
    import socket
    import time
    import urllib.request

    from mlflow.pyfunc import scoring_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "LANG": "C.UTF-8",
        **serving_env(),
        "HOME": str(tmp_path),
        scoring_server._SERVER_MODEL_PATH: str(baked_model),
    }
    command = [str(port) if word == "8080" else word for word in serving_command()]
    log = tmp_path / "scoring-server.log"
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"/ping did not answer: {log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        check = [word.replace(":8080/", f":{port}/") for word in serving_healthcheck()]
        assert subprocess.run(check, env=env, timeout=30).returncode == 0
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": [[0.0, 0.0], [1.0, 1.0]]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read())["predictions"] == [0, 1]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert returncode in (0, -signal.SIGTERM), log.read_text()[-2000:]
    assert "Application shutdown complete" in log.read_text()


def test_the_deployments_guide_shows_how_to_build_and_run_the_serving_image() -> None:
    guide = (REPO / "docs" / "deployments.md").read_text()
    assert "docker build -f deploy/Dockerfile.serving" in guide
    assert "--build-arg MODEL_DIR=" in guide
