"""Investment records in the ledger: the pure decisions and postings (docs/investment.md).

Investors', funds' and finance offices' records reach the journal through the ledger's
forwarder, like settlements, and take their place in the one hash chain. What each
record does is decided here from the records the ledger already accepted (in journal
order) and the outcome payments settled to investors, so a replay decides the same.

Accounts (balances are credits minus debits, as everywhere in the ledger):

| record               | debit                                   | credit                                  |
|----------------------|-----------------------------------------|-----------------------------------------|
| fund established     | `budget:<payer>:<fund>`                 | `fund:<fund>:pool`                      |
| commitment           | `investor:<inv>:<contract>:undrawn`     | `provider:<prov>:<contract>:undrawn`    |
| disbursement         | `investor:<inv>:<contract>:capital`     | `provider:<prov>:<contract>:financed`   |
|                      | `provider:<prov>:<contract>:undrawn`    | `investor:<inv>:<contract>:undrawn`     |
| savings returned     | `budget:<payer>:<contract>`             | `investor:<fund>:<contract>:savings`    |
| close (the verdict)  | `investor:<inv>:<contract>:repaid` P    | `investor:<inv>:<contract>:capital` D   |
|                      | `investor:<inv>:<contract>:loss` L      | `investor:<inv>:<contract>:return` R    |
|                      | `guarantee:<guarantor>:<contract>` G    | `investor:<inv>:<contract>:owed-back` E |
|                      | `provider:<prov>:<contract>:undrawn`    | `investor:<inv>:<contract>:undrawn` U  |

At close, U is each commitment's undrawn rest, which lapses.

Outcome payments to the investor are the contract's ordinary payment instructions
(`budget:<payer>:<contract>` to `receivable:<investor>:pending`, then `:paid` when
finance settles them): the return rule's `repaid` is read from those settled entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from shared.domain.investment.position import Position, Repayment, fold
from shared.domain.investment.records import (
    FundEstablished,
    InvestmentClosed,
    InvestmentCommitted,
    InvestmentDisbursed,
    InvestmentRecord,
    SavingsReturned,
)
from shared.domain.investment.returns import Verdict, close
from shared.domain.ledger.postings import Line, UnbalancedEntry, budget_account


class InvestmentRefusal(StrEnum):
    CONFLICTING = "conflicting_investment"  # an id the ledger holds with other content
    UNKNOWN_COMMITMENT = "unknown_commitment"
    INVESTOR_MISMATCH = "investor_mismatch"  # a disbursement by another investor than the commitment's
    OVER_COMMITMENT = "over_commitment"  # disbursed beyond what was committed
    CURRENCY_MISMATCH = "currency_mismatch"
    UNKNOWN_FUND = "unknown_fund"
    OVER_BUDGET = "over_budget"  # a fund committing beyond its budget and what came back
    ALREADY_CLOSED = "investment_closed"
    # A close naming another payer than the contract's payments in the ledger name
    # (docs/tenancy.md: a close counts only from the contract's payer's finance office).
    CLOSE_PAYER_MISMATCH = "close_payer_mismatch"
    NOTHING_DISBURSED = "nothing_disbursed"  # a close with no money at risk


@dataclass(frozen=True)
class Context:
    """What a record's postings depend on beyond the record: kept with the entry, so an
    auditor rebuilds its lines from the row alone."""

    provider: str = ""
    verdict: Verdict | None = None
    lapsed: tuple[tuple[str, int], ...] = ()  # (provider, undrawn) released at close

    def to_json(self) -> dict[str, object]:
        return {"provider": self.provider, "verdict": asdict(self.verdict) if self.verdict else None,
                "lapsed": [list(x) for x in self.lapsed]}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Context:
        verdict = data.get("verdict")
        lapsed = data.get("lapsed")
        return cls(str(data.get("provider") or ""), Verdict(**verdict) if isinstance(verdict, dict) else None,
                   tuple((str(p), int(a)) for p, a in lapsed) if isinstance(lapsed, list) else ())


@dataclass(frozen=True)
class InvestmentEntry:
    entry_id: str
    record: InvestmentRecord
    context: Context
    contract_id: str  # the contract (for a fund established: the fund) it belongs to
    lines: tuple[Line, ...]

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def currency(self) -> str:
        return self.lines[0].currency

    @property
    def amount_minor(self) -> int:
        """The row's amount: what moved (a fund's budget; at close, what was at risk)."""
        record = self.record
        if isinstance(record, InvestmentClosed):
            return self.context.verdict.disbursed_minor if self.context.verdict else 0
        return record.budget_minor if isinstance(record, FundEstablished) else record.amount_minor

    def content(self) -> dict[str, object]:
        data = record_json(self.record)
        data.update(entry_id=self.entry_id, entry_kind=self.kind, context=self.context.to_json(),
                    contract_id=self.contract_id,
                    lines=[[ln.account, ln.debit_minor, ln.credit_minor, ln.currency] for ln in self.lines])
        return data

    def content_hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def stored(self) -> str:
        """The `investment` column: the record and its context, from which audit rebuilds it."""
        return json.dumps({"record": record_json(self.record), "context": self.context.to_json()},
                          sort_keys=True, separators=(",", ":"))


def record_json(record: InvestmentRecord) -> dict[str, object]:
    """The record as an entry holds it: a close without a payer (sent before closes named
    one) as it was then, so its content hash does not change."""
    data = record.model_dump(mode="json")
    if isinstance(record, InvestmentClosed) and record.payer is None:
        del data["payer"]
    return data


def entry_id_of(record: InvestmentRecord) -> str:
    match record:
        case InvestmentCommitted():
            return f"investment:commitment:{record.commitment_id}"
        case InvestmentDisbursed():
            return f"investment:disbursement:{record.disbursement_id}"
        case FundEstablished():
            return f"investment:fund:{record.fund}"
        case SavingsReturned():
            return f"investment:savings:{record.return_id}"
        case InvestmentClosed():
            return f"investment:close:{record.investor}:{record.contract_id}"


def parties_of(record: InvestmentRecord, context: Context) -> tuple[str, str]:
    """(payer, payee) of the entry's row: who pays whom (at close: the investor itself)."""
    match record:
        case InvestmentCommitted():
            return record.investor, record.provider
        case InvestmentDisbursed():
            return record.investor, context.provider
        case FundEstablished():
            return record.payer, record.fund
        case SavingsReturned():
            return record.payer, record.fund
        case InvestmentClosed():
            return record.investor, record.investor


