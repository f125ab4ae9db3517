"""Every CLI command that talks to a server says so in one `error:` line and exits 2
when the server cannot be reached: never a traceback, never aiokafka's own log lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.platform.settings import REPO_ROOT

STAFET = str(Path(sys.executable).parent / "stafet")
NOWHERE = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "DATABASE_URL": "postgresql://x:secret@127.0.0.1:1/x"}
COMMANDS = [
    ["ledger", "balances"],
    ["ledger", "statement", "--institution", "daycare-solsikken"],
    ["ledger", "verify"],
    ["ledger", "rebuild", "--yes"],
    ["verifier", "rebuild", "--yes"],
    ["report", "--out", "unused.html"],
    ["clock", "--date", "2024-01-01"],
    ["db", "migrate"],
    ["contract", "apply", str(REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml")],
    ["publish", str(REPO_ROOT / "examples" / "events" / "sample.jsonl")],
    ["finance", "payout", "--from", "2024-01-01", "--to", "2024-12-31", "--out", "payout.xml"],
    ["finance", "payout", "--reissue", "STAFET-x", "--out", "payout.xml"],
    ["finance", "import", str(REPO_ROOT / "examples" / "finance" / "camt054.xml")],
    ["finance", "import", str(REPO_ROOT / "examples" / "finance" / "settlements.csv")],
    ["export", "payments", "--format", "parquet", "--out", "payments.parquet"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unreachable_server_is_one_error_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    done = subprocess.run([STAFET, *command], capture_output=True, text=True, timeout=120, check=False,
                          cwd=tmp_path, env={**os.environ, **NOWHERE}, stdin=subprocess.DEVNULL)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "secret" not in done.stderr + done.stdout


def test_version() -> None:
    done = subprocess.run([STAFET, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("stafet ")
