"""Contract versions and caps: a new version never pays an outcome twice, reprices by
exactly the difference, and every cap is one budget across versions; contract-wide
budgets are decided by rank, whatever the batching, crashes or a rebuild
(docs/contracts.md, "Versions" and "Caps and budgets").

The verifier's batch core (`plan_batch`) runs over an in-memory store here
(tests/verifier_model.py); tests/e2e/test_versions.py runs it against the real servers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.verifier.batch import Arrival
from services.verifier.store import UNPARTITIONED
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.model import Contract
from shared.domain.decisions import decide_all
from shared.domain.events import ClockTick, OutcomeStatus, PaymentKind, Transition
from tests.unit.builders import contract, transition
from tests.verifier_model import InMemoryVerifier

BIRTH = dt.date(2004, 9, 15)


def bonus(version: int = 1, price: int = 100, effective_from: str | None = None, caps: str = "",
          max_per_subject: int = 1) -> Contract:
    return contract(f"""
contract_id: bonus
version: {version}
payer: payer
currency: DKK
period: {{start: 2020-01-01, end: 2030-12-31}}
{f"effective_from: {effective_from}" if effective_from else ""}
outcomes:
  - id: completed
    trigger: {{event: education_completed, reported_by_kinds: [exam_authority]}}
    max_per_subject: {max_per_subject}
    price: {{kind: fixed, amount_minor: {price}}}
    distribution: {{kind: direct, payee: {{role: institution, institution: fund}}}}
{caps}
""")


def subject(n: int) -> str:
    return "k1:" + hashlib.sha256(f"subject-{n}".encode()).hexdigest()


def completed(n: int, on: str, event: str = "c") -> Transition:
    return transition(f"{event}-{n}", on, "authority", "exam_authority",
                      {"type": "education_completed", "programme": "stx", "level": "youth"},
                      subject=subject(n), birth=BIRTH)


# Watermarks ("the facts on or before this day are in"), past every fact and review window.
WATERMARK, LATER = dt.date(2025, 6, 30), dt.date(2025, 12, 31)


def verifier(*contracts: Contract) -> InMemoryVerifier:
    return InMemoryVerifier(ContractBook.of(contracts), {})


def test_an_outcome_v1_decided_is_neither_clawed_back_nor_paid_again_when_v2_exists() -> None:
    live = verifier(bonus(1))
    live.batch([completed(1, "2023-05-01")], [WATERMARK])
    live.add_contract(bonus(2, price=150, effective_from="2024-01-01"))
    live.drain()
    live.batch([completed(1, "2024-06-01", event="later")], [LATER])  # re-evaluates the subject again
    live.drain()
    assert [(i.kind, i.amount_minor) for i in live.published] == [(PaymentKind.PAYMENT, 100)]


def test_a_version_that_reprices_its_window_reconciles_to_exactly_the_difference() -> None:
    live = verifier(bonus(1))
    live.batch([completed(1, "2024-03-01")], [WATERMARK])
    before = len(live.published)
    live.add_contract(bonus(2, price=150, effective_from="2024-01-01"))
    live.drain()
    change = live.published[before:]
    net = sum(i.amount_minor if i.kind == PaymentKind.PAYMENT else -i.amount_minor for i in change)
    assert net == 50
    assert live.net_by_payee() == {("bonus", subject(1), "fund"): 150}
    live.batch([], [LATER])
    live.drain()
    assert live.published[before + len(change):] == []


def test_a_version_with_the_same_price_changes_no_payment() -> None:
    live = verifier(bonus(1))
    live.batch([completed(1, "2024-03-01")], [WATERMARK])
    live.add_contract(bonus(2, price=100, effective_from="2024-01-01"))
    live.drain()
    assert len(live.published) == 1


def test_the_total_cap_is_one_budget_across_versions() -> None:
    caps = "caps: {total_minor: 250}"
    live = verifier(bonus(1, caps=caps), bonus(2, effective_from="2024-01-01", caps=caps))
    live.batch([completed(n, "2023-05-01") for n in range(3)] + [completed(n, "2024-05-01") for n in range(3, 6)],
               [WATERMARK])
    live.drain()
    assert sum(live.net_by_payee().values()) == 250


def test_the_per_subject_cap_is_one_allowance_across_versions() -> None:
    caps = "caps: {per_subject_minor: 100}"
    live = verifier(bonus(1, price=60, caps=caps, max_per_subject=2),
                    bonus(2, price=60, effective_from="2024-01-01", caps=caps, max_per_subject=2))
    live.batch([completed(1, "2023-05-01"), completed(1, "2024-05-01", event="again")], [WATERMARK])
    live.drain()
    assert live.net_by_payee() == {("bonus", subject(1), "fund"): 100}


def test_max_per_subject_counts_across_versions() -> None:
    live = verifier(bonus(1), bonus(2, effective_from="2024-01-01"))
    live.batch([completed(1, "2023-05-01"), completed(1, "2024-05-01", event="again")], [WATERMARK])
    live.drain()
    assert live.net_by_payee() == {("bonus", subject(1), "fund"): 100}


def test_a_per_version_budget_must_be_said_and_then_holds_per_version() -> None:
    shared = "caps: {total_minor: 100}"
    own = "caps: {total_minor: 100, budget: per_version}"
    live = verifier(bonus(1, caps=shared), bonus(2, effective_from="2024-01-01", caps=own))
    live.batch([completed(1, "2023-05-01"), completed(2, "2024-05-01")], [WATERMARK])
    live.drain()
    assert sum(live.net_by_payee().values()) == 200


# ---- deterministic budgets -----------------------------------------------------------

CAPPED = bonus(1, caps="caps: {total_minor: 450, review_days: 30}")
DAYS = [dt.date(2022, 1, 1) + dt.timedelta(days=d) for d in range(0, 700, 7)]


@st.composite
def histories(draw: st.DrawFn) -> list[Transition]:
    """Up to 12 subjects completing on random days (some on the same day), in random
    arrival order, some delivered twice."""
    count = draw(st.integers(1, 12))
    events = [completed(n, draw(st.sampled_from(DAYS)).isoformat()) for n in range(count)]
    events = draw(st.permutations(events))
    return events + draw(st.lists(st.sampled_from(events), max_size=3))


def capped_keys(live: InMemoryVerifier) -> set[str]:
    return {k for k, (status, _, _) in live.statuses().items() if status == OutcomeStatus.CAPPED.value}


FINAL_WATERMARK = dt.date(2025, 1, 1)
MID_WATERMARK = dt.date(2022, 9, 1)


def log_of(events: list[Transition], ticks: bool) -> list[Arrival]:
    """The transitions log: the events, a watermark after the first half (with `ticks`:
    what comes after it is known late) and a final watermark."""
    half = len(events) // 2
    middle: list[Arrival] = [(UNPARTITIONED, ClockTick(today=MID_WATERMARK))] if ticks else []
    return [*((UNPARTITIONED, e) for e in events[:half]), *middle, *((UNPARTITIONED, e) for e in events[half:]),
            (UNPARTITIONED, ClockTick(today=FINAL_WATERMARK))]


def run(events: list[Transition], cuts: list[int], crashes: list[bool], ticks: bool,
        contracts: tuple[Contract, ...] = (CAPPED,)) -> InMemoryVerifier:
    """The log read in batches cut at `cuts`, some batches crashing first."""
    live = verifier(*contracts)
    log = log_of(events, ticks)
    bounds = sorted({0, len(log), *(c % (len(log) + 1) for c in cuts)})
    for n, (first, last) in enumerate(itertools.pairwise(bounds)):
        if crashes[n % len(crashes)]:
            live.batch([], crash=True, arrivals=log[first:last])  # rolled back, delivered again
        live.batch([], arrivals=log[first:last])
        live.drain()
    return live


def instructions(live: InMemoryVerifier) -> set[tuple[str, str, int]]:
    return {(i.payment_id, i.kind.value, i.amount_minor) for i in live.published}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.lists(st.integers(0, 40), max_size=6), st.lists(st.booleans(), min_size=1, max_size=4),
       st.booleans())
def test_the_same_instructions_for_any_batching_crash_points_and_a_rebuild(
        events: list[Transition], cuts: list[int], crashes: list[bool], ticks: bool) -> None:
    live = run(events, cuts, crashes, ticks)
    rebuilt = run(events, [], [False], ticks)  # a rebuild: everything in one batch, in order
    assert instructions(live) == instructions(rebuilt)
    assert capped_keys(live) == capped_keys(rebuilt)
    assert live.net_by_payee() == rebuilt.net_by_payee()
    assert not [i for i in live.published if i.kind == PaymentKind.CLAWBACK]  # nothing to correct here
    assert sum(live.net_by_payee().values()) <= 450
    if not ticks:  # every fact in before the one watermark: the one-pass engine's decisions
        oracle = decide_all(ContractBook.of([CAPPED]).in_force(), by_subject(events), live.today, {})
        expected = {key: d.status.value for e in oracle.values() for d in e.decisions
                    for key in [f"bonus|completed|{d.subject}|{d.trigger_event_id}"]}
        assert {k: v[0] for k, v in live.statuses().items()} == expected


def by_subject(events: list[Transition]) -> dict[str, list[Transition]]:
    streams: dict[str, list[Transition]] = {}
    for event in events:
        streams.setdefault(event.subject, []).append(event)
    return streams


def test_the_last_room_goes_by_trigger_date_then_outcome_key_not_by_arrival() -> None:
    late_but_early = completed(9, "2022-01-03")
    events = [completed(n, f"2022-02-{n + 1:02d}") for n in range(5)]
    forward = run([*events, late_but_early], [2, 4], [False], ticks=False)
    backward = run([late_but_early, *reversed(events)], [1, 3], [False], ticks=False)
    assert capped_keys(forward) == capped_keys(backward)
    # 450 of 600: the earliest four are paid (the fourth half), the latest subjects capped
    assert forward.net_by_payee()[("bonus", subject(9), "fund")] == 100
    assert ("bonus", subject(4), "fund") not in forward.net_by_payee()


# ---- versions arriving incrementally -----------------------------------------------

@st.composite
def version_sequences(draw: st.DrawFn) -> list[Contract]:
    count = draw(st.integers(1, 4))
    starts = sorted(draw(st.lists(st.sampled_from(DAYS), min_size=count, max_size=count)))
    review_days = draw(st.sampled_from([0, 14]))
    caps = f"caps: {{total_minor: 500, per_subject_minor: 150, review_days: {review_days}}}"
    return [bonus(n + 1, price=draw(st.sampled_from([40, 100, 130])), caps=caps,
                  max_per_subject=draw(st.integers(1, 3)),
                  effective_from=None if n == 0 else starts[n].isoformat()) for n in range(count)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), version_sequences(), st.lists(st.integers(0, 40), min_size=1, max_size=4))
def test_paying_as_versions_arrive_equals_paying_once_with_the_final_book_and_no_cap_is_exceeded(
        events: list[Transition], versions: list[Contract], cuts: list[int]) -> None:
    extra = [completed(n, DAYS[(n * 13) % len(DAYS)].isoformat(), event="again") for n in range(0, 12, 3)]
    events = events + extra
    live = verifier(versions[0])
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    pieces = [events[a:b] for a, b in itertools.pairwise(bounds)]
    for n, piece in enumerate(pieces):
        # Every fact arrives before the watermark that covers it (none is late): a
        # version that arrives after the watermark reprices by the difference.
        live.batch(piece)
        if n + 1 < len(versions):
            live.add_contract(versions[n + 1])
        live.drain()
    live.batch([], [FINAL_WATERMARK])
    for version in versions:
        live.add_contract(version)
    live.drain()
    once = decide_all(ContractBook.of(versions).in_force(), by_subject(events), live.today, {})
    expected: dict[tuple[str, str, str], int] = {}
    for effects in once.values():
        for i in effects.instructions:
            expected[(i.contract_id, i.subject, i.payee)] = expected.get((i.contract_id, i.subject, i.payee), 0) \
                + i.amount_minor
    assert live.net_by_payee() == {k: v for k, v in expected.items() if v}
    assert sum(live.net_by_payee().values()) <= 500
    assert all(v <= 150 for v in live.net_by_payee().values())
