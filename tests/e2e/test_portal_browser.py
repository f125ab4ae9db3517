"""The institutions' portal as people use it: Chromium (driven by playwright-core) against
the real stack. The sample's events run through ingest, the verifier and the ledger; one
payment is settled; then a college's user logs in, reads the statement in Danish, opens a
line, switches to English, cannot open another institution's line, sees a POST without
its CSRF token refused, logs out; and a school's user name is locked after wrong passwords.

The amounts on the page are checked against the ledger's rows, formatted here by hand
(independently of the portal's Babel formatting)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pypdf
import pytest

from services.frontdoor.portal.accounts import development_password
from shared.domain.events import Settlement, SettlementStatus
from shared.platform.processes import ServiceProcess, start_services, stop_services
from shared.platform.settings import REPO_ROOT
from shared.platform.stack import free_port
from shared.platform.topics import INSTITUTION_EVENTS, SETTLEMENTS, TRANSITIONS, in_namespace
from tests.e2e.test_frontdoor import wait_until_serving
from tests.engine_replay import read_lines, sealed
from tests.kafka_helpers import produce, publish_watermark, wait_settled
from tests.servers import Servers

pytestmark = pytest.mark.e2e
BROWSER_TESTS = REPO_ROOT / "tests" / "e2e" / "browser"
MOBILITY = REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml"
SAMPLE = REPO_ROOT / "examples" / "events" / "sample.jsonl"
COLLEGE, SCHOOL = "sonderborg-gymnasium", "alsskolen"
# Where the screenshots for docs/portal.md go when asked (STAFET_PORTAL_SCREENSHOTS=docs/portal).
SCREENSHOTS = os.environ.get("STAFET_PORTAL_SCREENSHOTS")


def kroner_da(minor: int) -> str:
    """How a Danish reader writes an amount: 5.740,31 kr. (a no-break space before kr.)."""
    whole, ore = divmod(abs(minor), 100)
    return f"{'-' if minor < 0 else ''}{whole:,}".replace(",", ".") + f",{ore:02d}\xa0kr."


def kroner_en(minor: int) -> str:
    whole, ore = divmod(abs(minor), 100)
    return f"{'-' if minor < 0 else ''}DKK{whole:,}.{ore:02d}"


def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is needed for the portal's browser test"
    assert (BROWSER_TESTS / "node_modules" / "playwright-core").is_dir(), \
        "playwright-core is not installed: `make browser` runs npm ci in tests/e2e/browser"
    return found


# The operator's clock says every fact up to 30 June 2023 is in: the college's outcome (the
# youth education completed on 23 June 2023) is then in its review window, final on 8 July
# (15 days, the default review_days), with 8 days left.
REVIEW_WATERMARK = dt.date(2023, 6, 30)


async def in_the_browser(service_env: dict[str, str], tmp_path: Path, phase: str, script: str = "portal.mjs",
                         **extra: str) -> dict[str, Any]:
    """Start the front door, run `script`'s `phase` in Chromium, stop it: what the browser saw."""
    runner = node()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / f"frontdoor-{phase}.log"
    door = ServiceProcess("frontdoor", {**service_env, "FRONT_DOOR_PORT": str(port)}, log)
    shots = Path(SCREENSHOTS).resolve() if SCREENSHOTS else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    door.start()
    try:
        await wait_until_serving(base, door, log)
        env = {**os.environ, "BASE_URL": base, "USER": COLLEGE, "PASSWORD": development_password(COLLEGE),
               "SHOTS": str(shots), "HOME": str(tmp_path), "PHASE": phase,
               "AXE": str(BROWSER_TESTS / "node_modules" / "axe-core" / "axe.min.js"), **extra}
        result = await asyncio.to_thread(subprocess.run, [runner, str(BROWSER_TESTS / script)],
                                         cwd=BROWSER_TESTS, env=env, capture_output=True, text=True, timeout=240,
                                         check=False)
    finally:
        door.stop()
    assert result.returncode == 0, result.stderr[-4000:] + log.read_text()[-3000:]
    seen: dict[str, Any] = json.loads(result.stdout)
    seen["shots"] = str(shots)
    return seen


