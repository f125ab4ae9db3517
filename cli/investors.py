"""`stafet ledger investors | funds | investor`: positions and statements of investors and
social investment funds, read from the ledger (docs/investment.md).

Figures: money in exact minor units (CSV gives both the minor units and the decimal);
the money multiple as an exact fraction (CSV) and to two decimals; the IRR to 10^-6 when
the flows have exactly one, else every rate and why none is shown; the MIRR at the stated
finance and reinvestment rates (shared/domain/investment/figures.py says how).
"""

from __future__ import annotations

import asyncio
import csv
import sys
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

import typer

from cli.errors import fail
from cli.terminal import table_lines
from shared.domain.currency import format_minor, is_currency
from shared.domain.investment.figures import (
    FINANCE_RATE,
    RATE_HIGH,
    RATE_LOW,
    REINVESTMENT_RATE,
    format_multiple,
    format_rate,
)
from shared.domain.investment.position import FundPosition, Position, Positions
from shared.platform.credentials import database_url


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"


def _positions() -> Positions:
    from services.ledger.investor_queries import investor_positions

    return asyncio.run(investor_positions(database_url("operator")))


def _money(minor: int | None, currency: str) -> str:
    if minor is None:
        return "-"
    return format_minor(minor, currency) if is_currency(currency) else f"{minor:,}"


def _decimal(minor: int | None, currency: str) -> str:
    return "" if minor is None else format_minor(minor, currency, grouping=False)


def _exact(position: Position) -> str:
    multiple = position.multiple
    return "" if multiple is None else f"{multiple.numerator}/{multiple.denominator}"


INVESTOR_COLUMNS = ("investor", "contract_id", "provider", "currency", "committed_minor", "disbursed_minor",
                    "undrawn_minor", "repaid_minor", "status", "closed_on", "return_minor", "loss_minor",
                    "guarantee_minor", "owed_back_minor", "multiple_exact", "multiple", "irr", "irr_rates",
                    "irr_note", "mirr", "finance_rate", "reinvestment_rate")


def _annual_rate(text: str) -> Decimal:
    """A rate a year as a decimal fraction (0.05 is 5 %), within the sane range."""
    try:
        rate = Decimal(text)
    except ArithmeticError:
        raise typer.BadParameter(f"{text!r} is not a decimal number (0.05 is 5 %)") from None
    if not RATE_LOW <= rate <= RATE_HIGH:
        raise typer.BadParameter(f"{text} is outside {RATE_LOW} .. {RATE_HIGH}")
    return rate


FinanceRate = Annotated[Decimal, typer.Option(
    parser=_annual_rate, metavar="RATE",
    help="The MIRR's finance rate, a year: what money paid out cost (0.05 is 5 %)")]
ReinvestmentRate = Annotated[Decimal, typer.Option(
    parser=_annual_rate, metavar="RATE",
    help="The MIRR's reinvestment rate, a year: what money received earned (0.05 is 5 %)")]


def investor_row(p: Position, finance_rate: Decimal = FINANCE_RATE,
                 reinvestment_rate: Decimal = REINVESTMENT_RATE) -> list[object]:
    v = p.verdict
    rates, modified = p.rates, p.mirr(finance_rate, reinvestment_rate)
    return [p.investor, p.contract_id, p.provider, p.currency, p.committed_minor, p.disbursed_minor,
            p.undrawn_minor, p.repaid_minor, "closed" if v else "open", p.closed_on.isoformat() if p.closed_on else "",
            v.return_minor if v else "", v.loss_minor if v else "", v.guarantee_minor if v else "",
            v.owed_back_minor if v else "", _exact(p), format_multiple(p.multiple).removesuffix("x"),
            "" if p.irr is None else str(p.irr), ";".join(str(r) for r in rates.rates), rates.reason,
            "" if modified is None else str(modified), str(finance_rate), str(reinvestment_rate)]


def _mirr_label(finance_rate: Decimal, reinvestment_rate: Decimal) -> str:
    return f"finance {format_rate(finance_rate)}, reinvestment {format_rate(reinvestment_rate)}"


def investors(
    output_format: Annotated[Format, typer.Option("--format", help="table or csv")] = Format.TABLE,
    finance_rate: FinanceRate = FINANCE_RATE,
    reinvestment_rate: ReinvestmentRate = REINVESTMENT_RATE,
) -> None:
    """Every investor's position per contract: committed, disbursed, repaid, and once
    closed the return rule's verdict (return, loss, guarantee); money multiple, IRR and MIRR."""
    positions = _positions()
    if output_format == Format.CSV:
        writer = csv.writer(sys.stdout)
        writer.writerow(INVESTOR_COLUMNS)
        writer.writerows(investor_row(p, finance_rate, reinvestment_rate) for p in positions.investors)
        return
    if not positions.investors:
        typer.echo("no investments in the ledger")
        return
    typer.echo(f"{'investor':<26} {'contract':<22} {'committed':>16} {'disbursed':>16} {'repaid':>16} "
               f"{'return':>14} {'loss':>14} {'multiple':>8} {'IRR':>10} {'MIRR':>10}  status")
    notes = []
    for p in positions.investors:
        v = p.verdict
        # Ids are printed whole: a wider id shifts its own row rather than losing its end.
        typer.echo(f"{p.investor:<26} {p.contract_id:<22} {_money(p.committed_minor, p.currency):>16} "
                   f"{_money(p.disbursed_minor, p.currency):>16} {_money(p.repaid_minor, p.currency):>16} "
                   f"{_money(v.return_minor if v else None, p.currency):>14} "
                   f"{_money(v.loss_minor if v else None, p.currency):>14} {format_multiple(p.multiple):>8} "
                   f"{format_rate(p.irr):>10} {format_rate(p.mirr(finance_rate, reinvestment_rate)):>10}  "
                   f"{'closed ' + str(p.closed_on) if v else 'open'} {p.currency}")
        if p.rates.reason:
            notes.append(f"{p.investor}, {p.contract_id}: IRR {p.rates.shown()}")
    typer.echo(f"MIRR at {_mirr_label(finance_rate, reinvestment_rate)}")
    for note in notes:
        typer.echo(note)


