"""The report's section on who financed the work and what they got back (docs/investment.md).

Its own module so the report's layout (`html.py`) takes it as one finished section: each
investor's position per contract (committed, disbursed, repaid, return or loss, money
multiple, IRR) and each social investment fund's budget, what came back and what it
recycled. Empty when the ledger holds no investment.
"""

from __future__ import annotations

from cli.reporting.page import money, table
from shared.domain.investment.figures import FINANCE_RATE, REINVESTMENT_RATE, format_multiple, format_rate
from shared.domain.investment.position import Positions


def _money(minor: int | None, currency: str) -> str:
    return "-" if not currency else money(minor, currency)


def investors_section(positions: Positions | None) -> str:
    if positions is None or not (positions.investors or positions.funds):
        return ""
    rows = []
    for p in positions.investors:
        v, c = p.verdict, p.currency
        outcome = ("open: " + _money(p.at_risk_minor, c) + " at risk") if v is None else (
            f"return {_money(v.return_minor, c)}" if v.return_minor else f"loss {_money(v.loss_minor, c)}"
            + (f", guarantee {_money(v.guarantee_minor, c)}" if v.guarantee_minor else ""))
        rows.append([p.investor, p.contract_id, _money(p.committed_minor, c), _money(p.disbursed_minor, c),
                     _money(p.repaid_minor, c), outcome, format_multiple(p.multiple), p.rates.shown(),
                     format_rate(p.mirr(FINANCE_RATE, REINVESTMENT_RATE))])
    section = ("<h2>Investors</h2><p class='note'>Who financed the work, and what the outcomes paid back "
               "under each contract's return rule (principal plus at most the stated return; the investor "
               "bears the loss when outcomes fall short). Money multiple: received / paid out. IRR: annual, "
               "Act/365, to 0.0001 percentage points; flows whose sign changes more than once can have several "
               "rates, and then every one is named and none is the IRR. MIRR: the modified IRR, money paid "
               f"out financed at {format_rate(FINANCE_RATE)} and money received reinvested at "
               f"{format_rate(REINVESTMENT_RATE)} a year (always one rate).</p>"
               + table(["investor", "contract", "committed", "disbursed", "repaid", "return or loss",
                         "multiple", "IRR", "MIRR"], rows))
    if positions.funds:
        fund_rows = [[f.fund, f.payer, _money(f.budget_minor, f.currency), _money(f.disbursed_minor, f.currency),
                      _money(f.received_minor, f.currency), _money(f.available_minor, f.currency),
                      _money(f.recycled_minor, f.currency), len(f.pilots)] for f in positions.funds]
        section += ("<h3>Social investment funds</h3>"
                    + table(["fund", "set aside by", "budget", "disbursed", "received back", "available",
                              "recycled", "pilots"], fund_rows))
    return section
