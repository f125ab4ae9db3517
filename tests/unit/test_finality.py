"""Money moves once (docs/contracts.md, "Finality"): the instructions are a function of the
per-partition logs of facts and watermarks, whatever the batching, the interleaving of
partitions or a crash; an outcome is provisional until the watermark passes its decision
date; a late claim never displaces a final grant; a correction moves money by the
difference, under an id derived from the correcting event.

The verifier's batch core (`plan_batch`, `frontier_step`) runs over an in-memory store
(tests/verifier_model.py); `make determinism` runs the same check against PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.verifier.batch import Arrival
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.model import Contract
from shared.domain.events import ClockTick, PaymentKind, Transition
from tests.unit.builders import contract, transition
from tests.verifier_model import InMemoryVerifier

BIRTH = dt.date(2004, 9, 15)
PARTITIONS = (0, 1, 2)


def subject(n: int) -> str:
    return "k1:" + hashlib.sha256(f"subject-{n}".encode()).hexdigest()


def fact(event_id: str, n: int, on: dt.date, by: str, kind: str, body: dict[str, object]) -> Transition:
    return transition(event_id, on.isoformat(), by, kind, body, subject=subject(n), birth=BIRTH)


CAPPED = contract("""
contract_id: capped
version: 1
payer: payer
currency: DKK
period: {start: 2020-01-01, end: 2030-12-31}
outcomes:
  - id: completed
    trigger: {event: education_completed, reported_by_kinds: [exam_authority]}
    price: {kind: fixed, amount_minor: 100}
    distribution: {kind: direct, payee: {role: institution, institution: fund}}
caps: {total_minor: 450}
""")
JOBS = contract("""
contract_id: jobs
version: 1
payer: payer
currency: DKK
period: {start: 2020-01-01, end: 2030-12-31}
outcomes:
  - id: sustained
    trigger: {event: employment_started, reported_by_kinds: [income_register]}
    sustainment: {days: 182, broken_by: [employment_ended]}
    price: {kind: fixed, amount_minor: 1000}
    distribution: {kind: direct, payee: {role: institution, institution: actor}}
""")
CHAIN = contract("""
contract_id: chain
version: 1
payer: payer
currency: DKK
period: {start: 2020-01-01, end: 2030-12-31}
outcomes:
  - id: completed
    trigger: {event: education_completed, reported_by_kinds: [exam_authority]}
    price: {kind: fixed, amount_minor: 400000}
    distribution: {kind: solidarity, year_basis: {kind: calendar}, weights: {"0-19": "0.05"}}
