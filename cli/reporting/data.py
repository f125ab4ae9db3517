"""The facts a report is made of, and the summaries computed from them (pure)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from shared.domain.contracts.indicator_outcomes import POPULATION_PREFIX
from shared.domain.contracts.model import Contract
from shared.domain.indicators.model import MINIMUM_CELL_MAX

# A figure that includes an indicator outcome is about a population: the decision was
# made over cells that the contract's own `minimum_cell` protects (a decision over a small
# cell is rejected), and its `subject` is a stand-in (`pop:`), never a person. It counts
# as this many subjects: the largest minimum the MINIMUM_CELL setting allows.
POPULATION_HEADCOUNT = MINIMUM_CELL_MAX


def headcount(subjects: Collection[str]) -> int:
    """How many subjects a figure about `subjects` (pseudonyms, or a population's
    stand-in) is about, for small-cell suppression."""
    people = sum(1 for s in subjects if not s.startswith(POPULATION_PREFIX))
    return people + (POPULATION_HEADCOUNT if len(subjects) > people else 0)


def everyone(data: ReportData) -> int:
    """How many subjects the whole of `data` is about."""
    return headcount({o.subject for o in data.outcomes} | {m.subject for m in data.money})


@dataclass(frozen=True)
class OutcomeRow:
    contract_id: str
    outcome_id: str
    status: str
    reason: str | None
    occurred_on: dt.date
    owed_minor: int
    # The subject's pseudonym: never shown, only counted, so that every figure knows how
    # many subjects it is about (small cells are suppressed: cli/reporting/disclosure.py).
    subject: str


@dataclass(frozen=True)
class MoneyRow:
    contract_id: str
    outcome_id: str
    payee: str
    kind: str  # payment | clawback
    amount_minor: int
    occurred_on: dt.date
    subject: str
    settled: bool = False


@dataclass(frozen=True)
class Institution:
    id: str
    name: str
    kind: str


@dataclass(frozen=True)
class ReportData:
    title: str
    contracts: tuple[Contract, ...]
    outcomes: tuple[OutcomeRow, ...]
    money: tuple[MoneyRow, ...]
    institutions: dict[str, Institution] = field(default_factory=dict)
    source: str = ""
    # Contracts whose money a publication does not show, each with why (the payments
    # are left out of `money` and of every total: cli/reporting/disclosure.py).
    withheld: dict[str, str] = field(default_factory=dict)

    def name_of(self, institution: str) -> str:
        found = self.institutions.get(institution)
        return found.name if found else institution

    def currency_of(self, contract_id: str) -> str:
        """The currency of a contract's money (every version of a contract has one)."""
        return next(c.currency for c in self.contracts if c.contract_id == contract_id)

    def kind_of(self, institution: str) -> str:
        found = self.institutions.get(institution)
        return found.kind if found else "other"


@dataclass(frozen=True)
class ContractSummary:
    contract_id: str
    title: str
    currency: str
    verified: int
    rejected: int
    capped: int
    pending: int
    rejected_by_reason: dict[str, int]
    paid_minor: int          # net: payments minus clawbacks
    clawed_back_minor: int
    settled_minor: int
    cap_total_minor: int | None
    # How many distinct subjects each figure is about (for small-cell suppression): the
    # row's (every outcome decided under the contract), per status, and the money's.
    subjects: int = 0
    subjects_by_status: dict[str, int] = field(default_factory=dict)
    subjects_by_reason: dict[str, int] = field(default_factory=dict)
    money_subjects: int = 0
    settled_subjects: int = 0
    clawed_back_subjects: int = 0
    withheld: str = ""  # why the contract's money is not shown (cli/reporting/disclosure.py)

    @property
    def budget_left_minor(self) -> int | None:
        return None if self.cap_total_minor is None else self.cap_total_minor - self.paid_minor


def summarise(data: ReportData) -> list[ContractSummary]:
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    who: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in data.outcomes:
        statuses[row.contract_id][row.status] += 1
        who[(row.contract_id, "")].add(row.subject)
        who[(row.contract_id, f"status:{row.status}")].add(row.subject)
        if row.status == "rejected" and row.reason:
            reasons[row.contract_id][row.reason] += 1
            who[(row.contract_id, f"reason:{row.reason}")].add(row.subject)
    for m in data.money:
        who[(m.contract_id, "money")].add(m.subject)
        if m.kind == "payment" and m.settled:
            who[(m.contract_id, "settled")].add(m.subject)
        if m.kind == "clawback":
            who[(m.contract_id, "clawback")].add(m.subject)
    summaries = []
    for contract in data.contracts:
        rows = [m for m in data.money if m.contract_id == contract.contract_id]
        paid = sum(m.amount_minor if m.kind == "payment" else -m.amount_minor for m in rows)
        clawed = sum(m.amount_minor for m in rows if m.kind == "clawback")
        settled = sum(m.amount_minor for m in rows if m.kind == "payment" and m.settled)
        s = statuses[contract.contract_id]
        summaries.append(ContractSummary(
            contract.contract_id, contract.title or contract.contract_id, contract.currency,
            s["verified"], s["rejected"], s["capped"], s["pending_sustainment"],
            dict(reasons[contract.contract_id].most_common()), paid, clawed, settled,
            contract.caps.total_minor, **_subject_counts(contract.contract_id, who),
            withheld=data.withheld.get(contract.contract_id, "")))
    return summaries


