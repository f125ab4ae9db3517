"""Which municipality pays: the child's residence on each outcome's own trigger date
(`eligibility.resident_on: {at: trigger, municipality}`, docs/contracts.md and
docs/tenancy.md, "Across borders").

The pure rule (a move before, after and on the trigger day; no residence known; two
outcomes of one child on either side of a move; the older fixed-date form unchanged),
the contract syntax as `stafet contract check` reports it, and finality through the
verifier's batch core over an in-memory store (tests/verifier_model.py): provisional
until the watermark passes the decision date, a late or corrected move after that moves
the money by the difference under the correcting fact's name, and the same per-partition
logs give the same instructions whatever the batching and interleaving.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import OutcomeStatus, RejectionReason, evaluate_versions
from shared.domain.contracts.loader import ContractFileError, parse_contract
from shared.domain.contracts.model import Contract
from shared.domain.contracts.timeline import fold
from shared.domain.decisions import decide_all
from shared.domain.events import PaymentKind, Transition
from shared.domain.institutions import Institution, InstitutionRegistry
from tests import oracle
from tests.engine_replay import admitted, directory_of, event_line, expected_balances
from tests.unit.test_finality import fact, instructions, interleave, per_partition_logs, replay, subject
from tests.verifier_model import InMemoryVerifier

runner = CliRunner()
TOWNS = ("town-a", "town-b")


def by_residence(town: str, day: str = "at: trigger") -> Contract:
    """The next-stage bonus paid by `town` for the children who lived there on the day:
    `at: trigger` (each enrolment's own date) or `date: ...` (one day for the contract)."""
    return parse_contract(by_residence_yaml(town, day), "<test>")


def by_residence_yaml(town: str, day: str = "at: trigger", contract_id: str = "") -> str:
    return f"""
contract_id: {contract_id or town + "-bonus"}
version: 1
payer: {town}
currency: DKK
period: {{start: 2000-01-01, end: 2030-12-31}}
eligibility:
  resident_on: {{{day}, municipality: {town}}}
outcomes:
  - id: moved-on
    trigger: {{event: enrolled}}
    max_per_subject: 10
    price: {{kind: fixed, amount_minor: 5000}}
    distribution: {{kind: direct, payee: {{role: previous_institution}}}}
"""


AT_TRIGGER = tuple(by_residence(town) for town in TOWNS)


def stay(n: int, name: str, start: dt.date, end: dt.date, tag: str = "") -> list[Transition]:
    return [fact(f"{tag}{name}-in-{n}", n, start, name, "daycare", {"type": "enrolled", "institution": name}),
            fact(f"{tag}{name}-out-{n}", n, end, name, "daycare", {"type": "left", "institution": name})]


def enrolment(n: int, name: str, on: dt.date, tag: str = "") -> Transition:
    return fact(f"{tag}{name}-in-{n}", n, on, name, "primary_school", {"type": "enrolled", "institution": name})


def move(event_id: str, n: int, on: dt.date, town: str) -> Transition:
    return fact(event_id, n, on, "cpr-register", "cpr_register", {"type": "residence", "municipality": town})


SCHOOL_DAY = dt.date(2010, 8, 1)


def child(moved_on: dt.date | None, n: int = 1) -> list[Transition]:
    """Lived in town-a from 2005 (the CPR register's `born-N` move), a daycare
    2005-2010, then enrolled at school on SCHOOL_DAY (the trigger: the daycare is paid);
    moved to town-b on `moved_on`."""
    events = [move(f"born-{n}", n, dt.date(2005, 1, 1), "town-a"),
              *stay(n, "daycare", dt.date(2005, 8, 1), dt.date(2010, 7, 31)), enrolment(n, "school", SCHOOL_DAY)]
    if moved_on is not None:
        events.append(move(f"move-{n}", n, moved_on, "town-b"))
    return events


def decided(contracts: tuple[Contract, ...], events: list[Transition]) -> dict[str, tuple[str, str | None]]:
    """Per contract: the school enrolment's decision (status, reason)."""
    timeline = fold(events[0].subject, events[0].birth_date, events)
    found = {}
    for contract in contracts:
        for decision in evaluate_versions(((contract, (dt.date.min, dt.date.max)),), timeline, dt.date(2030, 1, 1)):
            if decision.trigger_event_id.startswith("school-in"):
                found[contract.payer] = (decision.status.value, decision.reason.value if decision.reason else None)
    return found


PAID = ("verified", None)
NOT_ELIGIBLE = ("rejected", "not_eligible")


@pytest.mark.parametrize(("moved_on", "payer"), [
    (SCHOOL_DAY - dt.timedelta(days=1), "town-b"),   # moved the day before: town-b
    (SCHOOL_DAY, "town-b"),                          # moved on the trigger day: inclusive, town-b
    (SCHOOL_DAY + dt.timedelta(days=1), "town-a"),   # moved the day after: still town-a
    (None, "town-a"),                                # never moved
], ids=["before", "on-the-day", "after", "never"])
def test_the_municipality_the_child_lived_in_on_the_trigger_date_pays(moved_on: dt.date | None, payer: str) -> None:
    found = decided(AT_TRIGGER, child(moved_on))
    other = next(t for t in TOWNS if t != payer)
    assert found == {payer: PAID, other: NOT_ELIGIBLE}


def test_no_residence_known_on_or_before_the_trigger_date_is_not_eligible_anywhere() -> None:
    events = [e for e in child(None) if e.event_id != "born-1"]
    assert decided(AT_TRIGGER, events) == {"town-a": NOT_ELIGIBLE, "town-b": NOT_ELIGIBLE}
    # A move known only after the trigger does not reach back: still nobody's on the day.
    late = [*events, move("move-1", 1, SCHOOL_DAY + dt.timedelta(days=1), "town-b")]
    assert decided(AT_TRIGGER, late) == {"town-a": NOT_ELIGIBLE, "town-b": NOT_ELIGIBLE}


def test_two_outcomes_of_one_child_on_either_side_of_a_move_are_paid_by_two_municipalities() -> None:
    """The point of `at: trigger`: a fixed date names one payer for the whole contract."""
    events = [*child(dt.date(2015, 3, 1)), fact("school-out-1", 1, dt.date(2020, 6, 30), "school", "primary_school",
                                               {"type": "left", "institution": "school"}),
              enrolment(1, "college", dt.date(2020, 8, 1))]
    streams = {subject(1): events}
    paid = sorted((i.payer, i.payee) for e in decide_all(ContractBook.of(AT_TRIGGER).in_force(), streams,
                                                          dt.date(2030, 1, 1), {}).values() for i in e.instructions)
    assert paid == [("town-a", "daycare"), ("town-b", "school")]
    # The older form names one day for every outcome: both by town-a (1 Sept 2010), or both
    # by town-b (1 Sept 2016). Its meaning is unchanged.
    for day, town in (("2010-09-01", "town-a"), ("2016-09-01", "town-b")):
        fixed = tuple(by_residence(t, f"date: {day}") for t in TOWNS)
        paid = sorted((i.payer, i.payee) for e in decide_all(ContractBook.of(fixed).in_force(), streams,
                                                              dt.date(2030, 1, 1), {}).values() for i in e.instructions)
        assert paid == [(town, "daycare"), (town, "school")]


def test_two_moves_on_one_day_are_decided_by_event_id_whatever_their_order() -> None:
    events = child(None)
    moves = [move("move-x", 1, SCHOOL_DAY, "town-b"), move("move-y", 1, SCHOOL_DAY, "town-a")]
    assert decided(AT_TRIGGER, [*events, *moves]) == decided(AT_TRIGGER, [*events, *reversed(moves)]) \
        == {"town-a": PAID, "town-b": NOT_ELIGIBLE}  # move-y sorts last: town-a


def test_a_sustained_outcome_goes_by_the_residence_on_its_trigger_date_not_at_its_end() -> None:
    jobs = parse_contract("""
contract_id: town-b-jobs
version: 1
payer: town-b
currency: DKK
period: {start: 2020-01-01, end: 2030-12-31}
eligibility: {resident_on: {at: trigger, municipality: town-b}}
outcomes:
  - id: sustained
    trigger: {event: employment_started}
    sustainment: {days: 182, broken_by: [employment_ended]}
    price: {kind: fixed, amount_minor: 1000}
    distribution: {kind: direct, payee: {role: institution, institution: actor}}
""")
    started = fact("job-1", 1, dt.date(2024, 1, 10), "register", "income_register",
                   {"type": "employment_started", "employer": "firm"})
    for moved_on, status in ((dt.date(2024, 1, 10), "verified"), (dt.date(2024, 3, 1), "rejected")):
        events = [move("born-1", 1, dt.date(2005, 1, 1), "town-a"), started, move("move-1", 1, moved_on, "town-b")]
        timeline = fold(subject(1), events[0].birth_date, events)
        [decision] = evaluate_versions(((jobs, (dt.date.min, dt.date.max)),), timeline, dt.date(2030, 1, 1))
        assert decision.status.value == status, moved_on


# ---- the syntax, as `stafet contract check` reports it ------------------------------

CHECKED = by_residence("town-a").model_dump_json()


def check(tmp_path: Path, rule: str) -> tuple[int, str, str]:
    text = f"""contract_id: c
version: 1
payer: town-a
currency: DKK
period: {{start: 2000-01-01, end: 2030-12-31}}
eligibility:
  resident_on: {rule}
outcomes:
  - id: o
    trigger: {{event: enrolled}}
    price: {{kind: fixed, amount_minor: 100}}
    distribution: {{kind: direct, payee: {{role: previous_institution}}}}
"""
    path = tmp_path / "contract.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["contract", "check", str(path)])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr.replace(str(path), "contract.yaml")


@pytest.mark.parametrize(("rule", "problem"), [
    ("{municipality: town-a}",
     "contract.yaml:7: eligibility.resident_on: name the day: `date: YYYY-MM-DD` (one day for every outcome) "
     "or `at: trigger` (each outcome's own trigger date)"),
    ("{at: trigger, date: 2020-01-01, municipality: town-a}",
     "contract.yaml:7: eligibility.resident_on.at: give either `date: YYYY-MM-DD`"),
    ("{at: outcome, municipality: town-a}", "contract.yaml:7: eligibility.resident_on.at: Input should be 'trigger'"),
    ("{at: trigger}", "contract.yaml:7: eligibility.resident_on.municipality: Field required"),
], ids=["no-day", "both", "unknown-at", "no-municipality"])
def test_check_refuses_a_residence_rule_without_exactly_one_day_in_one_line(
        tmp_path: Path, rule: str, problem: str) -> None:
    code, _, errors = check(tmp_path, rule)
    assert code == 2
    assert problem in errors, errors
    assert len(errors.strip().splitlines()) == 1, errors


def test_check_accepts_both_forms_and_the_older_one_keeps_its_meaning(tmp_path: Path) -> None:
    for rule in ("{at: trigger, municipality: town-a}", "{date: 2020-01-01, municipality: town-a}"):
        code, out, errors = check(tmp_path, rule)
        assert (code, errors) == (0, ""), errors
        assert out.startswith("ok: "), out
    # A version as stored and published (JSON) reads back the same, either form.
    for contract in (by_residence("town-a"), by_residence("town-a", "date: 2020-01-01")):
        assert Contract.model_validate_json(contract.model_dump_json()) == contract
    assert by_residence("town-a", "date: 2020-01-01").eligibility.resident_on.at is None  # type: ignore[union-attr]
    with pytest.raises(ContractFileError, match="name the day"):
        parse_contract(CHECKED.replace('"at":"trigger"', '"at":null'))


def test_contract_show_says_whose_children_it_pays_for(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    for day, said in (("at: trigger", "on each outcome's trigger date"), ("date: 2019-01-01", "on 2019-01-01")):
        path.write_text(by_residence_yaml("town-a", day), encoding="utf-8")
        result = runner.invoke(app, ["contract", "show", str(path)])
        assert result.exit_code == 0, result.output
        assert f"  for the children resident in town-a {said} (the CPR register's moves)\n" in result.stdout


# ---- finality: provisional, final, corrected --------------------------------------------

def run(steps: list[tuple[list[Transition], dt.date]]) -> InMemoryVerifier:
    live = InMemoryVerifier(ContractBook.of(AT_TRIGGER), {})
    for events, mark in steps:
        live.batch(events, [mark])
        live.drain()
    return live


def test_a_move_reported_before_the_decision_date_changes_the_payer_for_free() -> None:
    review_ends = SCHOOL_DAY + dt.timedelta(days=15)
    live = run([(child(None), SCHOOL_DAY + dt.timedelta(days=3))])
    assert live.published == []  # provisional: town-a expects to pay, nothing moves
    assert live.statuses()[f"town-a-bonus|moved-on|{subject(1)}|school-in-1"] == ("pending_review", None, 5000)
    live.batch([move("move-1", 1, SCHOOL_DAY - dt.timedelta(days=10), "town-b")], [review_ends])
    live.drain()
    assert [(i.payer, i.kind, i.amount_minor) for i in live.published] == [("town-b", PaymentKind.PAYMENT, 5000)]
    assert live.causes[live.published[0].payment_id] == ("final", None)


def test_a_move_known_only_after_finality_is_a_correction_named_after_it() -> None:
    live = run([(child(None), dt.date(2011, 1, 1))])
    assert [(i.payer, i.kind.value) for i in live.published] == [("town-a", "payment")]
    # The CPR register reports late a move that happened before the school day.
    live.batch([move("move-1", 1, SCHOOL_DAY - dt.timedelta(days=10), "town-b")], [dt.date(2011, 2, 1)])
    live.drain()
    changes = [(i.payer, i.kind.value, i.amount_minor, live.causes[i.payment_id]) for i in live.published[1:]]
    assert sorted(changes) == [("town-a", "clawback", 5000, ("correction", "move-1")),
                               ("town-b", "payment", 5000, ("correction", "move-1"))]
    assert live.net_by_payee() == {("town-b-bonus", subject(1), "daycare"): 5000}


def test_a_retracted_move_after_finality_claws_back_and_the_other_municipality_pays() -> None:
    live = run([(child(SCHOOL_DAY - dt.timedelta(days=10)), dt.date(2011, 1, 1))])
    assert live.net_by_payee() == {("town-b-bonus", subject(1), "daycare"): 5000}
    retraction = fact("retract-move-1", 1, dt.date(2011, 1, 20), "cpr-register", "cpr_register",
                      {"type": "retraction", "retracts_event_id": "move-1", "reason": "registered in error"})
    live.batch([retraction], [dt.date(2011, 2, 1)])
    live.drain()
    changes = [(i.payer, i.kind.value, i.amount_minor, live.causes[i.payment_id]) for i in live.published[1:]]
    assert sorted(changes) == [("town-a", "payment", 5000, ("correction", "retract-move-1")),
                               ("town-b", "clawback", 5000, ("correction", "retract-move-1"))]
    assert live.net_by_payee() == {("town-a-bonus", subject(1), "daycare"): 5000}
    # Town-b's contract no longer concerns the child at all: its decision is withdrawn.
    assert live.statuses()[f"town-b-bonus|moved-on|{subject(1)}|school-in-1"][:2] == \
        (OutcomeStatus.REJECTED.value, RejectionReason.EVIDENCE_WITHDRAWN.value)


def day(offset: int) -> dt.date:
    return dt.date(2022, 1, 1) + dt.timedelta(days=offset)


@st.composite
def movers(draw: st.DrawFn) -> list[Transition]:
    """Children who lived in one town, sometimes moved (before, on or after their school
    day), sometimes had the move retracted later or reported late; and with one or two
    enrolments (each a trigger) on either side."""
    events: list[Transition] = []
    for n in range(draw(st.integers(1, 6))):
        tag = f"c{n}-"
        if draw(st.integers(0, 5)):  # mostly a residence from birth
            events.append(move(f"{tag}born", n, dt.date(2005, 1, 1), draw(st.sampled_from(TOWNS))))
        events += stay(n, "daycare", dt.date(2018, 8, 1), day(-1), tag)
        school = day(draw(st.integers(0, 300)))
        events += [enrolment(n, "school", school, tag)]
        if draw(st.booleans()):
            events += [fact(f"{tag}school-out-{n}", n, school + dt.timedelta(days=100), "school", "primary_school",
                            {"type": "left", "institution": "school"}),
                       enrolment(n, "college", school + dt.timedelta(days=101), tag)]
        if draw(st.booleans()):
            moved = school + dt.timedelta(days=draw(st.integers(-40, 140)))
            events.append(move(f"{tag}move", n, moved, draw(st.sampled_from(TOWNS))))
            if draw(st.integers(0, 3)) == 0:
                events.append(fact(f"{tag}retract", n, moved + dt.timedelta(days=60), "cpr-register", "cpr_register",
                                   {"type": "retraction", "retracts_event_id": f"{tag}move", "reason": "error"}))
    return events


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(movers(), st.integers(0, 10**6), st.lists(st.integers(0, 700), min_size=1, max_size=3),
       st.sampled_from(["in order", "reversed", "random"]), st.integers(1, 9), st.integers(0, 3))
def test_the_same_residence_logs_give_the_same_instructions_whatever_the_batching(
        events: list[Transition], seed: int, offsets: list[int], how: str, batch_size: int,
        crash_every: int) -> None:
    logs = per_partition_logs(events, seed, sorted({day(o) for o in offsets}))
    reference = replay(interleave(logs, "in order", 0), batch_size=10**6, contracts=AT_TRIGGER)
    variant = replay(interleave(logs, how, seed), batch_size, crash_every, contracts=AT_TRIGGER)
    assert instructions(variant) == instructions(reference)
    assert variant.net_by_payee() == reference.net_by_payee()
    for instruction in variant.published:
        if instruction.kind == PaymentKind.CLAWBACK:
            assert variant.causes[instruction.payment_id][0] == "correction", variant.causes[instruction.payment_id]
    # In the end each payee's net is what the pure rule says on all the facts: the payer
    # is the municipality of the residence on each trigger date.
    streams: dict[str, list[Transition]] = {}
    for event in events:
        streams.setdefault(event.subject, []).append(event)
    expected: dict[tuple[str, str, str], int] = {}
    for effects in decide_all(ContractBook.of(AT_TRIGGER).in_force(), streams, dt.date(2030, 1, 1), {}).values():
        for i in effects.instructions:
            expected[(i.contract_id, i.subject, i.payee)] = expected.get((i.contract_id, i.subject, i.payee), 0) \
                + i.amount_minor
    assert variant.net_by_payee() == expected


# ---- against the independent oracle (tests/oracle.py) ----------------------------------

REGISTRY = InstitutionRegistry((
    Institution(id="cpr-register", name="CPR register", kind="cpr_register"),
    Institution(id="daycare-a", name="daycare-a", kind="daycare", municipality="town-a"),
    Institution(id="daycare-b", name="daycare-b", kind="daycare", municipality="town-b"),
    Institution(id="school-a", name="school-a", kind="primary_school", municipality="town-a"),
    Institution(id="school-b", name="school-b", kind="primary_school", municipality="town-b"),
    Institution(id="college", name="college", kind="youth_education", municipality="town-b")))
ORACLE_CONTRACTS = (by_residence_yaml("town-a"), by_residence_yaml("town-b"),
                    by_residence_yaml("town-a", "date: 2019-01-01", "town-a-fixed"))


@st.composite
def lines(draw: st.DrawFn) -> list[bytes]:
    """Institution files in clear: children with a daycare, a school and sometimes a
    college, in either town; the CPR register's moves around the enrolments (on the day
    itself too), sometimes none, sometimes retracted; and a forged move from a school."""
    out: list[bytes] = []
    for n in range(draw(st.integers(1, 5))):
        cpr = f"0101{14 + n % 3:02d}-4{n:03d}"
        born = dt.date(2014 + n % 3, 1, 1)
        daycare, school = draw(st.sampled_from(["daycare-a", "daycare-b"])), draw(st.sampled_from(["school-a",
                                                                                                   "school-b"]))
        to_school = dt.date(2020, 8, 1) + dt.timedelta(days=draw(st.integers(0, 30)))
        days = [born, to_school, to_school + dt.timedelta(days=draw(st.integers(-400, 400)))]
        out += [event_line(f"d{n}-in", "2017-08-01", daycare, cpr, {"type": "enrolled", "institution": daycare}),
                event_line(f"d{n}-out", (to_school - dt.timedelta(days=1)).isoformat(), daycare, cpr,
                           {"type": "left", "institution": daycare}),
                event_line(f"s{n}-in", to_school.isoformat(), school, cpr, {"type": "enrolled", "institution": school})]
        if draw(st.booleans()):
            leaves = to_school + dt.timedelta(days=draw(st.integers(30, 300)))
            out += [event_line(f"s{n}-out", leaves.isoformat(), school, cpr, {"type": "left", "institution": school}),
                    event_line(f"c{n}-in", (leaves + dt.timedelta(days=1)).isoformat(), "college", cpr,
                               {"type": "enrolled", "institution": "college"})]
        for m in range(draw(st.integers(0, 3))):
            on = max(born, draw(st.sampled_from(days)) + dt.timedelta(days=draw(st.sampled_from([-1, 0, 0, 1, 90]))))
            town = draw(st.sampled_from(TOWNS))
            out.append(event_line(f"r{n}-{m}", on.isoformat(), "cpr-register", cpr,
                                  {"type": "residence", "municipality": town}))
            if draw(st.integers(0, 4)) == 0:
                out.append(event_line(f"r{n}-{m}-x", "2024-01-01", "cpr-register", cpr,
                                      {"type": "retraction", "retracts_event_id": f"r{n}-{m}", "reason": "error"}))
        if draw(st.integers(0, 4)) == 0:  # a school may not say where a child lives: refused, ignored
            out.append(event_line(f"f{n}", to_school.isoformat(), school, cpr,
                                  {"type": "residence", "municipality": draw(st.sampled_from(TOWNS))}))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines())
def test_the_engine_pays_by_residence_what_the_oracle_says(raw: list[bytes]) -> None:
    kinds = {i.id: i.kind for i in REGISTRY.all()}
    want = oracle.balances(oracle.payments([yaml.safe_load(text) for text in ORACLE_CONTRACTS],
                                           oracle.subjects_from_lines(raw, kinds), dt.date(2030, 1, 1)))
    got = expected_balances([parse_contract(text) for text in ORACLE_CONTRACTS], admitted(raw, REGISTRY),
                            dt.date(2030, 1, 1), directory_of(REGISTRY))
    assert got == want


def test_another_municipalitys_child_is_not_eligible_whatever_else_fails_so_no_tenant_sees_it() -> None:
    """A trigger that also fails its condition (or comes from an untrusted reporter) is
    `not_eligible` under the contract of a municipality the child did not live in that
    day: that reason is what a tenant's read role never sees (013_tenant_rows.sql), so
    town-a does not see town-b's child through a rejection for another reason."""
    strict = parse_contract(by_residence_yaml("town-a").replace(
        "trigger: {event: enrolled}", "trigger: {event: enrolled, where: [{field: institution, op: eq, value: "
        "elsewhere}], reported_by_kinds: [youth_education]}"), "<test>")
    moved = child(SCHOOL_DAY - dt.timedelta(days=30))
    assert decided((strict,), moved) == {"town-a": NOT_ELIGIBLE}
    assert decided((strict,), child(None)) == {"town-a": ("rejected", "condition_not_met")}


def test_a_trigger_before_the_contract_takes_effect_is_not_eligible_first_too() -> None:
    """`before_contract_start` would show town-a a child that lived in town-b that day."""
    late = parse_contract(by_residence_yaml("town-a").replace("version: 1", "version: 1\neffective_from: 2012-01-01"),
                          "<test>")
    timeline_of = child(SCHOOL_DAY - dt.timedelta(days=30))
    timeline = fold(timeline_of[0].subject, timeline_of[0].birth_date, timeline_of)
    versions = ((late, (dt.date(2012, 1, 1), dt.date(2030, 12, 31))),)
    reasons = {d.trigger_event_id: d.reason.value if d.reason else None
               for d in evaluate_versions(versions, timeline, dt.date(2030, 1, 1))}
    assert reasons["school-in-1"] == "not_eligible"  # lived in town-b on its trigger date
    assert reasons["daycare-in-1"] == "before_contract_start"  # lived in town-a then
