"""What ``pip install`` of the project gives: the ``modelgate`` command and the client
package, nothing of the service."""

from __future__ import annotations

import configparser
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from modelgate.cli import build_parser, main
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_client_package_and_declares_the_modelgate_command(tmp_path: Path):
    require_service("setuptools (to build the wheel offline)", importlib.util.find_spec("setuptools") is not None)
    # A copy, so the build leaves nothing in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "modelgate", source / "modelgate", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", "dist", "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )

    (wheel,) = (source / "dist").glob("modelgate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode())
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert {name.split("/")[0] for name in names if not name.startswith("modelgate-")} == {"modelgate"}
    assert "modelgate/cli.py" in names and "modelgate/client.py" in names
    assert dict(entry_points["console_scripts"]) == {"modelgate": "modelgate.cli:main"}
    assert "Requires-Dist: requests" in metadata


def test_every_command_of_the_issue_is_there_with_json_output():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {"login", "status", "register", "promote", "rollback", "deploy", "verify"}
    for name, sub in commands.items():
        options = {option for action in sub._actions for option in action.option_strings}
        assert "--json" in options, name


def test_a_missing_server_is_a_usage_error_as_json_on_stderr(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("MODELGATE_CONFIG", str(tmp_path / "absent.json"))
    monkeypatch.delenv("MODELGATE_URL", raising=False)
    monkeypatch.delenv("MODELGATE_TOKEN", raising=False)

    assert main(["status", "--model", "fraud-detector", "--json"]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert '"code": "usage"' in captured.err and "modelgate login --url" in captured.err