""")
CONTRACTS = (CAPPED, JOBS, CHAIN)
START = dt.date(2022, 1, 1)


def day(offset: int) -> dt.date:
    return START + dt.timedelta(days=offset)


@st.composite
def populations(draw: st.DrawFn) -> list[Transition]:
    """Subjects with a school chain (a late registration moves a solidarity share), a
    completion (capped; sometimes retracted later), a job (sometimes ended inside its
    sustainment)."""
    events: list[Transition] = []
    for n in range(draw(st.integers(1, 7))):
        school = f"school-{draw(st.integers(0, 2))}"
        events.append(fact(f"enrol-{n}", n, dt.date(2010, 8, 1), school, "primary_school",
                           {"type": "enrolled", "institution": school}))
        if draw(st.booleans()):
            events.append(fact(f"college-{n}", n, dt.date(2020, 8, 1), "college", "youth_education",
                               {"type": "enrolled", "institution": "college"}))
        done = day(draw(st.integers(0, 500)))
        events.append(fact(f"done-{n}", n, done, "authority", "exam_authority",
                           {"type": "education_completed", "programme": "stx", "level": "youth"}))
        if draw(st.integers(0, 4)) == 0:
            events.append(fact(f"retract-{n}", n, done + dt.timedelta(days=40), "authority", "exam_authority",
                               {"type": "retraction", "retracts_event_id": f"done-{n}", "reason": "wrong pupil"}))
        if draw(st.booleans()):
            started = day(draw(st.integers(0, 400)))
            events.append(fact(f"job-{n}", n, started, "register", "income_register",
                               {"type": "employment_started", "employer": "firm"}))
            if draw(st.booleans()):
                ended = started + dt.timedelta(days=draw(st.integers(10, 300)))
                events.append(fact(f"end-{n}", n, ended, "register", "income_register",
                                   {"type": "employment_ended", "employer": "firm"}))
    return events


def partition_of(event: Transition) -> int:
    return int(hashlib.sha256(event.subject.encode()).hexdigest(), 16) % len(PARTITIONS)


def per_partition_logs(events: list[Transition], order_seed: int, marks: list[dt.date]) -> dict[int, list[Arrival]]:
    """Each partition's log: its facts in a seeded order, with the watermarks (every mark
    on every partition, in date order) at seeded positions among them."""
    chance = random.Random(order_seed)
    logs: dict[int, list[Arrival]] = {}
    for partition in PARTITIONS:
        facts = [e for e in events if partition_of(e) == partition]
        chance.shuffle(facts)
        cuts = sorted(chance.randint(0, len(facts)) for _ in marks)
        log: list[Arrival] = []
        at = 0
        for mark, cut in zip(marks, cuts, strict=True):
            log.extend((partition, f) for f in facts[at:cut])
            log.append((partition, ClockTick(today=mark)))
            at = cut
        log.extend((partition, f) for f in facts[at:])
        log.append((partition, ClockTick(today=FINAL)))
        logs[partition] = log
    return logs


FINAL = dt.date(2026, 1, 1)


def interleave(logs: dict[int, list[Arrival]], how: str, seed: int) -> list[Arrival]:
    """One reading order of the per-partition logs: each partition's own order kept."""
    queues = {p: list(log) for p, log in logs.items()}
    if how == "in order":
        return [a for p in sorted(queues) for a in queues[p]]
    if how == "reversed":
        return [a for p in sorted(queues, reverse=True) for a in queues[p]]
    chance, merged = random.Random(seed), []
    while any(queues.values()):
        partition = chance.choice([p for p, q in queues.items() if q])
        merged.append(queues[partition].pop(0))
    return merged


def replay(arrivals: list[Arrival], batch_size: int, crash_every: int = 0,
           contracts: tuple[Contract, ...] = CONTRACTS) -> InMemoryVerifier:
    live = InMemoryVerifier(ContractBook.of(contracts), {}, sweep_subjects_max=2, partition_ids=PARTITIONS)
    for n, first in enumerate(range(0, len(arrivals), batch_size)):
        if crash_every and n % crash_every == 0:
            live.batch([], crash=True, arrivals=arrivals[first:first + batch_size])
        live.batch([], arrivals=arrivals[first:first + batch_size])
        live.drain()
    return live


def instructions(live: InMemoryVerifier) -> set[tuple[str, str, int]]:
    return {(i.payment_id, i.kind.value, i.amount_minor) for i in live.published}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(populations(), st.integers(0, 10**6), st.lists(st.integers(0, 700), min_size=1, max_size=3),
       st.sampled_from(["in order", "reversed", "random"]), st.integers(1, 9), st.integers(0, 3))
def test_any_batching_and_interleaving_of_the_same_partition_logs_gives_the_same_instructions(
        events: list[Transition], seed: int, offsets: list[int], how: str, batch_size: int,
        crash_every: int) -> None:
    logs = per_partition_logs(events, seed, sorted({day(o) for o in offsets}))
    reference = replay(interleave(logs, "in order", 0), batch_size=10**6)
    variant = replay(interleave(logs, how, seed), batch_size, crash_every)
    assert instructions(variant) == instructions(reference)
    assert variant.net_by_payee() == reference.net_by_payee()
    # Every clawback names the fact that caused it (a retraction, a late breaking event).
    for instruction in variant.published:
        if instruction.kind == PaymentKind.CLAWBACK:
            assert variant.causes[instruction.payment_id][0] == "correction", variant.causes[instruction.payment_id]
    assert sum(a for (c, _, _), a in variant.net_by_payee().items() if c == "capped") <= 450


def completion(n: int, on: dt.date) -> Transition:
    return fact(f"done-{n}", n, on, "authority", "exam_authority",
                {"type": "education_completed", "programme": "stx", "level": "youth"})


