"""The stage and role names that lifecycle's rules engine copies agree with
``registry.choices``, which owns them: the engine keeps its own copies so that it stays
importable without Django, and a copy that drifts would judge policies by stages or
roles the platform does not have."""

from __future__ import annotations

from lifecycle.governance import rules
from registry.choices import ROLE_RANK, Role, Stage


def test_the_rules_engine_knows_the_registry_stages_by_the_same_names():
    assert set(rules.STAGES) == set(Stage.values)
    assert set(rules.GATED_STAGES) <= set(Stage.values)
    assert set(rules.DEFAULT_STAGES) <= set(Stage.values)


def test_the_rules_engine_knows_the_registry_roles_by_the_same_names():
    assert set(rules.ROLES) == set(Role.values)


def test_the_rules_engine_ranks_roles_as_the_registry_does():
    assert rules.ROLE_RANK == {str(role): rank for role, rank in ROLE_RANK.items()}
