"""The layout's rules, checked over every import in the code (lazy ones inside functions
too, since those are what hide a circle): stages only import the stages below them,
rooms only import the rooms below them, pure cores import no framework, and no module
reaches itself through its imports.

``docs/architecture.md`` describes the same rules in words.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "registry", "lifecycle", "frontend", "serving", "modelgate")

# Highest first: a module may import modules of its own floor or of floors below it.
# Within lifecycle, each stage is a floor of its own, in the order of the lifecycle:
# a later stage builds on the earlier ones (training has its runs evaluated,
# monitoring will roll back through governance), never the other way round.
FLOORS: tuple[tuple[str, ...], ...] = (
    # The command line and its client, installed on CI machines: a floor above everything
    # so nothing of the service imports it, and it imports nothing of the service
    # (``test_the_client_package_imports_nothing_of_the_service``): it speaks HTTP.
    ("modelgate",),
    ("config.urls", "config.wsgi", "config.asgi", "config.warmup", "config.middleware"),
    ("frontend",),
    # The serving gateway (the data plane): reads the route table the deployment stage
    # publishes and the registry's tokens, and nothing below it imports it.
    ("serving",),
    ("lifecycle.apps", "lifecycle.urls", "lifecycle.models", "lifecycle.admin", "lifecycle.management"),
    # Backup and restore read and write every app's rows, artifacts and MLflow's registry.
    ("lifecycle.backup",),
    ("lifecycle.derivations",),
    ("lifecycle.monitoring",),
    ("lifecycle.deployments",),
    ("lifecycle.training",),
    ("lifecycle.evaluation",),
    ("lifecycle.jobs",),
    ("lifecycle.design",),
    ("lifecycle.governance",),
    ("lifecycle.enqueue", "lifecycle.metric_direction"),
    # Settings and the log formatters they name (which redact with the registry's
    # ``redaction``): imported by no module below, Django reads them by name.
    ("config.settings", "config.logs"),
    ("registry",),
    ("config",),
)

# Rooms of a package, highest first: edges (HTTP, Celery, commands) over services,
# services over selectors, selectors over models.
EDGE_ROOMS = ("api", "views", "serializers", "urls", "tasks", "admin", "management", "apps")
LOWER_ROOMS = ("services", "selectors", "models", "choices")

# Computational cores and the job runner's host-side parts: plain Python, testable and
# benchmarkable without Django.
PURE_CORES = (
    "lifecycle.governance.rules",
    "lifecycle.design.card",
    "lifecycle.design.markdown",
    "lifecycle.jobs.scheduling",
    "lifecycle.jobs.spec",
    "lifecycle.jobs.runner",
    "lifecycle.jobs.inventory",
    "lifecycle.deployments.kubernetes",
    "lifecycle.derivations.methods",
    "lifecycle.evaluation.metrics",
    "lifecycle.evaluation.artifacts",
    "lifecycle.evaluation.measure",
    "lifecycle.monitoring.prediction_log",
    "lifecycle.monitoring.prediction_store",
    "lifecycle.monitoring.prediction_upkeep",
    "lifecycle.monitoring.scrape",
    "lifecycle.monitoring.live_metrics",
    "lifecycle.monitoring.profiles",
    "lifecycle.monitoring.drift",
    "lifecycle.monitoring.rules",
    "lifecycle.metric_direction",
    "registry.quickack",
    "serving.validation",
)
FRAMEWORKS = ("django", "rest_framework", "drf_spectacular", "celery")


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The first-party module ``name`` is, or is inside (``a.b.func`` -> ``a.b``); never
    an app's bare ``__init__``, which holds nothing."""
    while "." in name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports_of(module: str) -> Iterable[Import]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from a import b`` is an import of module a.b when b is a module.
                yield Import(module, f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno)


def _first_party_imports() -> list[Import]:
    edges = []
    for module in MODULES:
        for found in _imports_of(module):
            target = _resolve(found.target)
            if target is not None and target != module:
                edges.append(Import(found.source, target, found.line))
    return edges


IMPORTS = _first_party_imports()


def _floor(module: str) -> int | None:
    """Index into FLOORS of the most specific prefix naming the module's floor."""
    best, best_length = None, -1
    for index, floor in enumerate(FLOORS):
        for prefix in floor:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def _room(module: str) -> str | None:
    for part in module.split("."):
        if part in EDGE_ROOMS:
            return "edge"
        if part in LOWER_ROOMS:
            return part
    return None