def investment_entry(record: InvestmentRecord, context: Context, currency: str, contract_id: str) -> InvestmentEntry:
    """The entry a record makes, given its context (pure; audit calls it on the row)."""
    lines: list[Line] = []

    def post(debit: str, credit: str, amount: int) -> None:
        if amount:
            lines.extend((Line(debit, amount, 0, currency), Line(credit, 0, amount, currency)))

    match record:
        case FundEstablished():
            post(budget_account(record.payer, record.fund), f"fund:{record.fund}:pool", record.budget_minor)
        case InvestmentCommitted():
            post(f"investor:{record.investor}:{contract_id}:undrawn",
                 f"provider:{record.provider}:{contract_id}:undrawn", record.amount_minor)
        case InvestmentDisbursed():
            post(f"investor:{record.investor}:{contract_id}:capital",
                 f"provider:{context.provider}:{contract_id}:financed", record.amount_minor)
            post(f"provider:{context.provider}:{contract_id}:undrawn",
                 f"investor:{record.investor}:{contract_id}:undrawn", record.amount_minor)
        case SavingsReturned():
            post(budget_account(record.payer, contract_id), f"investor:{record.fund}:{contract_id}:savings",
                 record.amount_minor)
        case InvestmentClosed():
            lines.extend(_close_lines(record, context, currency))
    return _checked(InvestmentEntry(entry_id_of(record), record, context, contract_id, tuple(lines)))


def _close_lines(record: InvestmentClosed, context: Context, currency: str) -> list[Line]:
    verdict = context.verdict
    if verdict is None:
        raise UnbalancedEntry(f"close of {record.investor}:{record.contract_id} without a verdict")
    own = f"investor:{record.investor}:{record.contract_id}"
    parts = [(f"{own}:repaid", verdict.repaid_minor, 0), (f"{own}:loss", verdict.loss_minor, 0),
             (f"guarantee:{record.guarantor}:{record.contract_id}", verdict.guarantee_minor, 0),
             (f"{own}:capital", 0, verdict.disbursed_minor), (f"{own}:return", 0, verdict.return_minor),
             (f"{own}:owed-back", 0, verdict.owed_back_minor)]
    lines = [Line(account, debit, credit, currency) for account, debit, credit in parts if debit or credit]
    for provider, undrawn in context.lapsed:
        lines += [Line(f"provider:{provider}:{record.contract_id}:undrawn", undrawn, 0, currency),
                  Line(f"{own}:undrawn", 0, undrawn, currency)]
    return lines


