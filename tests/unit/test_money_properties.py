"""Properties that pin the money, not only conserve it.

- Solidarity: the engine's whole-unit allocation equals the independent per-day oracle's
  to the øre, each amount is within one minor unit of its exact share, and leftover units
  go to the largest remainders with ties by institution id, unallocated then not accrued
  last (DOMAIN.md, step 5).
- Clawbacks net every reversed payment to zero, and reconciling twice issues nothing.
- The ledger's balances are the fold of its journal, however the journal is batched.

Hypothesis settings are stated per test (max_examples); deadline=None because the machine
is shared and slow, derandomize=False: a new sample of cases every run. The whole file
runs in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.journal import KnownPayment, plan_journal
from shared.contracts.model import SolidarityDistribution
from shared.contracts.payments import reconcile
from shared.contracts.solidarity import NOT_ACCRUED, UNALLOCATED, Registration, allocate, largest_remainder
from shared.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from tests import oracle
from tests.unit.test_solidarity import BIRTHS, POTS, TRIGGERS, registrations, rules

# -- rounding ------------------------------------------------------------------------------

def spec_rank(key: str) -> tuple[int, str]:
    """DOMAIN.md step 5's tie order, written here rather than taken from the code."""
    return {UNALLOCATED: (1, ""), NOT_ACCRUED: (2, "")}.get(key, (0, key))


KEYS = st.sampled_from(["alpha", "bravo", "charlie", "delta", UNALLOCATED, NOT_ACCRUED])


@st.composite
def exact_shares(draw: st.DrawFn) -> tuple[int, dict[str, Fraction]]:
    """A total and exact shares adding up to it; small denominators make ties common."""
    keys = draw(st.lists(KEYS, min_size=1, max_size=6, unique=True))
    weights = [draw(st.integers(min_value=0, max_value=6)) for _ in keys]
    if sum(weights) == 0:
        weights[0] = 1
    total = draw(st.integers(min_value=0, max_value=10**6))
    return total, {k: Fraction(total * w, sum(weights)) for k, w in zip(keys, weights, strict=True)}


