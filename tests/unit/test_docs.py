"""The README documents every setting, command and endpoint (and stays true)."""

from __future__ import annotations

from pathlib import Path

import click

from catalogue.api import cohorts, harvest, system, v1  # noqa: F401 - registers the operations
from catalogue.api.routing import OPERATIONS
from catalogue.cli import main
from catalogue.config import CONFIG_FILE_ENV, SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in README, f"{setting.env} missing from README"
    assert f"| `{CONFIG_FILE_ENV}` |" in README


def _commands(group: click.Group, prefix: str = "catalogue") -> list[str]:
    found = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            found += _commands(cmd, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_cli_command_is_in_the_readme() -> None:
    for command in _commands(main):
        assert f"| `{command}` |" in README, f"{command} missing from README"


def test_every_endpoint_is_in_the_readme() -> None:
    for op in OPERATIONS:
        assert f"`{op.method} {op.path}`" in README, f"{op.method} {op.path} missing from README"


def test_the_two_commands_are_there() -> None:
    assert "python3 -m pip install -e . && catalogue demo" in README
    assert "bash scripts/test.sh" in README
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