def _checked(entry: InvestmentEntry) -> InvestmentEntry:
    if not entry.lines or sum(ln.debit_minor for ln in entry.lines) != sum(ln.credit_minor for ln in entry.lines):
        raise UnbalancedEntry(entry.entry_id)
    if len({ln.currency for ln in entry.lines}) != 1:
        raise UnbalancedEntry(f"{entry.entry_id} mixes currencies")
    return entry


# ---- deciding ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefusedInvestment:
    record: InvestmentRecord
    reason: InvestmentRefusal
    message: str


@dataclass(frozen=True)
class InvestmentPlan:
    entries: tuple[InvestmentEntry, ...]
    refused: tuple[RefusedInvestment, ...]
    duplicates: int


@dataclass
class InvestmentBook:
    """What the ledger holds: accepted records in journal order, the verdicts recorded,
    and the outcome payments settled to investors."""

    records: list[InvestmentRecord] = field(default_factory=list)
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    repayments: list[Repayment] = field(default_factory=list)
    by_entry_id: dict[str, InvestmentRecord] = field(default_factory=dict)
    # contract -> the payers its payment instructions in the ledger name
    payers: dict[str, set[str]] = field(default_factory=dict)

    def accept(self, entry: InvestmentEntry) -> None:
        self.records.append(entry.record)
        self.by_entry_id[entry.entry_id] = entry.record
        if isinstance(entry.record, InvestmentClosed) and entry.context.verdict is not None:
            self.verdicts[(entry.record.investor, entry.record.contract_id)] = entry.context.verdict

    def commitment(self, commitment_id: str) -> InvestmentCommitted | None:
        found = self.by_entry_id.get(f"investment:commitment:{commitment_id}")
        return found if isinstance(found, InvestmentCommitted) else None

    def fund(self, fund: str) -> FundEstablished | None:
        found = self.by_entry_id.get(f"investment:fund:{fund}")
        return found if isinstance(found, FundEstablished) else None

    def closed(self, investor: str, contract_id: str) -> bool:
        return f"investment:close:{investor}:{contract_id}" in self.by_entry_id

    def position(self, investor: str, contract_id: str) -> Position | None:
        return fold(self.records, self.verdicts, self.repayments).of(investor, contract_id)


def plan_investments(records: Sequence[InvestmentRecord], book: InvestmentBook) -> InvestmentPlan:
    """The entries the records make, in order, and the ones refused with a reason."""
    entries: list[InvestmentEntry] = []
    refused: list[RefusedInvestment] = []
    duplicates = 0
    for record in records:
        known = book.by_entry_id.get(entry_id_of(record))
        if known is not None:
            if known == record:
                duplicates += 1  # a redelivery or a replay: already in the ledger
            else:
                refused.append(RefusedInvestment(record, InvestmentRefusal.CONFLICTING,
                                                 f"{entry_id_of(record)} is in the ledger with other content"))
            continue
        decided = _decide(record, book)
        if isinstance(decided, RefusedInvestment):
            refused.append(decided)
            continue
        book.accept(decided)
        entries.append(decided)
    return InvestmentPlan(tuple(entries), tuple(refused), duplicates)


def _refuse(record: InvestmentRecord, reason: InvestmentRefusal, message: str) -> RefusedInvestment:
    return RefusedInvestment(record, reason, message)


def _decide(record: InvestmentRecord, book: InvestmentBook) -> InvestmentEntry | RefusedInvestment:
    match record:
        case FundEstablished():
            return investment_entry(record, Context(), record.currency, record.fund)
        case InvestmentCommitted():
            return _commit(record, book)
        case InvestmentDisbursed():
            return _disburse(record, book)
        case SavingsReturned():
            position = book.position(record.fund, record.contract_id)
            if book.fund(record.fund) is None:
                return _refuse(record, InvestmentRefusal.UNKNOWN_FUND, f"no fund {record.fund} in the ledger")
            if position is None:
                return _refuse(record, InvestmentRefusal.UNKNOWN_COMMITMENT,
                               f"fund {record.fund} financed nothing under {record.contract_id}")
            if position.currency != record.currency:
                return _refuse(record, InvestmentRefusal.CURRENCY_MISMATCH, f"the pilot is in {position.currency}")
            if book.closed(record.fund, record.contract_id):
                return _refuse(record, InvestmentRefusal.ALREADY_CLOSED, f"{record.contract_id} is closed")
            return investment_entry(record, Context(), record.currency, record.contract_id)
        case InvestmentClosed():
            return _close(record, book)


