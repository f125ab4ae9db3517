"""Every `--help` reads whole (issue 30): no default shown as an absolute source path,
every choice list printed whole on one line (not split mid-word across lines), no
escape sequences; and `stafet publish --help` says it takes CSV too."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app
from shared.platform.settings import REPO_ROOT

runner = CliRunner()


def command_paths() -> list[list[str]]:
    """Every command and group of `stafet`, as the words that reach it."""
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = command_paths()


def test_the_tree_has_every_command() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"contract check", "export", "finance payout", "indicators measure", "publish", "docs"} <= names
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "stafet")
@pytest.mark.parametrize("columns", [60, 100])
def test_help_shows_no_absolute_path_and_every_choice_whole(path: list[str], columns: int) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(columns)}, terminal_width=columns)
    assert result.exit_code == 0, result.output
    text = result.output
    assert str(REPO_ROOT) not in text.replace("\n", "").replace(" ", "")
    assert "\x1b" not in text
    assert "…" not in text  # nothing cut short
    for line in text.splitlines():
        # A metavar such as <outcomes|payments|balances|indicators> opens and closes on one
        # line (ranges such as 1<=x<=98 are not metavars).
        metavars = re.sub(r"[<>]=", "", line)
        assert metavars.count("<") == metavars.count(">"), f"split choices in {line!r}:\n{text}"
    assert not re.search(r"[╭│╰]", text)  # plain text, wrapped at words (no boxes that cut words)


def test_publish_help_says_it_takes_json_lines_or_csv() -> None:
    text = runner.invoke(app, ["publish", "--help"], terminal_width=100).output
    assert "CSV" in text
    assert "JSON Lines" in text