def _subject_counts(contract_id: str, who: dict[tuple[str, str], set[str]]) -> dict[str, Any]:
    def count(part: str) -> int:
        return headcount(who.get((contract_id, part), set()))

    parts = [part for (c, part) in who if c == contract_id]
    return {"subjects": count(""), "money_subjects": count("money"), "settled_subjects": count("settled"),
            "clawed_back_subjects": count("clawback"),
            "subjects_by_status": {p.removeprefix("status:"): count(p) for p in parts if p.startswith("status:")},
            "subjects_by_reason": {p.removeprefix("reason:"): count(p) for p in parts if p.startswith("reason:")}}


def net_by_institution(data: ReportData) -> list[tuple[str, str, int]]:
    """Net amount per payee and currency (payee, currency, amount), largest first.
    Amounts in different currencies are never added."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for m in data.money:
        totals[(m.payee, data.currency_of(m.contract_id))] += m.amount_minor if m.kind == "payment" else -m.amount_minor
    return sorted(((p, c, a) for (p, c), a in totals.items() if a), key=lambda x: (-x[2], x[0], x[1]))


def subjects_by_payee(data: ReportData) -> dict[tuple[str, str], int]:
    """How many distinct subjects each (payee, currency) total of `net_by_institution` is about."""
    who: dict[tuple[str, str], set[str]] = defaultdict(set)
    for m in data.money:
        who[(m.payee, data.currency_of(m.contract_id))].add(m.subject)
    return {k: headcount(v) for k, v in who.items()}


def subjects_by_flow(data: ReportData) -> dict[tuple[str, str, str], int]:
    """How many distinct subjects each (kind, outcome, currency) flow is about."""
    who: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for m in data.money:
        who[(data.kind_of(m.payee), m.outcome_id, data.currency_of(m.contract_id))].add(m.subject)
    return {k: headcount(v) for k, v in who.items()}


def subjects_by_kind(data: ReportData) -> dict[tuple[str, str], int]:
    """How many distinct subjects each (kind, currency) total of `net_by_kind` is about."""
    who: dict[tuple[str, str], set[str]] = defaultdict(set)
    for m in data.money:
        who[(data.kind_of(m.payee), data.currency_of(m.contract_id))].add(m.subject)
    return {k: headcount(v) for k, v in who.items()}


def net_by_kind_and_outcome(data: ReportData) -> dict[tuple[str, str, str], int]:
    """Money flowing from each kind of institution's work to each later success, per
    currency: (kind, outcome, currency) -> amount."""
    flows: dict[tuple[str, str, str], int] = defaultdict(int)
    for m in data.money:
        key = (data.kind_of(m.payee), m.outcome_id, data.currency_of(m.contract_id))
        flows[key] += m.amount_minor if m.kind == "payment" else -m.amount_minor
    return {k: v for k, v in flows.items() if v > 0}


def net_by_kind(data: ReportData) -> dict[str, dict[str, int]]:
    """Net amount per kind of institution, per currency: kind -> currency -> amount."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (kind, _, currency), amount in net_by_kind_and_outcome(data).items():
        totals[kind][currency] += amount
    return {kind: dict(sorted(amounts.items())) for kind, amounts in sorted(totals.items())}


def outcomes_by_year(data: ReportData) -> dict[str, dict[int, tuple[int, int]]]:
    """Verified outcomes per outcome id and calendar year: (outcomes, distinct subjects)."""
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    who: dict[tuple[str, int], set[str]] = defaultdict(set)
    for row in data.outcomes:
        if row.status == "verified":
            name = f"{row.contract_id}/{row.outcome_id}"
            counts[name][row.occurred_on.year] += 1
            who[(name, row.occurred_on.year)].add(row.subject)
    return {k: {year: (n, headcount(who[(k, year)])) for year, n in sorted(v.items())} for k, v in sorted(counts.items())}