async def run_the_pipeline(servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
                           tmp_path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The sample through the services: first up to a watermark inside the college outcome's
    review window (what the browser sees then), then final; the college's payment settled.
    Its payment ids by payee, and what the browser saw during the review window."""
    services = start_services({**service_env, "CONTRACT_FILES": str(MOBILITY)}, tmp_path)
    try:
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name,
                      sealed(read_lines(SAMPLE)))
        await wait_settled(servers.bootstrap_servers, namespace, database_url, list(services.values()), 120,
                           stages=("ingest",), watermark=False)
        await publish_watermark(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name, REVIEW_WATERMARK)
        await wait_settled(servers.bootstrap_servers, namespace, database_url, list(services.values()), 120,
                           watermark=False)
        during_review = await in_the_browser(service_env, tmp_path, "provisional")
        await wait_settled(servers.bootstrap_servers, namespace, database_url, list(services.values()), 120)
        connection = await asyncpg.connect(database_url)
        try:
            payments = {r["payee"]: r["payment_id"] for r in await connection.fetch(
                "SELECT payee, payment_id FROM ledger_entries WHERE kind = 'payment'")}
        finally:
            await connection.close()
        settlement = Settlement(settlement_id="bank-1", payment_id=payments[COLLEGE], status=SettlementStatus.PAID,
                                settled_on=dt.date(2024, 1, 31), bank_reference="REF-1")
        await produce(servers.bootstrap_servers, in_namespace(SETTLEMENTS, namespace).name,
                      [settlement.model_dump_json().encode()], keys=[payments[COLLEGE].encode()])
        await wait_settled(servers.bootstrap_servers, namespace, database_url, list(services.values()), 120)
    finally:
        stop_services(services)
    return payments, during_review


async def test_an_institution_reads_its_statement_in_chromium_and_nothing_of_another(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    payments, during_review = await run_the_pipeline(servers, namespace, database_url, service_env, tmp_path)
    connection = await asyncpg.connect(database_url)
    try:
        college_amount = await connection.fetchval(
            "SELECT amount_minor FROM ledger_entries WHERE payee = $1 AND kind = 'payment'", COLLEGE)
        # Everything the college's outcome pays, to every payee (the page shows the others as one sum).
        outcome_total = await connection.fetchval(
            "SELECT sum(o.amount_minor)::bigint FROM ledger_entries o JOIN ledger_entries c"
            " ON (o.contract_id, o.outcome_id, o.subject) = (c.contract_id, c.outcome_id, c.subject)"
            " WHERE o.kind = 'payment' AND c.kind = 'payment' AND c.payee = $1", COLLEGE)
    finally:
        await connection.close()

    # During the review window: the college's outcome is expected money, nothing instructed;
    # the same amounts as were paid once it was final (the facts did not change).
    review = during_review["provisional"]
    assert review["statementRows"] == []
    (expected,) = review["rows"]
    assert expected["daysLeft"] == "8"
    counts_from, _, _, own, others, final_on, days_left = expected["cells"][:7]
    assert (counts_from, final_on, days_left) == ("23. jun. 2023", "8. jul. 2023", "8")
    assert own == kroner_da(college_amount)
    assert others == kroner_da(outcome_total - college_amount)
    assert review["detail"]["daysLeft"] == "8"
    assert review["detail"]["stays"] == [["10. aug. 2020", "23. jun. 2023", "a-8, a-9"]]
    assert review["axe"] == []

    seen = await in_the_browser(service_env, tmp_path, "final", LOCKED_USER=SCHOOL,
                                PASSWORD_OF_LOCKED=development_password(SCHOOL), OTHER_LINE=payments[SCHOOL],
                                OPERATOR_PASSWORD=development_password("operator"))
    shots = Path(seen["shots"])

    # Danish by default, from the log-in on.
    assert seen["login"]["url"].endswith("/portal/login")
    assert (seen["login"]["lang"], seen["login"]["heading"]) == ("da", "Log ind")
    statement = seen["statement"]
    assert (statement["lang"], statement["heading"]) == ("da", "Kontoudtog for Sønderborg Gymnasium")
    assert [row["payment"] for row in statement["rows"]] == [payments[COLLEGE]]  # its one line, no other's
    row = statement["rows"][0]
    assert row["state"] == "paid"
    assert row["cells"][2] == "Sønderborg Kommune (synthetic)"  # who pays (docs/tenancy.md)
    assert row["cells"][4] == kroner_da(college_amount)
    assert row["cells"][5].startswith("Betalt 31. jan. 2024")
    assert statement["total"] == kroner_da(college_amount)

    # The PDF the user downloaded from the page, read by a PDF reader: the same line and total.
    assert seen["pdf"]["name"].startswith("stafet-sonderborg-gymnasium-")
    assert seen["pdf"]["name"].endswith(".pdf")
    pdf = pypdf.PdfReader(seen["pdf"]["path"])
    pdf_text = "\n".join(page.extract_text() for page in pdf.pages).replace("\xa0", " ")
    assert "Kontoudtog for Sønderborg Gymnasium" in pdf_text
    assert kroner_da(college_amount).replace("\xa0", " ") in pdf_text
    assert "Betalt 31. jan. 2024" in pdf_text
    assert kroner_da(await _amount_of(database_url, payments[SCHOOL])).replace("\xa0", " ") not in pdf_text

    # The line opened: its own stay and days, the rest as one "other institutions" sum.
    detail = seen["detail"]
    assert detail["url"].endswith(f"/portal/lines/{payments[COLLEGE]}")
    assert detail["own"][0] == kroner_da(college_amount)
    assert detail["others"][0] == kroner_da(outcome_total - college_amount)
    assert detail["stays"] == [["10. aug. 2020", "23. jun. 2023", "a-8, a-9"]]
    assert int(detail["days"]) == (dt.date(2023, 6, 23) - dt.date(2020, 8, 10)).days + 1
    for other in ("Alsskolen", "Nordborg", "Solsikken", "a-3", "a-5", "a-10", "exam"):
        assert other not in detail["text"], other

    # English on request, the same line and amounts.
    english = seen["english"]
    assert english["lang"] == "en"
    assert english["url"].endswith(f"/portal/lines/{payments[COLLEGE]}")
    assert english["statementHeading"] == "Statement for Sønderborg Gymnasium"
    assert english["rows"][0][4] == kroner_en(college_amount)
    assert english["rows"][0][5].startswith("Paid 31 Jan 2024")

    # Another institution's line is not there for this one.
    assert seen["otherLine"]["status"] == 404
    assert "Your institution has no such line." in seen["otherLine"]["text"]
    assert kroner_en(await _amount_of(database_url, payments[SCHOOL])) not in seen["otherLine"]["text"]

    # No POST without the session's CSRF token; the session survived the attempts.
    assert seen["csrf"] == {"withoutToken": 403, "forged": 403, "statementAfter": 200}
    assert seen["afterLogout"]["url"].endswith("/portal/login")

    # Four wrong passwords are refused, the fifth locks the name, and then the right one is refused too.
    statuses = [attempt["status"] for attempt in seen["lockout"]]
    assert statuses == [401, 401, 401, 401, 429, 429]
    assert seen["lockout"][0]["problem"] == "Forkert brugernavn eller adgangskode."
    assert seen["lockout"][5]["problem"].startswith("For mange mislykkede log ind-forsøg")
    assert all(attempt["url"].endswith("/portal/login") for attempt in seen["lockout"])

    # The operator's overview: the contract's money as the ledger holds it; no statement.
    operator = seen["operator"]
    assert operator["heading"] == "Overblik for driftsansvarlige"
    assert operator["statementUrl"].endswith("/portal/operator")
    (mobility,) = [row for row in operator["contracts"] if row["contract"] == "mobility-bonus"]
    instructed, paid = await _instructed_and_paid(database_url, "mobility-bonus")
    # provisional, instructed, clawed back, paid, refused, returned, owed
    assert mobility["cells"][1] == kroner_da(instructed)
    assert mobility["cells"][3] == kroner_da(paid)
    assert mobility["cells"][6] == kroner_da(instructed - paid)

    # WCAG 2.1 A/AA rules that axe-core checks: no violations on the pages the user saw.
    for page in ("login", "statement", "detail", "operator"):
        assert seen[page]["axe"] == [], (page, seen[page]["axe"])
    assert seen["consoleErrors"] == []
    assert (shots / "statement.png").stat().st_size > 10_000


async def _amount_of(database_url: str, payment_id: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        amount: int = await connection.fetchval(
            "SELECT amount_minor FROM ledger_entries WHERE payment_id = $1 AND kind = 'payment'", payment_id)
    finally:
        await connection.close()
    return amount


async def _instructed_and_paid(database_url: str, contract_id: str) -> tuple[int, int]:
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT coalesce(sum(amount_minor) FILTER (WHERE kind = 'payment'), 0)::bigint AS instructed,"
            " coalesce(sum(amount_minor) FILTER (WHERE kind = 'settled'), 0)::bigint AS paid"
            " FROM ledger_entries WHERE contract_id = $1", contract_id)
    finally:
        await connection.close()
    return int(row["instructed"]), int(row["paid"])