def test_an_outcome_is_provisional_until_the_watermark_passes_its_decision_date_then_paid_once() -> None:
    live = InMemoryVerifier(ContractBook.of([CAPPED]), {})
    live.batch([completion(1, dt.date(2024, 3, 1))], [dt.date(2024, 3, 10)])  # 15 days' review not over
    live.drain()
    assert live.published == []
    assert live.statuses()[f"capped|completed|{subject(1)}|done-1"] == ("pending_review", None, 100)
    live.batch([], [dt.date(2024, 3, 16)])
    live.drain()
    assert [(i.kind, i.amount_minor) for i in live.published] == [(PaymentKind.PAYMENT, 100)]
    assert live.causes[live.published[0].payment_id] == ("final", None)
    live.batch([], [dt.date(2025, 1, 1)])
    live.drain()
    assert len(live.published) == 1


def test_another_subjects_later_fact_does_not_make_a_job_look_sustained() -> None:
    # Partition 0 carries a job started 2024-01-10; partition 1 a fact dated 2025. Under
    # the old clock (the latest date any partition saw) the job looked sustained at once.
    live = InMemoryVerifier(ContractBook.of([JOBS]), {}, partition_ids=(0, 1))
    job = fact("job-1", 1, dt.date(2024, 1, 10), "register", "income_register",
               {"type": "employment_started", "employer": "firm"})
    other = fact("job-2", 2, dt.date(2025, 6, 1), "register", "income_register",
                 {"type": "employment_started", "employer": "firm"})
    live.batch([], arrivals=[(0, job), (1, other), (0, ClockTick(today=dt.date(2024, 2, 1))),
                             (1, ClockTick(today=dt.date(2024, 2, 1)))])
    live.drain()
    assert live.published == []
    ended = fact("end-1", 1, dt.date(2024, 3, 1), "register", "income_register",
                 {"type": "employment_ended", "employer": "firm"})
    mark = dt.date(2024, 12, 31)
    live.batch([], arrivals=[(0, ended), (0, ClockTick(today=mark)), (1, ClockTick(today=mark))])
    live.drain()
    assert live.published == []  # never paid, so nothing to claw back
    assert live.statuses()[f"jobs|sustained|{subject(1)}|job-1"][:2] == ("rejected", "not_sustained")


def test_a_late_earlier_claim_does_not_displace_a_final_grant_it_gets_what_is_left() -> None:
    live = InMemoryVerifier(ContractBook.of([CAPPED]), {})
    on_time = [completion(n, dt.date(2024, 3, n + 1)) for n in range(1, 5)]  # 400 of the 450
    live.batch(on_time, [dt.date(2024, 6, 1)])
    live.drain()
    paid = instructions(live)
    assert sum(a for _, _, a in paid) == 400
    late = completion(9, dt.date(2024, 1, 2))  # earlier than all of them, known after the watermark
    late2 = completion(10, dt.date(2024, 1, 3))
    live.batch([late, late2], [dt.date(2024, 7, 1)])
    live.drain()
    assert paid <= instructions(live)  # nothing granted before was clawed back
    assert not [i for i in live.published if i.kind == PaymentKind.CLAWBACK]
    net = live.net_by_payee()
    assert net[("capped", subject(9), "fund")] == 50  # what was left
    assert ("capped", subject(10), "fund") not in net
    assert live.statuses()[f"capped|completed|{subject(10)}|done-10"][:2] == ("capped", "late_claim")


def test_a_retraction_after_finality_claws_back_under_an_id_derived_from_it() -> None:
    live = InMemoryVerifier(ContractBook.of([CAPPED]), {})
    live.batch([completion(1, dt.date(2024, 3, 1))], [dt.date(2024, 6, 1)])
    live.drain()
    retraction = fact("retract-1", 1, dt.date(2024, 6, 5), "authority", "exam_authority",
                      {"type": "retraction", "retracts_event_id": "done-1", "reason": "wrong pupil"})
    live.batch([retraction], [dt.date(2024, 7, 1)])
    live.drain()
    clawback = live.published[-1]
    assert (clawback.kind, clawback.amount_minor) == (PaymentKind.CLAWBACK, 100)
    assert live.causes[clawback.payment_id] == ("correction", "retract-1")
    assert live.net_by_payee() == {}


