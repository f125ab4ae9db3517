"""Each investor's and each fund's position, folded from what the ledger holds.

Pure: the ledger's query (`services/ledger/investor_queries.py`) reads the investment
records in journal order, the verdicts recorded at close, and the outcome payments
settled to investors; this module folds them. The same fold, given the flows a test
or a simulation expects, gives the figures the ledger must show, to the øre.

Per investor and contract: committed, disbursed, undrawn, repaid (outcome payments
settled to it, net of clawbacks settled, plus savings paid into a fund for the pilot),
and once closed the return rule's verdict: return, loss, guarantee, owed back. The
investor's cash flows give the money multiple and the IRR (`figures.py`).

Per fund (Norrköping's model: a budget set aside that finances pilots and takes back
their outcome payments or savings): budget, committed, disbursed, received back,
available, and recycled: what it financed beyond its budget, which only money that came
back can have paid for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from shared.domain.investment.figures import CashFlow, RatesOfReturn, irr, mirr, money_multiple, rates_of_return
from shared.domain.investment.records import (
    FundEstablished,
    InvestmentClosed,
    InvestmentCommitted,
    InvestmentDisbursed,
    InvestmentRecord,
    SavingsReturned,
)
from shared.domain.investment.returns import Verdict

PositionKey = tuple[str, str]  # (investor, contract id)


@dataclass(frozen=True)
class Repayment:
    """An outcome payment settled to an investor (negative: a clawback settled)."""

    investor: str
    contract_id: str
    day: dt.date
    amount_minor: int


@dataclass
class Position:
    investor: str
    contract_id: str
    currency: str
    provider: str = ""
    committed_minor: int = 0
    disbursed_minor: int = 0
    repaid_minor: int = 0
    closed_on: dt.date | None = None
    verdict: Verdict | None = None
    flows: list[CashFlow] = field(default_factory=list)

    @property
    def undrawn_minor(self) -> int:
        return self.committed_minor - self.disbursed_minor

    @property
    def at_risk_minor(self) -> int:
        """Disbursed and not (yet) repaid."""
        return max(0, self.disbursed_minor - self.repaid_minor)

    @property
    def multiple(self) -> Fraction | None:
        return money_multiple(self.flows)

    @property
    def irr(self) -> Decimal | None:
        """The IRR when the flows have exactly one (`rates` says why not otherwise)."""
        return irr(self.flows)

    @property
    def rates(self) -> RatesOfReturn:
        return rates_of_return(self.flows)

    def mirr(self, finance_rate: Decimal, reinvestment_rate: Decimal) -> Decimal | None:
        return mirr(self.flows, finance_rate, reinvestment_rate)


@dataclass
class FundPosition:
    fund: str
    payer: str
    currency: str
    budget_minor: int
    established_on: dt.date
    pilots: list[Position] = field(default_factory=list)

    @property
    def committed_minor(self) -> int:
        return sum(p.committed_minor for p in self.pilots)

    @property
    def disbursed_minor(self) -> int:
        return sum(p.disbursed_minor for p in self.pilots)

    @property
    def received_minor(self) -> int:
        """Outcome payments and savings back from its pilots, and guarantees called."""
        return sum(p.repaid_minor + (p.verdict.guarantee_minor - p.verdict.owed_back_minor if p.verdict else 0)
                   for p in self.pilots)

    @property
    def available_minor(self) -> int:
        return self.budget_minor + self.received_minor - self.disbursed_minor

    @property
    def recycled_minor(self) -> int:
        """Financed beyond the budget: paid for by money the pilots brought back."""
        return min(max(0, self.received_minor), max(0, self.disbursed_minor - self.budget_minor))


@dataclass(frozen=True)
class Positions:
    investors: tuple[Position, ...]
    funds: tuple[FundPosition, ...]

    def of(self, investor: str, contract_id: str) -> Position | None:
        return next((p for p in self.investors if (p.investor, p.contract_id) == (investor, contract_id)), None)


def fold(records: Sequence[InvestmentRecord], verdicts: Mapping[PositionKey, Verdict],
         repayments: Sequence[Repayment]) -> Positions:
    """The positions the records (in journal order), verdicts and repayments make.

    Records are the ones the ledger accepted: a disbursement names a known commitment.
    """
    by_key: dict[PositionKey, Position] = {}
    commitments: dict[str, InvestmentCommitted] = {}
    funds: dict[str, FundEstablished] = {}
    for record in records:
        match record:
            case FundEstablished():
                funds[record.fund] = record
            case InvestmentCommitted():
                commitments[record.commitment_id] = record
                position = _position(by_key, record.investor, record.contract_id, record.currency)
                position.provider = position.provider or record.provider
                position.committed_minor += record.amount_minor
            case InvestmentDisbursed():
                commitment = commitments[record.commitment_id]
                position = _position(by_key, commitment.investor, commitment.contract_id, record.currency)
                position.disbursed_minor += record.amount_minor
                position.flows.append(CashFlow(record.disbursed_on, -record.amount_minor,
                                               f"disbursement {record.disbursement_id}"))
            case SavingsReturned():
                position = _position(by_key, record.fund, record.contract_id, record.currency)
                position.repaid_minor += record.amount_minor
                position.flows.append(CashFlow(record.returned_on, record.amount_minor, f"savings {record.return_id}"))
            case InvestmentClosed():
                position = _position(by_key, record.investor, record.contract_id, "")
                position.closed_on = record.closed_on
    for repayment in repayments:
        repaid = by_key.get((repayment.investor, repayment.contract_id))
        if repaid is None:
            continue  # paid to an institution that financed nothing under this contract
        repaid.repaid_minor += repayment.amount_minor
        repaid.flows.append(CashFlow(repayment.day, repayment.amount_minor,
                                   "outcome payment" if repayment.amount_minor > 0 else "clawback"))
    for key, verdict in verdicts.items():
        position = by_key[key]
        position.verdict = verdict
        if position.closed_on is not None:
            if verdict.guarantee_minor:
                position.flows.append(CashFlow(position.closed_on, verdict.guarantee_minor, "guarantee called"))
            if verdict.owed_back_minor:
                position.flows.append(CashFlow(position.closed_on, -verdict.owed_back_minor, "owed back"))
    for position in by_key.values():
        position.flows.sort(key=lambda f: (f.day, f.amount_minor, f.what))
    investors = tuple(sorted(by_key.values(), key=lambda p: (p.investor, p.contract_id)))
    fund_positions = tuple(
        FundPosition(f.fund, f.payer, f.currency, f.budget_minor, f.established_on,
                     [p for p in investors if p.investor == f.fund])
        for f in sorted(funds.values(), key=lambda f: f.fund))
    return Positions(investors, fund_positions)


def _position(by_key: dict[PositionKey, Position], investor: str, contract_id: str, currency: str) -> Position:
    position = by_key.get((investor, contract_id))
    if position is None:
        position = by_key[(investor, contract_id)] = Position(investor, contract_id, currency)
    elif not position.currency:
        position.currency = currency
    return position