def _commit(record: InvestmentCommitted, book: InvestmentBook) -> InvestmentEntry | RefusedInvestment:
    if book.closed(record.investor, record.contract_id):
        return _refuse(record, InvestmentRefusal.ALREADY_CLOSED,
                       f"{record.investor} under {record.contract_id} is closed")
    position = book.position(record.investor, record.contract_id)
    if position is not None and position.currency != record.currency:
        return _refuse(record, InvestmentRefusal.CURRENCY_MISMATCH, f"committed in {position.currency} before")
    fund = book.fund(record.investor)
    if fund is not None:
        if fund.currency != record.currency:
            return _refuse(record, InvestmentRefusal.CURRENCY_MISMATCH, f"the fund is in {fund.currency}")
        pool = next(f for f in fold(book.records, book.verdicts, book.repayments).funds if f.fund == fund.fund)
        room = pool.budget_minor + pool.received_minor - pool.committed_minor
        if record.amount_minor > room:
            return _refuse(record, InvestmentRefusal.OVER_BUDGET,
                           f"fund {fund.fund} has {room} minor units left to commit")
    return investment_entry(record, Context(), record.currency, record.contract_id)


def _disburse(record: InvestmentDisbursed, book: InvestmentBook) -> InvestmentEntry | RefusedInvestment:
    commitment = book.commitment(record.commitment_id)
    if commitment is None:
        return _refuse(record, InvestmentRefusal.UNKNOWN_COMMITMENT, f"no commitment {record.commitment_id}")
    if commitment.investor != record.investor:
        return _refuse(record, InvestmentRefusal.INVESTOR_MISMATCH,
                       f"commitment {record.commitment_id} is {commitment.investor}'s")
    if commitment.currency != record.currency:
        return _refuse(record, InvestmentRefusal.CURRENCY_MISMATCH, f"committed in {commitment.currency}")
    if book.closed(commitment.investor, commitment.contract_id):
        return _refuse(record, InvestmentRefusal.ALREADY_CLOSED, f"{commitment.contract_id} is closed")
    drawn = sum(r.amount_minor for r in book.records
                if isinstance(r, InvestmentDisbursed) and r.commitment_id == record.commitment_id)
    if drawn + record.amount_minor > commitment.amount_minor:
        return _refuse(record, InvestmentRefusal.OVER_COMMITMENT,
                       f"{commitment.amount_minor - drawn} minor units of {record.commitment_id} are undrawn")
    return investment_entry(record, Context(provider=commitment.provider), record.currency, commitment.contract_id)


def _close(record: InvestmentClosed, book: InvestmentBook) -> InvestmentEntry | RefusedInvestment:
    paid_by = book.payers.get(record.contract_id, set())
    if record.payer is not None and paid_by and record.payer not in paid_by:
        return _refuse(record, InvestmentRefusal.CLOSE_PAYER_MISMATCH,
                       f"the close names payer {record.payer}; {record.contract_id}'s payments name"
                       f" {', '.join(sorted(paid_by))}")
    position = book.position(record.investor, record.contract_id)
    if position is None or position.disbursed_minor <= 0:
        return _refuse(record, InvestmentRefusal.NOTHING_DISBURSED,
                       f"{record.investor} disbursed nothing under {record.contract_id}")
    verdict = close(position.disbursed_minor, max(0, position.repaid_minor), record.max_return,
                    record.guarantee_minor if record.guarantor else 0)
    lapsed: list[tuple[str, int]] = []
    for commitment in (r for r in book.records if isinstance(r, InvestmentCommitted)
                       and (r.investor, r.contract_id) == (record.investor, record.contract_id)):
        drawn = sum(r.amount_minor for r in book.records
                    if isinstance(r, InvestmentDisbursed) and r.commitment_id == commitment.commitment_id)
        if commitment.amount_minor > drawn:
            lapsed.append((commitment.provider, commitment.amount_minor - drawn))
    return investment_entry(record, Context(verdict=verdict, lapsed=tuple(lapsed)), position.currency,
                            record.contract_id)
