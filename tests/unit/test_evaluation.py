"""Contract evaluation: each rule kind, and each rejection reason, by behaviour."""

from __future__ import annotations

import datetime as dt

from shared.domain.contracts.evaluation import OutcomeStatus, RejectionReason, evaluate_subject
from shared.domain.contracts.timeline import fold
from tests.unit.builders import BIRTH, HEADER, SUBJECT, contract, enrolled, left, transition

D = dt.date
JOB = """
outcomes:
  - id: job
    trigger: {event: employment_started, reported_by_kinds: [income_register]}
    price: {kind: fixed, amount_minor: 1000}
    distribution: {kind: direct, payee: {role: event_field, field: employer}}
  - id: job-held
    trigger: {event: employment_started, reported_by_kinds: [income_register]}
    sustainment: {days: 91, broken_by: [employment_ended], same_field: employer}
    prerequisites: [job]
    price: {kind: fixed, amount_minor: 2000}
    distribution: {kind: direct, payee: {role: event_field, field: employer}}
"""


def started(event_id: str, on: str, employer: str = "firm", by_kind: str = "income_register"):  # type: ignore[no-untyped-def]
    return transition(event_id, on, "register", by_kind,
                      {"type": "employment_started", "employer": employer})


def ended(event_id: str, on: str, employer: str = "firm"):  # type: ignore[no-untyped-def]
    return transition(event_id, on, "register", "income_register",
                      {"type": "employment_ended", "employer": employer})


def decide(yaml: str, events: list, on: str):  # type: ignore[no-untyped-def,type-arg]
    return evaluate_subject(contract(HEADER + yaml), fold(SUBJECT, BIRTH, events), D.fromisoformat(on))


def by_outcome(decisions):  # type: ignore[no-untyped-def]
    return {d.outcome_id: d for d in decisions}


def test_direct_payment_goes_to_the_employer_named_by_the_trigger() -> None:
    decision = by_outcome(decide(JOB, [started("e1", "2024-01-01")], "2024-01-02"))["job"]
    assert decision.status == OutcomeStatus.VERIFIED
    assert [(p.payee, p.amount_minor) for p in decision.payees] == [("firm", 1000)]


def test_sustainment_is_pending_until_its_period_has_passed() -> None:
    decisions = by_outcome(decide(JOB, [started("e1", "2024-01-01")], "2024-03-01"))
    assert decisions["job-held"].status == OutcomeStatus.PENDING_SUSTAINMENT
    assert decisions["job-held"].occurred_on == D(2024, 4, 1)


def test_sustainment_verifies_once_held_for_its_days() -> None:
    decisions = by_outcome(decide(JOB, [started("e1", "2024-01-01")], "2024-04-01"))
    assert decisions["job-held"].status == OutcomeStatus.VERIFIED


def test_a_breaking_event_within_the_period_rejects_as_not_sustained() -> None:
    events = [started("e1", "2024-01-01"), ended("e2", "2024-02-01")]
    decision = by_outcome(decide(JOB, events, "2024-06-01"))["job-held"]
    assert decision.reason == RejectionReason.NOT_SUSTAINED


def test_a_breaking_event_at_another_employer_does_not_break_this_job() -> None:
    events = [started("e1", "2024-01-01"), ended("e2", "2024-02-01", employer="other")]
    assert by_outcome(decide(JOB, events, "2024-06-01"))["job-held"].status == OutcomeStatus.VERIFIED


def test_evidence_from_an_untrusted_kind_is_rejected() -> None:
    decision = by_outcome(decide(JOB, [started("e1", "2024-01-01", by_kind="employer")], "2024-02-01"))["job"]
    assert decision.reason == RejectionReason.UNTRUSTED_EVIDENCE


def test_evidence_reported_by_the_institution_that_would_be_paid_is_rejected() -> None:
    events = [transition("e1", "2024-01-01", "firm", "income_register",
                         {"type": "employment_started", "employer": "firm"})]
    assert by_outcome(decide(JOB, events, "2024-02-01"))["job"].reason == \
        RejectionReason.SELF_REPORTED_EVIDENCE


