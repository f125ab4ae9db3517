"""Properties that pin the money, not only conserve it.

- Solidarity: the engine's whole-unit allocation equals the independent per-day oracle's
  to the øre, each amount is within one minor unit of its exact share, and leftover units
  go to the largest remainders with ties by institution id, unallocated then not accrued
  last (DOMAIN.md, step 5).
- Clawbacks net every reversed payment to zero, and reconciling twice issues nothing.
- The ledger's balances are the fold of its journal, however the journal is batched.
- Indicator outcomes: the decision equals the oracle's to the øre, within its cap; any
  sequence of re-decisions nets each payee to the last one, with no id issued twice.

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

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.contracts.evaluation import OutcomeDecision, OutcomeStatus
from shared.domain.contracts.indicator_outcomes import decide_indicator, indicator_instructions, memberships, tally_cells
from shared.domain.contracts.loader import parse_contract
from shared.domain.contracts.model import Contract, SolidarityDistribution
from shared.domain.contracts.payments import reconcile
from shared.domain.contracts.solidarity import NOT_ACCRUED, UNALLOCATED, Registration, allocate, largest_remainder
from shared.domain.contracts.timeline import SubjectTimeline, fold
from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.ledger.journal import KnownPayment, plan_journal
from tests import oracle
from tests.unit.builders import transition
from tests.unit.test_solidarity import BIRTHS, INSTITUTIONS, POTS, TRIGGERS, registrations, rules

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
    return {"year_basis": basis, "weights": {age: str(weight) for age, weight in rule.weights.items()},
            "exclude_institutions": list(rule.exclude_institutions)}


def oracle_stays(regs: Sequence[Registration]) -> list[oracle.Stay]:
    return [oracle.Stay(r.institution, r.start, r.end) for r in regs]


@settings(max_examples=120, deadline=None)
@given(rules(), BIRTHS, registrations(), POTS, TRIGGERS, st.frozensets(INSTITUTIONS, max_size=2))
def test_solidarity_allocation_equals_the_per_day_oracle_and_each_part_is_within_one_unit_of_its_share(
        rule: SolidarityDistribution, birth: dt.date, regs: list[Registration], pot: int,
        trigger: dt.date, excluded: frozenset[str]) -> None:
    # Excluded institutions too: the engine's sweep drops their stays, the oracle its days.
    rule = rule.model_copy(update={"exclude_institutions": tuple(sorted(excluded))})
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
            assert (clawback.payee, clawback.payer) == (original.payee, original.payer)
            assert 0 < clawback.amount_minor <= original.amount_minor
        assert_no_payment_reversed_beyond_its_amount(issued)
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
    state: dict[str, SettlementStatus] = {}  # the latest settlement applied, per payment
    applied: set[str] = set()  # settlement ids applied
    for record in records:
        if isinstance(record, PaymentInstruction):
            if record.payment_id in known:
                continue
            known[record.payment_id] = record
            sign = 1 if record.kind == PaymentKind.PAYMENT else -1
            balances[f"budget:payer:{record.contract_id}"] -= sign * record.amount_minor
            balances[f"receivable:{record.payee}:pending"] += sign * record.amount_minor
            continue
        if record.payment_id not in known or record.settlement_id in applied:
            continue
        target = known[record.payment_id]
        current = state.get(record.payment_id)
        pending, paid = f"receivable:{target.payee}:pending", f"receivable:{target.payee}:paid"
        if record.status == SettlementStatus.RETURNED:
            # Only a paid payment comes back: paid -> pending, owed again.
            if current != SettlementStatus.PAID or target.kind != PaymentKind.PAYMENT:
                continue
            balances[paid] -= target.amount_minor
            balances[pending] += target.amount_minor
        elif current in (None, SettlementStatus.RETURNED):
            sign = 1 if target.kind == PaymentKind.PAYMENT else -1
            destination = paid if record.status == SettlementStatus.PAID else f"budget:payer:{target.contract_id}"
            balances[pending] -= sign * target.amount_minor
            balances[destination] += sign * target.amount_minor
        else:
            continue
        applied.add(record.settlement_id)
        state[record.payment_id] = record.status
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
            # What the store loads: the instruction and every settlement applied to it.
            known[i.payment_id] = (known[i.payment_id].applied(entry.settlement) if entry.settlement
                                   else KnownPayment(i, None))
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


# -- indicator outcomes ----------------------------------------------------------------------
# Pupils in the area's school or another school sit the 9th-grade exam in the baseline or
# the measured year and pass or not; the contract varies (published or measured baseline,
# a comparison population or not, better higher or lower, price, floor, cap, small-cell
# minimum, one payee or the area's two). The engine's decision must equal the independent
# oracle's to the øre, add up over its payees, stay under the cap, and any sequence of
# re-decisions must leave each payee's net equal to the last one, with no id issued twice.

AREA_INSTITUTIONS = ["area-daycare", "area-school"]
SCHOOLS = ["area-school", "other-school-1", "other-school-2"]
# The area's school drawn as often as the two others together, so that most cases are
# big enough to be decided rather than refused as too small.
PUPIL = st.tuples(st.sampled_from([SCHOOLS[0], *SCHOOLS]), st.sampled_from([2019, 2022]), st.booleans())
PUPILS = st.lists(PUPIL, min_size=4, max_size=50)


@st.composite
def indicator_contracts(draw: st.DrawFn) -> dict[str, object]:
    measured: dict[str, object] = {
        "id": "change", "year": 2022, "review_on": "2023-03-31",
        "indicator": {"id": "exam", "title": "exam", "better": draw(st.sampled_from(["higher", "lower"])),
                      "period": {"kind": "calendar_year"},
                      "denominator": {"kind": "has_fact", "event": "exam_result"},
                      "numerator": {"kind": "has_fact", "event": "exam_result",
                                    "where": [{"field": "grades.maths", "op": "gte", "value": 2}]}},
        "area": {"name": "area", "institutions": AREA_INSTITUTIONS},
        "price_per_point_minor": draw(st.integers(1, 10**7)),
        "floor_points": draw(st.sampled_from(["0", "0", "0.5", "1", "12.25"])),
        "cap_minor": draw(st.one_of(st.integers(1, 10**8), st.just(10**12))),
        "minimum_cell": draw(st.integers(1, 3)),
        "distribution": draw(st.sampled_from([{"kind": "area"}, {"kind": "direct", "payee": {
            "role": "institution", "institution": "municipal-fund"}}])),
    }
    if draw(st.booleans()):
        measured["baseline"] = {"year": 2019, "percent": str(draw(st.decimals(0, 100, places=2)))}
    else:
        measured["baseline"] = {"year": 2019}
        if draw(st.booleans()):
            measured["comparison"] = {"name": "rest"}
    return {"contract_id": "area-change", "version": 1, "payer": "kommune", "currency": "DKK",
            "period": {"start": "2019-01-01", "end": "2024-12-31"}, "indicator_outcomes": [measured]}


def populations(pupils: Sequence[tuple[str, int, bool]]) -> tuple[list[SubjectTimeline], list[oracle.Subject]]:
    """The same pupils as the engine's timelines and as the oracle's subjects."""
    timelines, subjects = [], []
    for n, (school, year, passed) in enumerate(pupils):
        birth = dt.date(year - 16, 1 + n % 12, 1 + n % 28)
        rows = [(f"p{n}-in", dt.date(year - 10, 8, 10), school, "primary_school",
                 {"type": "enrolled", "institution": school}),
                (f"p{n}-exam", dt.date(year, 6, 20), "exam-authority", "exam_authority",
                 {"type": "exam_result", "exam": "fp9", "grades": {"danish": 7.0, "maths": 4.0 if passed else 0.0}})]
        subject = "k1:" + hashlib.sha256(f"pupil-{n}".encode()).hexdigest()
        timelines.append(fold(subject, birth, [transition(i, d.isoformat(), by, kind, body, subject=subject, birth=birth)
                                               for i, d, by, kind, body in rows]))
        subjects.append(oracle.Subject(subject, birth, tuple(oracle.Fact(i, d, by, kind, body)
                                                             for i, d, by, kind, body in rows)))
    return timelines, subjects


def engine_decision(contract: Contract, timelines: Sequence[SubjectTimeline]) -> OutcomeDecision:
    outcome = contract.indicator_outcomes[0]
    return decide_indicator(contract, outcome, tally_cells(p for t in timelines for p in memberships(outcome, t)))


@settings(max_examples=150, deadline=None)
@given(indicator_contracts(), PUPILS)
def test_an_indicator_outcome_pays_what_the_oracle_pays_to_the_ore_within_its_cap(
        document: dict[str, object], pupils: list[tuple[str, int, bool]]) -> None:
    contract = parse_contract(yaml.safe_dump(document, sort_keys=False))
    timelines, subjects = populations(pupils)
    decision = engine_decision(contract, timelines)
    measured = document["indicator_outcomes"][0]  # type: ignore[index]
    expected = {p.payee: p.amount_minor for p in oracle.indicator_payments(document, measured, subjects)}
    assert {p.payee: p.amount_minor for p in decision.payees} == expected
    assert decision.owed_minor == sum(expected.values()) <= contract.indicator_outcomes[0].cap_minor
    assert (decision.status == OutcomeStatus.VERIFIED) == bool(expected)
    if decision.status != OutcomeStatus.VERIFIED:
        assert decision.reason is not None  # never unpaid without a named reason


@settings(max_examples=100, deadline=None)
@given(indicator_contracts(), st.lists(PUPILS, min_size=1, max_size=5))
def test_re_deciding_an_indicator_outcome_nets_each_payee_to_the_last_decision_and_issues_no_id_twice(
        document: dict[str, object], rounds: list[list[tuple[str, int, bool]]]) -> None:
    contract = parse_contract(yaml.safe_dump(document, sort_keys=False))
    issued: list[PaymentInstruction] = []
    for pupils in rounds:
        decision = engine_decision(contract, populations(pupils)[0])
        new = indicator_instructions(contract, decision, issued)
        issued += new
        assert net(issued) == {p.payee: p.amount_minor for p in decision.payees}
        assert indicator_instructions(contract, decision, issued) == []  # a replay issues nothing
        for clawback in (i for i in new if i.kind == PaymentKind.CLAWBACK):
            original = next(i for i in issued if i.payment_id == clawback.reverses_payment_id)
            assert clawback.payee == original.payee
        assert_no_payment_reversed_beyond_its_amount(issued)
    assert len({i.payment_id for i in issued}) == len(issued), "an id was issued twice"


def assert_no_payment_reversed_beyond_its_amount(issued: list[PaymentInstruction]) -> None:
    """A correction claws back the difference: part of a payment, never more than it."""
    reversed_minor: dict[str, int] = {}
    for i in issued:
        if i.kind == PaymentKind.CLAWBACK and i.reverses_payment_id:
            reversed_minor[i.reverses_payment_id] = reversed_minor.get(i.reverses_payment_id, 0) + i.amount_minor
    amounts = {i.payment_id: i.amount_minor for i in issued if i.kind == PaymentKind.PAYMENT}
    assert all(total <= amounts[pid] for pid, total in reversed_minor.items())