@settings(max_examples=500, deadline=None)
@given(exact_shares())
def test_largest_remainder_gives_each_part_its_floor_or_one_more_to_the_largest_remainders_ties_by_key(
        case: tuple[int, dict[str, Fraction]]) -> None:
    total, exact = case
    whole = largest_remainder(total, exact)
    assert sum(whole.values()) == total
    remainder = {k: exact[k] - (exact[k].numerator // exact[k].denominator) for k in exact}
    up = {k for k in exact if whole[k] > exact[k]}
    for key in exact:
        assert abs(whole[key] - exact[key]) < 1, key
        assert whole[key] - exact[key] == (1 - remainder[key] if key in up else -remainder[key])
    for winner in up:
        for loser in set(exact) - up:
            # A larger remainder never loses to a smaller one; equal ones go by key
            # (institution ids sort before unallocated, and that before not accrued).
            assert remainder[winner] > remainder[loser] or \
                (remainder[winner] == remainder[loser] and spec_rank(winner) < spec_rank(loser)), (winner, loser)


def test_tie_breaks_by_institution_id_then_unallocated_then_not_accrued() -> None:
    half, third = Fraction(1, 2), Fraction(1, 3)
    assert largest_remainder(1, {"bravo": half, "alpha": half}) == {"alpha": 1, "bravo": 0}
    assert largest_remainder(1, {UNALLOCATED: half, "zulu": half}) == {"zulu": 1, UNALLOCATED: 0}
    assert largest_remainder(1, {NOT_ACCRUED: half, UNALLOCATED: half}) == {UNALLOCATED: 1, NOT_ACCRUED: 0}
    assert largest_remainder(2, {NOT_ACCRUED: third * 2, UNALLOCATED: third * 2, "a": third * 2}) == \
        {"a": 1, UNALLOCATED: 1, NOT_ACCRUED: 0}
    # The largest remainder wins even against an earlier key.
    assert largest_remainder(1, {"alpha": Fraction(1, 4), "bravo": Fraction(3, 4)}) == {"alpha": 0, "bravo": 1}


def oracle_rule(rule: SolidarityDistribution) -> dict[str, object]:
    basis = {"kind": rule.year_basis.kind, "starts": rule.year_basis.starts}
    return {"year_basis": basis, "weights": {age: str(weight) for age, weight in rule.weights.items()}}


def oracle_stays(regs: Sequence[Registration]) -> list[oracle.Stay]:
    return [oracle.Stay(r.institution, r.start, r.end) for r in regs]


@settings(max_examples=120, deadline=None)
@given(rules(), BIRTHS, registrations(), POTS, TRIGGERS)
def test_solidarity_allocation_equals_the_per_day_oracle_and_each_part_is_within_one_unit_of_its_share(
        rule: SolidarityDistribution, birth: dt.date, regs: list[Registration], pot: int,
        trigger: dt.date) -> None:
    result = allocate(rule, birth, regs, pot, trigger)
    exact = oracle.solidarity_exact(oracle_rule(rule), birth, oracle_stays(regs), pot, trigger)
    whole = oracle.solidarity_whole(oracle_rule(rule), birth, oracle_stays(regs), pot, trigger)
    assert dict(result.allocations) == {k: v for k, v in whole.items()
                                        if k not in (oracle.UNALLOCATED, oracle.NOT_ACCRUED) and v > 0}
    assert result.unallocated_minor == whole[oracle.UNALLOCATED]
    assert result.not_accrued_minor == whole[oracle.NOT_ACCRUED]
    paid = {**dict(result.allocations), oracle.UNALLOCATED: result.unallocated_minor,
            oracle.NOT_ACCRUED: result.not_accrued_minor}
    for part, share in exact.items():
        assert abs(paid.get(part, 0) - share) < 1, part


# -- clawbacks -------------------------------------------------------------------------------

def instruction(payee: str, amount: int, subject: int = 0) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=hashlib.sha256(f"{payee}|{amount}|{subject}".encode()).hexdigest()[:32],
        kind=PaymentKind.PAYMENT, contract_id="c", contract_version=1, outcome_id="o",
        subject="k1:" + hashlib.sha256(str(subject).encode()).hexdigest(), payer="payer", payee=payee,
        amount_minor=amount, currency="DKK", occurred_on=dt.date(2024, 1, 1))


WANTED = st.lists(st.builds(instruction, st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 10**6),
                            st.integers(0, 3)), max_size=8, unique_by=lambda i: i.payment_id)


def net(instructions: Sequence[PaymentInstruction]) -> dict[str, int]:
    """Per payee, payments minus clawbacks, each distinct instruction once."""
    result: dict[str, int] = defaultdict(int)
    for i in {i.payment_id: i for i in instructions}.values():
        result[i.payee] += i.amount_minor if i.kind == PaymentKind.PAYMENT else -i.amount_minor
    return {k: v for k, v in result.items() if v}


def wanted_totals(instructions: Sequence[PaymentInstruction]) -> dict[str, int]:
    return net(instructions)


@settings(max_examples=300, deadline=None)
@given(st.lists(WANTED, min_size=1, max_size=5))
def test_clawbacks_net_withdrawn_payments_to_zero_and_a_second_reconcile_issues_nothing(
        rounds: list[list[PaymentInstruction]]) -> None:
    issued: list[PaymentInstruction] = []
    for wanted in [*rounds, []]:  # the last round withdraws everything
        new = reconcile(wanted, issued)
        issued += new
        assert net(issued) == wanted_totals(wanted)
        assert reconcile(wanted, issued) == []
        for clawback in (i for i in new if i.kind == PaymentKind.CLAWBACK):
            original = next(i for i in issued if i.payment_id == clawback.reverses_payment_id)
            assert (clawback.payee, clawback.amount_minor, clawback.payer) == \
                (original.payee, original.amount_minor, original.payer)
    assert net(issued) == {}
    assert len({i.payment_id for i in issued}) == len(issued), "an id was issued twice"