def test_an_outcome_beyond_max_per_subject_is_rejected() -> None:
    events = [started("e1", "2024-01-01"), started("e2", "2024-03-01", employer="firm2")]
    jobs = [d for d in decide(JOB, events, "2024-04-01") if d.outcome_id == "job"]
    assert [d.status for d in jobs] == [OutcomeStatus.VERIFIED, OutcomeStatus.REJECTED]
    assert jobs[1].reason == RejectionReason.MAX_PER_SUBJECT_REACHED


def test_a_missing_prerequisite_rejects_the_later_outcome() -> None:
    yaml = JOB.replace("reported_by_kinds: [income_register]}\n    price: {kind: fixed, amount_minor: 1000}",
                       "reported_by_kinds: [income_register], age_at_least: 60}\n    price: {kind: fixed, amount_minor: 1000}")
    decisions = by_outcome(decide(yaml, [started("e1", "2024-01-01")], "2024-06-01"))
    assert decisions["job"].reason == RejectionReason.AGE_LIMIT
    assert decisions["job-held"].reason == RejectionReason.PREREQUISITE_MISSING


EXAM = """
outcomes:
  - id: exam
    trigger:
      event: exam_result
      where:
        - {field: grades.danish, op: gte, value: 2}
        - {field: grades.maths, op: gte, value: 2}
    deadline: 2021-12-31
    price: {kind: fixed, amount_minor: 300}
    distribution: {kind: direct, payee: {role: institution, institution: school}}
"""


def exam(event_id: str, on: str, danish: float, maths: float):  # type: ignore[no-untyped-def]
    return transition(event_id, on, "authority", "exam_authority",
                      {"type": "exam_result", "grades": {"danish": danish, "maths": maths}})


def test_exam_predicates_verify_at_or_above_two_in_danish_and_maths() -> None:
    assert decide(EXAM, [exam("x", "2020-06-20", 2.0, 7.0)], "2021-01-01")[0].status == OutcomeStatus.VERIFIED


def test_exam_below_the_bar_is_rejected_as_condition_not_met() -> None:
    assert decide(EXAM, [exam("x", "2020-06-20", 7.0, 0.0)], "2021-01-01")[0].reason == \
        RejectionReason.CONDITION_NOT_MET


def test_a_trigger_after_the_deadline_is_rejected() -> None:
    assert decide(EXAM, [exam("x", "2022-06-20", 7.0, 7.0)], "2023-01-01")[0].reason == \
        RejectionReason.AFTER_DEADLINE


def test_a_trigger_outside_the_contract_period_is_rejected() -> None:
    yaml = EXAM.replace("deadline: 2021-12-31", "")
    text = HEADER.replace("start: 2000-01-01", "start: 2021-01-01") + yaml
    timeline = fold(SUBJECT, BIRTH, [exam("x", "2020-06-20", 7.0, 7.0)])
    decisions = evaluate_subject(contract(text), timeline, D(2022, 1, 1))
    assert decisions[0].reason == RejectionReason.OUTSIDE_CONTRACT_PERIOD


def test_a_subject_outside_the_eligible_cohort_is_rejected() -> None:
    text = HEADER + "eligibility: {birth_year_from: 2010}\n" + EXAM
    timeline = fold(SUBJECT, BIRTH, [exam("x", "2020-06-20", 7.0, 7.0)])
    assert evaluate_subject(contract(text), timeline, D(2021, 1, 1))[0].reason == \
        RejectionReason.NOT_ELIGIBLE


def test_eligibility_by_enrolment_at_a_kind_on_a_reference_date() -> None:
    text = HEADER + ("eligibility: {enrolled_on: {date: 2019-01-01, kinds: [primary_school]}}\n"
                     + EXAM)
    at_school = [enrolled("s1", "2015-08-01", "school"), exam("x", "2020-06-20", 7.0, 7.0)]
    not_yet = [enrolled("s1", "2019-08-01", "school"), exam("x", "2020-06-20", 7.0, 7.0)]
    assert evaluate_subject(contract(text), fold(SUBJECT, BIRTH, at_school), D(2021, 1, 1))[-1].status \
        == OutcomeStatus.VERIFIED
    assert evaluate_subject(contract(text), fold(SUBJECT, BIRTH, not_yet), D(2021, 1, 1))[-1].reason \
        == RejectionReason.NOT_ELIGIBLE


SPLIT = """
outcomes:
  - id: job
    trigger: {event: employment_started}
    price: {kind: fixed, amount_minor: 1001}
    distribution:
      kind: split
      shares:
        - {payee: {role: registered_kind, kind: employment_actor}, share: "0.5"}
        - {payee: {role: event_field, field: employer}, share: "0.5"}
"""


