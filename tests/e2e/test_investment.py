"""A social impact bond end to end: an investor's commitment and tranches, outcomes the
live verifier pays to the investor, finance's settlements, a fund's budget and savings,
and the close, through the live verifier and ledger; the ledger's investor statement
equals the pure calculation (shared/domain/investment/) to the øre, forged and bad records are
dead-lettered by name, redeliveries change nothing, and a rebuild reproduces the chain.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from services.ledger.rebuild import rebuild_ledger
from shared.domain.events import Transition
from shared.domain.investment.figures import CashFlow, irr, money_multiple
from shared.domain.investment.records import (
    FundEstablished,
    InvestmentCommitted,
    InvestmentDisbursed,
    InvestmentRecord,
    SavingsReturned,
)
from shared.domain.investment.returns import close
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import DEAD_LETTERS, INVESTMENTS, PAYMENTS, TRANSITIONS, in_namespace
from tests.e2e.test_finance import stafet
from tests.e2e.test_verifier import published_instructions
from tests.kafka_helpers import produce, publish_watermark, read_all
from tests.ledger_helpers import chain_report
from tests.servers import Servers
from tests.unit.builders import transition

pytestmark = pytest.mark.e2e
SIB = REPO_ROOT / "examples" / "contracts" / "sib-youth-education.yaml"
INVESTOR, FUND, CONTRACT = "nordic-impact-investor", "sonderborg-social-investment-fund", "sib-youth-education"
COMPLETIONS = 12  # of the 40 the investor hoped for: the outcomes fall short
WAIT_S = 120.0


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def completion(n: int) -> Transition:
    subject = "k1:" + hashlib.sha256(f"sib-{n}".encode()).hexdigest()
    return transition(f"sib-completed-{n}", f"2023-{1 + n % 12:02d}-15", "exam-authority", "exam_authority",
                      {"type": "education_completed", "programme": "hhx", "level": "youth"},
                      subject=subject, birth=dt.date(2005, 3, 1))


INVESTOR_RECORDS: list[InvestmentRecord] = [
    InvestmentCommitted(commitment_id="nii-sib", investor=INVESTOR, provider="jobvejen", contract_id=CONTRACT,
                        amount_minor=200_000_000, currency="DKK", committed_on=d("2021-01-01")),
    InvestmentDisbursed(disbursement_id="nii-sib-1", commitment_id="nii-sib", investor=INVESTOR,
                        amount_minor=120_000_000, currency="DKK", disbursed_on=d("2021-01-04")),
    InvestmentDisbursed(disbursement_id="nii-sib-2", commitment_id="nii-sib", investor=INVESTOR,
                        amount_minor=80_000_000, currency="DKK", disbursed_on=d("2022-01-03")),
    # Beyond the commitment: refused by the ledger as over_commitment.
    InvestmentDisbursed(disbursement_id="nii-sib-3", commitment_id="nii-sib", investor=INVESTOR,
                        amount_minor=1, currency="DKK", disbursed_on=d("2022-06-01")),
    # The fund finances a pilot of its own, and the municipality pays back what it saved.
    InvestmentCommitted(commitment_id="fund-pilot", investor=FUND, provider="alsvaerket", contract_id="pilot-1",
                        amount_minor=50_000_000, currency="DKK", committed_on=d("2021-02-01")),
    InvestmentDisbursed(disbursement_id="fund-pilot-1", commitment_id="fund-pilot", investor=FUND,
                        amount_minor=50_000_000, currency="DKK", disbursed_on=d("2021-02-01")),
]
FINANCE_RECORDS: list[InvestmentRecord] = [
    FundEstablished(fund=FUND, payer="sonderborg-kommune", budget_minor=400_000_000, currency="DKK",
                    established_on=d("2021-01-01")),
    SavingsReturned(return_id="pilot-1-2023", fund=FUND, contract_id="pilot-1", payer="sonderborg-kommune",
                    amount_minor=65_000_000, currency="DKK", returned_on=d("2024-01-02")),
]


def jsonl(path: Path, records: list[InvestmentRecord]) -> Path:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return path


async def scalar(database_url: str, query: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(query))
    finally:
        await connection.close()


async def until(condition: object, what: str, services: list[ServiceProcess]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await condition():  # type: ignore[operator]
        assert all(s.running() for s in services), "a service died"
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def test_an_sib_that_falls_short_ends_in_the_investors_loss_as_the_pure_calculation_says(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    env = {**service_env, "CONTRACT_FILES": str(SIB)}
    cli = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers,
           "STAFET_CREDENTIALS_DIR": service_env["STAFET_CREDENTIALS_DIR"]}
    investments = in_namespace(INVESTMENTS, namespace).name
    investment_rows = "SELECT count(*) FROM ledger_entries WHERE investment IS NOT NULL"
    verifier = ServiceProcess("verifier", env, tmp_path / "verifier.log")
    ledger = ServiceProcess("ledger", env, tmp_path / "ledger.log")
    verifier.start()
    ledger.start()
    try:
        # Finance first (the fund exists before it commits), then the investors' records,
        # each signed by the investor it names; then the same file again: a redelivery.
        code, out, err = await stafet(cli, "invest", "publish", str(jsonl(tmp_path / "fin.jsonl", FINANCE_RECORDS[:1])),
                                      "--topic", investments)
        assert code == 0, err
        await until(lambda: _count(database_url, investment_rows, 1), "the fund", [verifier, ledger])
        investor_file = jsonl(tmp_path / "investors.jsonl", INVESTOR_RECORDS)
        for _ in range(2):
            code, out, err = await stafet(cli, "invest", "publish", str(investor_file), "--topic", investments)
            assert code == 0, err
        code, out, err = await stafet(cli, "invest", "publish", str(jsonl(tmp_path / "sav.jsonl", FINANCE_RECORDS[1:])),
                                      "--topic", investments)
        assert code == 0, err
        # Forged: a disbursement signed by finance, and one by another investor's key.
        forged = InvestmentDisbursed(disbursement_id="forged", commitment_id="nii-sib", investor=INVESTOR,
                                     amount_minor=1, currency="DKK", disbursed_on=d("2022-02-01"))
        for signer in ("finance:dev", f"investor:{FUND}"):
            await produce(servers.bootstrap_servers, investments, [forged.model_dump_json().encode()],
                          keys=[INVESTOR.encode()], signed_as=signer, principal="investor")
        # The fund, two commitments, three accepted disbursements and the savings: seven.
        await until(lambda: _count(database_url, investment_rows, 7), "seven investment entries", [verifier, ledger])

        # Twelve completions (2023), the clock past them: the verifier pays the investor.
        completions = [completion(n) for n in range(COMPLETIONS)]
        transitions = in_namespace(TRANSITIONS, namespace).name
        await produce(servers.bootstrap_servers, transitions, [t.model_dump_json().encode() for t in completions],
                      keys=[t.subject.encode() for t in completions])
        await publish_watermark(servers.bootstrap_servers, transitions, d("2025-01-01"))
        await until(lambda: _count(database_url, "SELECT count(*) FROM ledger_entries WHERE kind = 'payment'",
                                   COMPLETIONS), "the outcome payments", [verifier, ledger])
        paid = [i for i in await published_instructions(servers, namespace) if i.payee == INVESTOR]
        assert len(paid) == COMPLETIONS
        settled_on = {p.payment_id: p.occurred_on + dt.timedelta(days=30 + n) for n, p in enumerate(paid)}
        (tmp_path / "settle.jsonl").write_text("".join(json.dumps(
            {"settlement_id": f"bank-{p.payment_id[:12]}", "payment_id": p.payment_id, "status": "paid",
             "settled_on": settled_on[p.payment_id].isoformat(), "bank_reference": f"REF-{n}"}) + "\n"
            for n, p in enumerate(paid)), encoding="utf-8")
        settlements_env = {**cli, "STAFET_TOPIC_NAMESPACE": namespace}
        code, out, err = await asyncio.to_thread(_settle, settlements_env, tmp_path / "settle.jsonl")
        assert code == 0, err
        await until(lambda: _count(database_url, "SELECT count(*) FROM ledger_entries WHERE kind = 'settled'",
                                   COMPLETIONS), "the settlements", [verifier, ledger])

        code, out, err = await stafet(cli, "invest", "close", "--contract", str(SIB), "--on", "2031-01-01",
                                      "--topic", investments)
        assert code == 0, err
        # Wait for the close itself: a count of investment rows alone could be met by the
        # savings entry before the close is applied.
        await until(lambda: _count(database_url, "SELECT count(*) FROM ledger_entries WHERE kind = 'investment_closed'",
                                   1), "the close", [verifier, ledger])

        # The pure calculation from what the test itself sent and the verifier paid.
        municipality_paid = sum(p.amount_minor for p in paid)
        assert municipality_paid == COMPLETIONS * 6_000_000 < 200_000_000
        verdict = close(200_000_000, municipality_paid, Decimal("0.20"))
        flows = [CashFlow(d("2021-01-04"), -120_000_000), CashFlow(d("2022-01-03"), -80_000_000),
                 *(CashFlow(settled_on[p.payment_id], p.amount_minor) for p in paid)]
        code, out, err = await stafet(cli, "ledger", "investors", "--format", "csv")
        assert code == 0, err
        rows = {(r["investor"], r["contract_id"]): r for r in csv.DictReader(io.StringIO(out))}
        sib = rows[(INVESTOR, CONTRACT)]
        assert (int(sib["committed_minor"]), int(sib["disbursed_minor"]), int(sib["repaid_minor"])) == (
            200_000_000, 200_000_000, municipality_paid)
        assert (sib["status"], int(sib["loss_minor"]), int(sib["return_minor"]), int(sib["guarantee_minor"])) == (
            "closed", verdict.loss_minor, 0, 0)
        assert verdict.loss_minor == 200_000_000 - municipality_paid
        multiple = money_multiple(flows)
        assert multiple is not None
        assert sib["multiple_exact"] == f"{multiple.numerator}/{multiple.denominator}"
        assert sib["irr"] == str(irr(flows))
        code, out, err = await stafet(cli, "ledger", "investor", "--investor", INVESTOR, "--format", "csv")
        assert code == 0, err
        statement = [(r["date"], int(r["amount_minor"])) for r in csv.DictReader(io.StringIO(out))]
        assert sorted(statement) == sorted((f.day.isoformat(), f.amount_minor) for f in flows)
        # The fund: budget 4,000,000, 500,000 out to its pilot, 650,000 of savings back.
        code, out, err = await stafet(cli, "ledger", "funds", "--format", "csv")
        fund = next(csv.DictReader(io.StringIO(out)))
        assert (int(fund["disbursed_minor"]), int(fund["received_minor"]), int(fund["available_minor"])) == (
            50_000_000, 65_000_000, 415_000_000)

        letters = [json.loads(v) for _, v in await read_all(servers.bootstrap_servers,
                                                            in_namespace(DEAD_LETTERS, namespace).name)]
        reasons = sorted(letter["reason"] for letter in letters if letter["service"] == "ledger")
        # The over-commitment is refused each time it is delivered (the file went twice).
        assert reasons == ["over_commitment", "over_commitment", "unauthenticated_investment",
                           "unauthenticated_investment"]
    finally:
        verifier.stop()
        ledger.stop()

    # The chain holds, and a rebuild from the journal reproduces it and the positions.
    before = await chain_report(database_url)
    assert before.ok, before.problem
    report = await rebuild_ledger(database_url, servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name)
    assert report.head_hash == before.head_hash
    code, again, err = await stafet(cli, "ledger", "investors", "--format", "csv")
    assert code == 0, err
    assert list(csv.DictReader(io.StringIO(again))) == list(rows.values())


async def _count(database_url: str, query: str, wanted: int) -> bool:
    return await scalar(database_url, query) >= wanted


def _settle(env: dict[str, str], path: Path) -> tuple[int, str, str]:
    # `stafet settle` publishes to the settlements topic of the namespace it was started
    # in: run as a process, as finance would, so the namespace is read at start.
    stafet_bin = Path(sys.executable).parent / "stafet"
    run = subprocess.run([str(stafet_bin), "settle", str(path)], env={**os.environ, **env},
                         capture_output=True, text=True, check=False, timeout=120)
    return run.returncode, run.stdout, run.stderr