FUND_COLUMNS = ("fund", "payer", "currency", "budget_minor", "committed_minor", "disbursed_minor", "received_minor",
                "available_minor", "recycled_minor", "pilots")


def fund_row(f: FundPosition) -> list[object]:
    return [f.fund, f.payer, f.currency, f.budget_minor, f.committed_minor, f.disbursed_minor, f.received_minor,
            f.available_minor, f.recycled_minor, len(f.pilots)]


def funds(
    output_format: Annotated[Format, typer.Option("--format", help="table or csv")] = Format.TABLE,
) -> None:
    """Every social investment fund: its budget, what it financed, what came back from
    its pilots (outcome payments, savings), what is available and what it recycled."""
    positions = _positions()
    if output_format == Format.CSV:
        writer = csv.writer(sys.stdout)
        writer.writerow(FUND_COLUMNS)
        writer.writerows(fund_row(f) for f in positions.funds)
        return
    if not positions.funds:
        typer.echo("no funds in the ledger")
        return
    for f in positions.funds:
        c = f.currency
        typer.echo(f"Fund {f.fund} (set aside by {f.payer} on {f.established_on}): budget {_money(f.budget_minor, c)} {c}")
        typer.echo(f"  committed {_money(f.committed_minor, c)}, disbursed {_money(f.disbursed_minor, c)}, "
                   f"received back {_money(f.received_minor, c)}, available {_money(f.available_minor, c)}, "
                   f"recycled {_money(f.recycled_minor, c)} {c}")
        for p in f.pilots:
            typer.echo(f"  pilot {p.contract_id:<24} {p.provider:<20} disbursed {_money(p.disbursed_minor, c):>14} "
                       f"back {_money(p.repaid_minor, c):>14}  {format_multiple(p.multiple)}")


def investor(
    investor_id: Annotated[str, typer.Option("--investor", help="Investor or fund id")],
    contract: Annotated[str | None, typer.Option(help="Only this contract")] = None,
    output_format: Annotated[Format, typer.Option("--format", help="table or csv")] = Format.TABLE,
    finance_rate: FinanceRate = FINANCE_RATE,
    reinvestment_rate: ReinvestmentRate = REINVESTMENT_RATE,
) -> None:
    """An investor's statement: every dated cash flow per contract, its position and figures."""
    chosen = [p for p in _positions().investors
              if p.investor == investor_id and (contract is None or p.contract_id == contract)]
    if not chosen:
        fail(f"no investment by {investor_id}" + (f" under {contract}" if contract else "") + " in the ledger")
    if output_format == Format.CSV:
        writer = csv.writer(sys.stdout)
        writer.writerow(["investor", "contract_id", "date", "what", "currency", "amount_minor", "amount"])
        for p in chosen:
            writer.writerows([p.investor, p.contract_id, f.day.isoformat(), f.what, p.currency, f.amount_minor,
                              _decimal(f.amount_minor, p.currency)] for f in p.flows)
        return
    for p in chosen:
        c = p.currency
        typer.echo(f"Investor statement: {p.investor}, contract {p.contract_id} (provider {p.provider}), {c}")
        for line in table_lines(("date", "what", "amount"),
                                [[f.day.isoformat(), f.what, _money(f.amount_minor, c)] for f in p.flows],
                                left_columns=2):
            typer.echo(line)
        typer.echo(f"committed {_money(p.committed_minor, c)}, disbursed {_money(p.disbursed_minor, c)}, "
                   f"undrawn {_money(p.undrawn_minor, c)}, repaid {_money(p.repaid_minor, c)}")
        v = p.verdict
        if v is None:
            typer.echo(f"open: {_money(p.at_risk_minor, c)} at risk")
        else:
            typer.echo(f"closed {p.closed_on}: return {_money(v.return_minor, c)}, loss {_money(v.loss_minor, c)}, "
                       f"guarantee {_money(v.guarantee_minor, c)}, owed back {_money(v.owed_back_minor, c)}")
        typer.echo(f"money multiple {format_multiple(p.multiple)} ({_exact(p) or '-'}), IRR {p.rates.shown()}, "
                   f"MIRR {format_rate(p.mirr(finance_rate, reinvestment_rate))} "
                   f"({_mirr_label(finance_rate, reinvestment_rate)})")