# -- the ledger is the fold of its journal ---------------------------------------------

PAYEES = ["school", "college", "daycare"]


@st.composite
def journals(draw: st.DrawFn) -> list[PaymentInstruction | Settlement]:
    payments = [instruction(draw(st.sampled_from(PAYEES)), draw(st.integers(1, 10**6)), n)
                for n in range(draw(st.integers(1, 6)))]
    clawbacks = [p.model_copy(update={"payment_id": hashlib.sha256(p.payment_id.encode()).hexdigest()[:32],
                                      "kind": PaymentKind.CLAWBACK, "reverses_payment_id": p.payment_id})
                 for p in payments if draw(st.booleans())]
    instructions = payments + clawbacks
    settlements = [Settlement(settlement_id=f"s-{n}", payment_id=draw(st.sampled_from(instructions)).payment_id,
                              status=draw(st.sampled_from(list(SettlementStatus))), settled_on=dt.date(2024, 2, 1),
                              bank_reference="ref", reason="r")
                   for n in range(draw(st.integers(0, 6)))]
    records: list[PaymentInstruction | Settlement] = [*instructions, *settlements]
    records += draw(st.lists(st.sampled_from(records), max_size=4))  # redeliveries
    return draw(st.permutations(records))


def fold_expected(records: Sequence[PaymentInstruction | Settlement]) -> dict[str, int]:
    """docs/ledger.md's table, by hand: the balances the journal calls for."""
    balances: dict[str, int] = defaultdict(int)
    known: dict[str, PaymentInstruction] = {}
    settled: set[str] = set()
    for record in records:
        if isinstance(record, PaymentInstruction):
            if record.payment_id in known:
                continue
            known[record.payment_id] = record
            sign = 1 if record.kind == PaymentKind.PAYMENT else -1
            balances[f"budget:payer:{record.contract_id}"] -= sign * record.amount_minor
            balances[f"receivable:{record.payee}:pending"] += sign * record.amount_minor
        elif record.payment_id in known and record.payment_id not in settled:
            settled.add(record.payment_id)
            target = known[record.payment_id]
            sign = 1 if target.kind == PaymentKind.PAYMENT else -1
            destination = f"receivable:{target.payee}:paid" if record.status == SettlementStatus.PAID \
                else f"budget:payer:{target.contract_id}"
            balances[f"receivable:{target.payee}:pending"] -= sign * target.amount_minor
            balances[destination] += sign * target.amount_minor
    return {k: v for k, v in balances.items() if v}


def project(records: Sequence[PaymentInstruction | Settlement], cuts: Sequence[int]
            ) -> tuple[list[str], dict[str, int]]:
    """Plan the journal batch by batch as the projector does; return entry ids and balances."""
    known: dict[str, KnownPayment] = {}
    entries = []
    bounds = [0, *sorted(cuts), len(records)]
    for start, end in itertools.pairwise(bounds):
        plan = plan_journal(records[start:end], known)
        for entry in plan.entries:
            entries.append(entry)
            i = entry.instruction
            known[i.payment_id] = KnownPayment(i, entry.settlement.settlement_id if entry.settlement else None)
    balances: dict[str, int] = defaultdict(int)
    for entry in entries:
        assert sum(ln.debit_minor for ln in entry.lines) == sum(ln.credit_minor for ln in entry.lines)
        for line in entry.lines:
            balances[line.account] += line.credit_minor - line.debit_minor
    return [e.entry_id for e in entries], {k: v for k, v in balances.items() if v}


@settings(max_examples=300, deadline=None)
@given(journals(), st.lists(st.integers(0, 30), max_size=4))
def test_balances_are_the_fold_of_the_journal_however_it_is_batched(
        records: list[PaymentInstruction | Settlement], cuts: list[int]) -> None:
    whole_ids, whole_balances = project(records, [])
    batched_ids, batched_balances = project(records, [min(c, len(records)) for c in cuts])
    assert batched_ids == whole_ids
    assert batched_balances == whole_balances == fold_expected(records)
