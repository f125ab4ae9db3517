"""The HTML report in a real browser: headless Chromium renders its charts."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.reporting.business_case import load_assumptions
from cli.reporting.html import render
from cli.reporting.simulate import simulate, transitions_of
from cli.synthetic.population import generate, to_json_line
from shared.domain.contracts.loader import load_contract
from shared.domain.events import Settlement, SettlementStatus
from shared.domain.institutions import InstitutionRegistry
from shared.platform.processes import start_services, stop_services
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import INSTITUTION_EVENTS, SETTLEMENTS, in_namespace
from tests.engine_replay import read_lines, sealed
from tests.kafka_helpers import produce, wait_settled
from tests.ledger_helpers import ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=8000", "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is needed for this test: `make test` installs Debian's chromium package"
    return found


def png_distinct_bytes(path: Path) -> int:
    """How varied the pixels are: a blank page decompresses to one or two byte values."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    return len(set(zlib.decompress(b"".join(chunks))))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    institutions, events = generate(400, seed=5)
    registry = InstitutionRegistry(institutions)
    transitions, _ = transitions_of((to_json_line(e) for e in events), registry)
    variants = [simulate(name, [load_contract(REPO_ROOT / "examples" / "contracts" / name)], transitions, registry)
                for name in ("mobility-bonus.yaml", "mobility-bonus-early-years.yaml")]
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render(variants, load_assumptions(REPO_ROOT / "examples" / "business-case.yaml"),
                           title="Browser test"), encoding="utf-8")
    return path


def without_scripts(dom: str) -> str:
    return re.sub(r"<script\b.*?</script>", "", dom, flags=re.DOTALL)


def table_rows(dom: str) -> list[list[str]]:
    """Every body row of every table on the rendered page, as the reader sees the cells."""
    page = without_scripts(dom)
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.DOTALL)]


def run_chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *arguments],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_the_report_renders_its_charts_without_console_errors(report: Path, tmp_path: Path) -> None:
    dom = run_chromium(tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 6, "Plotly did not draw the charts"
    # The word "sankey" is in the embedded Plotly source; only a drawn diagram has nodes.
    assert 'class="sankey-node"' in without_scripts(dom.stdout), "the Sankey diagram was not drawn"
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "error" in line.lower() or "Uncaught" in line], console


def test_a_screenshot_of_the_report_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = run_chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    assert png_distinct_bytes(shot) > 50


# ---- the live report, from a running pipeline --------------------------------------------

MOBILITY = REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml"
SAMPLE = REPO_ROOT / "examples" / "events" / "sample.jsonl"


def kroner(minor: int) -> str:
    """How the page writes an amount (independently of cli/reporting/html.money)."""
    whole, ore = divmod(minor, 100)
    return f"{whole:,}.{ore:02d} DKK"


async def test_the_live_report_shows_in_chromium_the_amounts_the_ledger_holds(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    raw = read_lines(SAMPLE)
    services = start_services({**service_env, "CONTRACT_FILES": str(MOBILITY)}, tmp_path)
    try:
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name, sealed(raw))
        await wait_settled(servers.bootstrap_servers, namespace, database_url, list(services.values()), 120)
        connection = await asyncpg.connect(database_url)
        try:
            college = await connection.fetchval(
                "SELECT payment_id FROM ledger_entries WHERE payee = 'sonderborg-gymnasium' AND kind = 'payment'")
        finally:
            await connection.close()
        settlement = Settlement(settlement_id="bank-1", payment_id=college, status=SettlementStatus.PAID,
                                settled_on=dt.date(2024, 1, 31), bank_reference="REF-1")
        await produce(servers.bootstrap_servers, in_namespace(SETTLEMENTS, namespace).name,
                      [settlement.model_dump_json().encode()], keys=[college.encode()])
        await wait_settled(servers.bootstrap_servers, namespace, database_url, list(services.values()), 120)
    finally:
        stop_services(services)
    state = await ledger_state(database_url)
    balances: dict[str, int] = state["balances"]  # type: ignore[assignment]
    # The ledger itself was checked against the oracle elsewhere; here, the page against the ledger.
    paid_net = -balances["budget:sonderborg-kommune:mobility-bonus"]
    settled = balances["receivable:sonderborg-gymnasium:paid"]
    assert (paid_net, settled) == (4_453_270, 574_031)  # worked example 2's college, settled

    # The sample has a handful of children: with the default minimum (5) the contract's
    # row is a small cell and the page shows the mark, not the ledger's amounts.
    protected = tmp_path / "protected.html"
    # The CLI runs its own event loop: off this test's loop, in a thread.
    result = await asyncio.to_thread(CliRunner().invoke, app, ["report", "--out", str(protected)],
                                     env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    assert kroner(paid_net) not in protected.read_text()
    assert "suppressed (too_few_subjects)" in protected.read_text()
    # With the one setting at 1 (nothing suppressed), the page against the ledger.
    page = tmp_path / "report.html"
    result = await asyncio.to_thread(CliRunner().invoke, app, ["report", "--out", str(page)],
                                     env={"DATABASE_URL": database_url, "MINIMUM_CELL": "1"})
    assert result.exit_code == 0, result.output
    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = "Social mobility bonus, youth education completed"
    contract_rows = [row for row in table_rows(dom.stdout) if row[:1] == [title] and len(row) == 9]
    assert len(contract_rows) == 1, table_rows(dom.stdout)
    _, verified, rejected, capped, pending, paid_cell, clawed_cell, settled_cell, _ = contract_rows[0]
    assert paid_cell == kroner(paid_net)
    assert settled_cell == kroner(settled)
    assert clawed_cell == kroner(0)
    assert (verified, capped, pending) == ("2", "0", "0")  # the exam passed and the education completed
    assert int(rejected) >= 1  # subject b's maths grade
    assert 'class="sankey-node"' in without_scripts(dom.stdout)