def upward_imports(edges: Iterable[Import]) -> list[Import]:
    wrong = []
    for edge in edges:
        source, target = _floor(edge.source), _floor(edge.target)
        assert source is not None and target is not None, f"{edge}: a module on no floor of FLOORS"
        if target < source:
            wrong.append(edge)
    return wrong


def room_violations(edges: Iterable[Import]) -> list[Import]:
    """Services, selectors and models importing an edge (a view, serializer, task...),
    or models importing services or selectors."""
    wrong = []
    for edge in edges:
        source, target = _room(edge.source), _room(edge.target)
        if source in LOWER_ROOMS and target == "edge":
            wrong.append(edge)
        elif source in ("models", "choices") and target in ("services", "selectors"):
            wrong.append(edge)
    return wrong


def cycles(edges: Iterable[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_every_module_is_on_a_floor():
    # An app's bare ``__init__`` (``lifecycle``) holds nothing and belongs to no floor.
    assert [m for m in MODULES if "." in m and _floor(m) is None] == []


def test_no_import_points_up_a_floor_or_into_a_later_stage():
    assert [str(edge) for edge in upward_imports(IMPORTS)] == []


def test_services_selectors_and_models_never_import_an_edge():
    assert [str(edge) for edge in room_violations(IMPORTS)] == []


def test_the_frontend_calls_services_and_selectors_never_api_views():
    wrong = [e for e in IMPORTS if e.source.startswith("frontend") and ".api" in f".{e.target}"]
    assert [str(edge) for edge in wrong] == []


def test_no_module_reaches_itself_through_its_imports():
    assert cycles(IMPORTS) == []


def _impure(found: Import) -> bool:
    """A framework, or a first-party module that is no pure core."""
    if found.target.split(".")[0] in FRAMEWORKS:
        return True
    target = _resolve(found.target)
    return target is not None and not any(target == c or target.startswith(c + ".") for c in PURE_CORES)


@pytest.mark.parametrize("core", PURE_CORES)
def test_pure_cores_import_no_framework(core):
    members = [m for m in MODULES if m == core or m.startswith(core + ".")]
    assert members, f"{core} names no module"
    assert [str(found) for module in members for found in _imports_of(module) if _impure(found)] == []


CLIENT_PACKAGE = "modelgate"


def _service_import(found: Import) -> bool:
    """An import that only works inside the service: a framework, or a first-party module
    outside the client package."""
    top = found.target.split(".")[0]
    return top in FRAMEWORKS or (top in PACKAGES and top != CLIENT_PACKAGE)


def test_the_client_package_imports_nothing_of_the_service():
    members = [m for m in MODULES if m == CLIENT_PACKAGE or m.startswith(CLIENT_PACKAGE + ".")]
    assert members, f"{CLIENT_PACKAGE} names no module"
    assert [str(found) for module in members for found in _imports_of(module) if _service_import(found)] == []


# --- the checks themselves can fail ------------------------------------------------


def test_an_import_from_governance_into_a_stage_is_caught():
    edge = Import("lifecycle.governance.services.transitions", "lifecycle.evaluation.services", 1)
    assert upward_imports([edge]) == [edge]


def test_an_import_across_to_a_later_stage_is_caught_and_down_to_an_earlier_one_is_not():
    up = Import("lifecycle.evaluation.services", "lifecycle.training.services", 1)
    down = Import("lifecycle.training.services", "lifecycle.evaluation.services", 1)
    assert upward_imports([up, down]) == [up]


def test_a_service_importing_a_task_is_caught():
    edge = Import("lifecycle.jobs.services", "lifecycle.jobs.tasks", 1)
    assert room_violations([edge]) == [edge]


def test_a_pure_core_importing_django_or_a_model_is_caught():
    assert _impure(Import("lifecycle.jobs.spec", "django.db", 1))
    assert _impure(Import("lifecycle.jobs.spec", "lifecycle.jobs.models", 1))
    assert not _impure(Import("lifecycle.jobs.spec", "dataclasses", 1))


def test_a_circle_of_three_is_found():
    edges = [Import("a", "b", 1), Import("b", "c", 1), Import("c", "a", 1), Import("c", "d", 1)]
    assert cycles(edges) == [["a", "b", "c"]]


def test_the_client_importing_the_registry_or_django_is_caught():
    assert _service_import(Import("modelgate.cli", "registry.models", 1))
    assert _service_import(Import("modelgate.client", "django.conf", 1))
    assert not _service_import(Import("modelgate.cli", "modelgate.client", 1))
    assert not _service_import(Import("modelgate.client", "requests", 1))
