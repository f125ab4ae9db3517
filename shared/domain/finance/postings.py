"""Internal postings: payments to the payer's own institutions, for its accounting system (pure).

A municipality does not pay its own schools and daycares by bank transfer: it moves the
money between cost centres in its books. A `postings` run writes, per payment, an
internal expense on the budget's cost centre and an internal income on the institution's
cost centre (from the registry), with the main account, function and group of the
authorised municipal chart of accounts for the institution's kind (`chart.yaml`). Every
payment balances, and so does the run: `balanced` checks it before a file is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from shared.domain.finance.csv_style import PLAIN, CsvStyle
from shared.domain.finance.payouts import PayoutLine

CHART_FILE = Path(__file__).parent / "chart.yaml"
Dimension = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.]{1,12}$")]

POSTING_COLUMNS = ("run_id", "posting_date", "payment_id", "line", "main_account", "function", "group",
                   "cost_type", "cost_centre", "debit", "credit", "currency", "debit_minor", "credit_minor",
                   "institution", "text")


class PostingsError(ValueError):
    pass


class KindAccounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    main_account: Dimension
    function: Dimension
    group: Dimension


class Chart(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    budget_cost_centre: Dimension
    expense_cost_type: Dimension
    income_cost_type: Dimension
    kinds: dict[str, KindAccounts]


def load_chart(path: Path = CHART_FILE) -> Chart:
    try:
        return Chart.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise PostingsError(f"{path}: not a valid chart of accounts file: {error}") from None


@dataclass(frozen=True)
class Posting:
    payment_id: str
    main_account: str
    function: str
    group: str
    cost_type: str
    cost_centre: str
    debit_minor: int
    credit_minor: int
    currency: str
    institution: str
    text: str


def postings_of(lines: Sequence[PayoutLine], chart: Chart) -> list[Posting]:
    out: list[Posting] = []
    for x in lines:
        accounts = chart.kinds.get(x.payee_kind or "")
        if accounts is None:
            raise PostingsError(f"{x.payee}: no accounts for institution kind {x.payee_kind!r} in the chart")
        if not x.payee_cost_centre:
            raise PostingsError(f"{x.payee}: no cost_centre in the registry")
        text = f"{x.contract_id} {x.outcome_id} {x.occurred_on.isoformat()}"[:100]
        dims = (accounts.main_account, accounts.function, accounts.group)
        out.append(Posting(x.payment_id, *dims, chart.expense_cost_type, chart.budget_cost_centre,
                           x.amount_minor, 0, x.currency, x.payer, text))
        out.append(Posting(x.payment_id, *dims, chart.income_cost_type, x.payee_cost_centre,
                           0, x.amount_minor, x.currency, x.payee, text))
    if not balanced(out):
        raise PostingsError("the postings do not balance")  # a bug: each payment posts equal sides
    return out


def balanced(postings: Sequence[Posting]) -> bool:
    """Debits equal credits in each currency (and so per run)."""
    totals: dict[str, int] = {}
    for p in postings:
        totals[p.currency] = totals.get(p.currency, 0) + p.debit_minor - p.credit_minor
    return all(v == 0 for v in totals.values())


def postings_csv(lines: Sequence[PayoutLine], run_id: str, posting_date: dt.date, chart: Chart,
                 style: CsvStyle = PLAIN) -> str:
    rows = [[run_id, posting_date.isoformat(), p.payment_id, n, p.main_account, p.function, p.group, p.cost_type,
             p.cost_centre, style.amount(p.debit_minor, p.currency) if p.debit_minor else "",
             style.amount(p.credit_minor, p.currency) if p.credit_minor else "", p.currency, p.debit_minor,
             p.credit_minor, p.institution, p.text]
            for n, p in enumerate(postings_of(lines, chart), start=1)]
    return style.render(POSTING_COLUMNS, rows)
