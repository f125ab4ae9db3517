"""Usage errors and destructive commands: one `error:` line and exit 2, never a box or a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

STAFET = str(Path(sys.executable).parent / "stafet")


@pytest.mark.parametrize(("command", "says"), [
    (["clock", "--date", "2024-13-01"], "'2024-13-01' does not match the formats '%Y-%m-%d'"),
    (["ledger", "statement", "--institution", "x", "--format", "xml"], "'xml' is not one of 'table', 'csv'"),
    (["finance", "payout", "--from", "yesterday", "--to", "2024-01-01", "--out", "x"], "--from"),
    (["export", "payments", "--format", "xlsx", "--out", "x"], "'xlsx' is not one of"),
    (["ledger", "verify", "--nope"], "No such option: --nope"),
    (["finance", "payout", "--from", "2024-01-01", "--to", "2024-01-31", "--out", "x", "--locale", "fr"],
     "unknown locale 'fr'"),
    (["finance", "payout", "--from", "2024-01-01", "--to", "2024-01-31", "--out", "x", "--profile", "sparekassen"],
     "no bank profile 'sparekassen' (profiles: danske-bank, jyske-bank, nordea)"),
    (["finance", "payout", "--from", "2024-01-01", "--to", "2024-01-31", "--out", "x", "--format", "postings",
      "--chart", "no-such-chart.yaml"], "not a valid chart of accounts file"),
    (["finance", "payout", "--from", "2024-01-01", "--to", "2024-01-31", "--out", "."],
     ". exists; nothing written (use --yes to overwrite)"),
    (["finance", "import", "no-such-answer.xml"], "no-such-answer.xml: cannot read it: No such file or directory"),
    (["ledger", "rebuild"], "pass --yes"),
    (["verifier", "rebuild"], "pass --yes"),
])
def test_a_usage_error_or_an_unconfirmed_destructive_command_is_one_error_line(
        command: list[str], says: str, tmp_path: Path) -> None:
    done = subprocess.run([STAFET, *command], capture_output=True, text=True, timeout=120, check=False,
                          cwd=tmp_path, stdin=subprocess.DEVNULL)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert says in lines[0]


def test_a_group_without_a_command_shows_its_help() -> None:
    done = subprocess.run([STAFET, "finance"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert "payout" in done.stdout
