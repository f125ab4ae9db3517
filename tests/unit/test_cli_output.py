"""What the command line prints is plain where it is not a terminal, whole, aligned, and
its errors say what failed (issue 30): no escape sequences in a pipe even when Rich is
told to force colour, no names cut short, a suppressed cell that keeps its table aligned,
and a local file that cannot be written named as a file, not as a server that is down."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.demo import DemoResult, print_summary
from cli.reporting.data import MoneyRow, OutcomeRow, ReportData
from cli.terminal import table_lines
from shared.domain.contracts.loader import parse_contract
from shared.platform.settings import REPO_ROOT

STAFET = str(Path(sys.executable).parent / "stafet")
LONG_TITLE = "Social mobility bonus, youth education completed within five years of leaving school"


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAFET, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args", [
    ("--help",), ("export", "--help"), ("generate", "--subjects", "20", "--out", "events.jsonl"),
], ids=["help", "export-help", "generate-with-progress"])
def test_no_escape_sequence_reaches_a_pipe_even_when_colour_is_forced(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = run(*args, cwd=tmp_path, FORCE_COLOR="1", TERM="xterm-256color")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "\x1b" not in done.stderr


def test_a_file_that_cannot_be_written_is_named_as_a_file_not_a_server(tmp_path: Path) -> None:
    experiment = REPO_ROOT / "examples" / "experiments" / "exam-support.yaml"
    done = run("experiment", "assign", str(experiment), "--out", "/proc/no-such-dir/assignment.jsonl", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "error: file /proc/no-such-dir/assignment.jsonl: No such file or directory\n"


def summary_data() -> ReportData:
    contract = parse_contract(f"""contract_id: long
version: 1
title: {LONG_TITLE}
payer: sonderborg-kommune
currency: DKK
period: {{start: 2020-01-01, end: 2030-12-31}}
outcomes:
  - id: done
    trigger: {{event: education_completed}}
    price: {{kind: fixed, amount_minor: 100000}}
    distribution: {{kind: direct, payee: {{role: institution, institution: alsskolen}}}}
""")
    day = dt.date(2024, 6, 1)
    subjects = [f"k1:{n:064x}" for n in range(8)]
    outcomes = tuple(OutcomeRow("long", "done", "verified", None, day, 100000, s) for s in subjects)
    money = tuple(MoneyRow("long", "done", "alsskolen", "payment", 100000, day, s) for s in subjects)
    # Two children clawed back: a cell about too few subjects, suppressed in its column.
    clawed = tuple(MoneyRow("long", "done", "alsskolen", "clawback", 100000, day, s) for s in subjects[:2])
    return ReportData("t", (contract,), outcomes, money + clawed)


def test_the_demo_summary_shows_whole_names_and_stays_aligned_around_a_suppressed_cell(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    print_summary(DemoResult(summary_data(), 0, 0, 0, tmp_path / "report.html"), minimum_cell=5)
    out = capsys.readouterr().out
    assert LONG_TITLE in out
    table = out.split("Per contract:\n")[1].split("\n\n")[0].splitlines()
    header, row = table[0], table[1]
    assert "suppressed (too_few_subjects)" in row
    # Right-aligned figures: each header ends where its column's figure ends.
    for column in ("verified", "paid (net)", "clawed back", "budget left"):
        end = header.index(column) + len(column)
        assert row[end - 1] != " ", (column, header, row)
        assert end == len(row) or row[end] == " ", (column, header, row)


def test_a_table_widens_for_its_longest_cell_and_cuts_nothing() -> None:
    lines = table_lines(("name", "amount"), [["a" * 80, "1.00"], ["b", "suppressed (too_few_subjects)"]])
    assert lines[1].startswith("a" * 80)
    assert len({len(line) for line in lines}) == 1


LOG_ON_A_TERMINAL = """
import io, structlog
from shared.platform.logging import configure_logging
class Terminal(io.StringIO):
    def isatty(self):
        return True
out = Terminal()
configure_logging(stream=out)
structlog.get_logger().info("batch_verified", received=3)
print(repr(out.getvalue()))
"""


@pytest.mark.parametrize(("no_color", "coloured"), [(True, False), (False, True)], ids=["NO_COLOR", "colour"])
def test_log_lines_on_a_terminal_are_coloured_unless_no_color_is_set(no_color: bool, coloured: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | ({"NO_COLOR": "1"} if no_color else {})
    done = subprocess.run([sys.executable, "-c", LOG_ON_A_TERMINAL], capture_output=True, text=True, timeout=60,
                          check=True, env=env, cwd=REPO_ROOT)
    assert "batch_verified" in done.stdout
    assert ("\\x1b" in done.stdout) == coloured


def test_a_statement_shows_long_contract_and_outcome_ids_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The statement cut contract ids at 20 characters and outcome ids at 22."""
    from typer.testing import CliRunner

    from cli.main import app
    from services.ledger import queries
    from services.ledger.queries import Statement, StatementLine

    contract = "housing-area-exam-indicator-2024"
    outcome = "exam-improvement-beyond-the-rest"
    line = StatementLine(1, dt.date(2024, 3, 1), "payment", contract, outcome, "p" * 32, "", "DKK", 1_000_00, 0,
                         "pending")

    async def statement(*_: object, **__: object) -> Statement:
        return Statement("alsskolen", 0, 0, (line,))

    monkeypatch.setattr(queries, "institution_statement", statement)
    monkeypatch.setenv("DATABASE_URL", "postgresql://operator:x@127.0.0.1:1/x")
    result = CliRunner().invoke(app, ["ledger", "statement", "--institution", "alsskolen"])
    assert result.exit_code == 0, result.output
    assert contract in result.output
    assert outcome in result.output
    rows = [r for r in result.output.splitlines() if r.startswith(("date", "2024-03-01"))]
    assert len(rows) == 2
    assert rows[0].index("pending") + len("pending") == rows[1].index("1,000.00") + len("1,000.00")
