"""The documented commands are ones the command accepts: every ``modelgate`` line of the
GitHub Actions workflows in ``docs/ci-github-actions.md`` and of the examples in
``docs/cli.md`` parses with the command's own parser."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from modelgate.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _commands(script: str) -> list[list[str]]:
    """The ``modelgate`` command lines of a shell script, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    found = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ")
        if line.startswith("modelgate "):
            argv = shlex.split(line.split(" > ")[0].split(" | ")[0], comments=True)[1:]
            found.append([re.sub(r"\$\{?(\w+)\}?", _sample, arg) for arg in argv])
    return found


def _sample(variable: re.Match[str]) -> str:
    """A value of the right kind for a shell variable: a number for a version."""
    return "3" if variable.group(1).lower() == "version" else "value"


def _parses(argv: list[str]) -> bool:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exit:  # --version and --help exit 0 once printed
        return exit.code == 0
    return True


def _workflows() -> list[dict]:
    text = (DOCS / "ci-github-actions.md").read_text()
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def _workflow_commands() -> list[list[str]]:
    return [
        argv
        for workflow in _workflows()
        for job in workflow["jobs"].values()
        for step in job["steps"]
        for argv in _commands(step.get("run", ""))
    ]


def test_the_workflow_registers_then_promotes_to_staging_then_production_waiting_each_time():
    steps = [(argv[0], argv[argv.index("--to") + 1] if "--to" in argv else None) for argv in _workflow_commands()]
    assert steps == [
        ("register", None),
        ("promote", "staging"),
        ("promote", "production"),
        ("status", None),
        ("rollback", None),
    ]
    for argv in _workflow_commands()[:3]:
        assert "--wait" in argv and "--idempotency-key" in argv, argv


@pytest.mark.parametrize("argv", _workflow_commands(), ids=lambda argv: argv[0])
def test_every_command_of_the_workflows_parses(argv):
    assert _parses(argv), argv


def test_every_command_of_the_cli_guide_parses():
    text = (DOCS / "cli.md").read_text()
    commands = _commands(text)
    assert {argv[0] for argv in commands} >= {"login", "register", "promote", "status", "verify"}
    assert [argv for argv in commands if not _parses(argv)] == []


def test_a_command_with_a_misspelt_option_does_not_parse():
    assert not _parses(["promote", "--model", "m", "--version", "1", "--to", "prod"])
    assert not _parses(["register", "--model", "m"])