def test_a_late_registration_moves_a_solidarity_share_by_the_difference_only() -> None:
    live = InMemoryVerifier(ContractBook.of([CHAIN]), {})
    school = fact("enrol-1", 1, dt.date(2010, 8, 1), "school-0", "primary_school",
                  {"type": "enrolled", "institution": "school-0"})
    live.batch([school, completion(1, dt.date(2024, 3, 1))], [dt.date(2024, 6, 1)])
    live.drain()
    first = list(live.published)
    college = fact("college-1", 1, dt.date(2020, 8, 1), "college", "youth_education",
                   {"type": "enrolled", "institution": "college"})
    live.batch([college], [dt.date(2024, 7, 1)])
    live.drain()
    changes = live.published[len(first):]
    # school-0 gives up part of its share (a partial clawback), the college gets its own;
    # the unchanged part of school-0's payment is neither reversed nor paid again.
    kinds = sorted((i.payee, i.kind.value) for i in changes)
    assert kinds == [("college", "payment"), ("school-0", "clawback")]
    assert next(i for i in changes if i.payee == "school-0").amount_minor < first[0].amount_minor
    assert {live.causes[i.payment_id] for i in changes} == {("correction", "college-1")}


def test_the_worked_example_of_docs_contracts_md_in_any_reading_order() -> None:
    bonus = contract(CAPPED.model_dump_json().replace('"total_minor":450', '"total_minor":250'))
    a, b, c = completion(1, dt.date(2024, 3, 1)), completion(2, dt.date(2024, 3, 5)), completion(3, dt.date(2024, 2, 1))
    retract_b = fact("retract-2", 2, dt.date(2024, 5, 2), "authority", "exam_authority",
                     {"type": "retraction", "retracts_event_id": "done-2", "reason": "reported in error"})

    def marks(day: dt.date) -> list[Arrival]:
        return [(0, ClockTick(today=day)), (1, ClockTick(today=day))]

    steps: list[list[Arrival]] = [[(0, a), (1, b)], marks(dt.date(2024, 3, 10)), [(0, c)],
                                  marks(dt.date(2024, 4, 30)), [(1, retract_b), *marks(dt.date(2024, 5, 31))]]
    runs = []
    for order in (1, -1):
        live = InMemoryVerifier(ContractBook.of([bonus]), {}, partition_ids=(0, 1))
        for step in steps:
            live.batch([], arrivals=sorted(step, key=lambda arrival: order * arrival[0]))
            live.drain()
            if step is steps[1]:
                assert live.published == []  # A and B provisional until 03-16 and 03-20
        runs.append(live)
    first, second = runs
    assert instructions(first) == instructions(second)
    assert first.net_by_payee() == {("capped", subject(1), "fund"): 100, ("capped", subject(3), "fund"): 100}
    assert sorted((i.subject, i.kind.value, i.amount_minor, first.causes[i.payment_id]) for i in first.published) == \
        sorted([(subject(1), "payment", 100, ("final", None)), (subject(2), "payment", 100, ("final", None)),
                (subject(3), "payment", 50, ("correction", "done-3")),  # the late claim: what was left
                (subject(2), "clawback", 100, ("correction", "retract-2")),
                (subject(3), "payment", 50, ("recheck", None))])  # the room B's retraction freed


def test_the_clock_says_the_date_given_or_today_less_the_reporting_lag() -> None:
    from cli.main import watermark_day

    today = dt.date(2026, 12, 5)
    assert watermark_day(None, 0, today) == today
    assert watermark_day(None, 7, today) == dt.date(2026, 11, 28)
    assert watermark_day(dt.date(2024, 6, 30), 7, today) == dt.date(2024, 6, 30)


def test_the_clock_refuses_a_date_with_a_cadence_in_one_error_line() -> None:
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["clock", "--date", "2024-06-30", "--every", "3600"])
    assert result.exit_code == 2
    assert result.output.startswith("error: "), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