def test_double_sided_split_pays_both_parties_and_conserves_the_price() -> None:
    events = [enrolled("a", "2023-01-01", "actor", kind="employment_actor"), started("e1", "2024-01-01")]
    decision = decide(SPLIT, events, "2024-01-02")[-1]
    assert {p.payee: p.amount_minor for p in decision.payees} == {"actor": 501, "firm": 500}


def test_split_without_a_registered_employment_actor_has_no_payee() -> None:
    assert decide(SPLIT, [started("e1", "2024-01-01")], "2024-01-02")[0].reason == RejectionReason.NO_PAYEE


RATE = """
outcomes:
  - id: transfer
    trigger: {event: transfer}
    max_per_subject: 5
    price: {kind: rate, rate: "0.05", of_field: compensation_minor}
    distribution: {kind: direct, payee: {role: previous_institution}}
"""


def test_rate_price_is_five_percent_of_the_compensation_rounded_down() -> None:
    events = [enrolled("a", "2015-01-01", "club-a", kind="club"),
              transition("t", "2020-01-01", "fa", "association",
                         {"type": "transfer", "from_institution": "club-a", "to_institution": "club-b",
                          "compensation_minor": 1999, "currency": "DKK"})]
    decision = next(d for d in decide(RATE, events, "2020-01-02") if d.outcome_id == "transfer")
    assert decision.payees[0].payee == "club-a"
    assert decision.owed_minor == 99


def test_a_zero_compensation_transfer_is_rejected_as_no_amount() -> None:
    events = [enrolled("a", "2015-01-01", "club-a", kind="club"),
              transition("t", "2020-01-01", "fa", "association",
                         {"type": "transfer", "from_institution": "club-a", "to_institution": "club-b",
                          "compensation_minor": 0, "currency": "DKK"})]
    assert decide(RATE, events, "2020-01-02")[0].reason == RejectionReason.NO_AMOUNT


CAPPED = """
outcomes:
  - id: moved
    trigger: {event: enrolled}
    max_per_subject: 10
    price: {kind: fixed, amount_minor: 400}
    distribution: {kind: direct, payee: {role: previous_institution}}
caps: {per_subject_minor: 1000}
"""


def test_per_subject_cap_pays_what_fits_then_records_capped_outcomes_owing_nothing() -> None:
    events = [enrolled("1", "2010-01-01", "a"), left("2", "2010-12-31", "a"),
              enrolled("3", "2011-01-01", "b"), left("4", "2011-12-31", "b"),
              enrolled("5", "2012-01-01", "c"), left("6", "2012-12-31", "c"),
              enrolled("7", "2013-01-01", "d"), left("8", "2013-12-31", "d"),
              enrolled("9", "2014-01-01", "e")]
    paid = [d for d in decide(CAPPED, events, "2015-01-01") if d.status != OutcomeStatus.REJECTED]
    assert [d.owed_minor for d in paid] == [400, 400, 200, 0]
    assert paid[-1].status == OutcomeStatus.CAPPED


def test_a_retracted_trigger_no_longer_yields_an_outcome() -> None:
    events = [exam("x", "2020-06-20", 7.0, 7.0),
              transition("r", "2020-07-01", "authority", "exam_authority",
                         {"type": "retraction", "retracts_event_id": "x"})]
    assert decide(EXAM, events, "2021-01-01") == ()


def test_an_amendment_replaces_the_body_it_amends() -> None:
    events = [exam("x", "2020-06-20", 7.0, 0.0),
              transition("m", "2020-07-01", "authority", "exam_authority",
                         {"type": "amendment", "amends_event_id": "x",
                          "body": {"type": "exam_result", "grades": {"danish": 7.0, "maths": 4.0}}})]
    assert decide(EXAM, events, "2021-01-01")[0].status == OutcomeStatus.VERIFIED


def test_arrival_order_and_duplicates_do_not_change_decisions() -> None:
    events = [enrolled("1", "2010-01-01", "a"), left("2", "2010-12-31", "a"),
              enrolled("3", "2011-01-01", "b")]
    forward = decide(CAPPED, events, "2015-01-01")
    assert decide(CAPPED, list(reversed(events)) + events[:1], "2015-01-01") == forward
