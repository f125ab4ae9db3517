"""The demo's investment step: the SIB's investor finances the work, and the demo shows
its position (docs/investment.md).

Self-contained, so the demo's layout (`demo.py`) calls it in two places: before the
services start, the investor commits DKK 2,000,000 to the mentoring provider under the
SIB and pays it out in two tranches (signed with its development key, as `stafet invest
publish` signs); after the run, its position as the ledger holds it: disbursed, repaid
by the outcomes paid so far, at risk, money multiple and IRR.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import typer

from cli.reporting.page import money
from cli.signed import send_signed
from services.ledger.investor_queries import investor_positions
from shared.domain.investment.figures import FINANCE_RATE, REINVESTMENT_RATE, format_multiple, format_rate
from shared.domain.investment.position import Positions
from shared.domain.investment.records import InvestmentCommitted, InvestmentDisbursed, InvestmentRecord, record_key
from shared.domain.signing import RecordSigner
from shared.platform.topics import INVESTMENTS, in_namespace

INVESTOR = "nordic-impact-investor"
CONTRACT = "sib-youth-education"
PROVIDER = "mentor-programme"
RECORDS: tuple[InvestmentRecord, ...] = (
    InvestmentCommitted(commitment_id="demo-sib", investor=INVESTOR, provider=PROVIDER, contract_id=CONTRACT,
                        amount_minor=200_000_000, currency="DKK", committed_on=dt.date(2021, 1, 1)),
    InvestmentDisbursed(disbursement_id="demo-sib-1", commitment_id="demo-sib", investor=INVESTOR,
                        amount_minor=120_000_000, currency="DKK", disbursed_on=dt.date(2021, 1, 4)),
    InvestmentDisbursed(disbursement_id="demo-sib-2", commitment_id="demo-sib", investor=INVESTOR,
                        amount_minor=80_000_000, currency="DKK", disbursed_on=dt.date(2022, 1, 3)),
)
RECORDED_TIMEOUT_S = 120.0


async def finance_the_sib(bootstrap: str, namespace: str) -> None:
    await send_signed(bootstrap, "stafet-demo-investor", in_namespace(INVESTMENTS, namespace).name,
                      [(record_key(r).encode(), r.model_dump_json().encode()) for r in RECORDS],
                      RecordSigner.development(f"investor:{INVESTOR}"), principal="investor")


async def recorded_positions(database_url: str) -> Positions:
    """The positions once the ledger holds the investor's records (it reads them on a
    topic of their own, so they may arrive after the payments)."""
    deadline = time.monotonic() + RECORDED_TIMEOUT_S
    while True:
        positions = await investor_positions(database_url)
        found = positions.of(INVESTOR, CONTRACT)
        if found is not None and found.disbursed_minor == 200_000_000:
            return positions
        if time.monotonic() > deadline:
            raise RuntimeError(f"the ledger did not record the SIB's investment in {RECORDED_TIMEOUT_S}s")
        await asyncio.sleep(0.5)


def print_investor(positions: Positions) -> None:
    typer.echo("\nThe SIB's investor (docs/investment.md):")
    for p in positions.investors:
        c = p.currency
        typer.echo(f"  {p.investor} under {p.contract_id}: disbursed {money(p.disbursed_minor, c)}, "
                   f"repaid so far {money(p.repaid_minor, c)}, at risk {money(p.at_risk_minor, c)}; "
                   f"multiple {format_multiple(p.multiple)}, IRR {p.rates.shown()}, MIRR "
                   f"{format_rate(p.mirr(FINANCE_RATE, REINVESTMENT_RATE))} (finance and reinvestment at "
                   f"{format_rate(FINANCE_RATE)})")
