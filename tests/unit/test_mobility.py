"""The social mobility bonus: the starting point (parents' highest completed education,
a register fact) as eligibility and as a weight on the price."""

from __future__ import annotations

import datetime as dt
import json

from cli.publish import seal_line
from shared.domain.admission import Reason, SubjectResolver, admit, as_reported
from shared.domain.contracts.evaluation import OutcomeStatus, evaluate_subject
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.mobility import parents_education
from shared.domain.contracts.timeline import fold
from shared.domain.dead_letters import DeadLetter
from shared.domain.events import Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.sealing import development_private_key
from shared.platform.settings import REPO_ROOT
from tests.unit.builders import BIRTH, HEADER, SUBJECT, contract, enrolled, left, transition

MOBILITY = load_contract(REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml")
ON = dt.date(2026, 1, 1)


def starting_point(event_id: str, level: str, on: str = "2005-01-01") -> Transition:
    return transition(event_id, on, "education-register", "education_register",
                      {"type": "parental_education", "highest_level": level})


def completed() -> list[Transition]:
    """Daycare, school and college, and a youth education completed at 19."""
    return [enrolled("d1", "2005-08-01", "daycare-a", "daycare"), left("d2", "2010-07-31", "daycare-a", "daycare"),
            enrolled("s1", "2010-08-01", "school-a"), left("s2", "2020-06-26", "school-a"),
            enrolled("c1", "2020-08-10", "college-a", "youth_education"),
            left("c2", "2023-06-23", "college-a", "youth_education"),
            transition("done", "2023-06-23", "exam-authority", "exam_authority",
                       {"type": "education_completed", "programme": "stx", "level": "youth"})]


def youth_bonus(events: list[Transition]) -> int:
    decisions = evaluate_subject(MOBILITY, fold(SUBJECT, BIRTH, events), ON)
    (decision,) = [d for d in decisions if d.outcome_id == "youth-education-completed"]
    assert decision.status == OutcomeStatus.VERIFIED
    return decision.owed_minor


def test_the_example_mobility_bonus_pays_half_again_when_the_parents_have_only_primary_school() -> None:
    # The pot is 40,000 DKK (60,000 weighted); the chain's share of it is what is owed
    # (the years before daycare stay with the municipality).
    base = youth_bonus(completed())  # no starting point known: the base price
    assert 0 < base < 4_000_000
    assert youth_bonus([*completed(), starting_point("p", "higher")]) == base
    weighted = youth_bonus([*completed(), starting_point("p", "primary")])
    assert abs(2 * weighted - 3 * base) <= 6  # 1.5 times, up to each of three payees' rounding


def test_the_latest_reported_starting_point_counts() -> None:
    corrected = [starting_point("p1", "primary"), starting_point("p2", "vocational", on="2006-01-01")]
    assert parents_education(fold(SUBJECT, BIRTH, corrected)) == "vocational"
    assert youth_bonus([*completed(), *corrected]) == youth_bonus(completed())


ELIGIBLE_ONLY_FROM_PRIMARY = HEADER + """
eligibility: {parents_education_in: [primary]}
outcomes:
  - id: done
    trigger: {event: education_completed, reported_by_kinds: [exam_authority]}
    price: {kind: fixed, amount_minor: 100000}
    distribution: {kind: direct, payee: {role: institution, institution: college-a}}
"""


def test_eligibility_by_starting_point_pays_only_the_children_it_names() -> None:
    rules = contract(ELIGIBLE_ONLY_FROM_PRIMARY)
    paid = [d.owed_minor for d in evaluate_subject(rules, fold(SUBJECT, BIRTH, [
        *completed(), starting_point("p", "primary")]), ON) if d.status == OutcomeStatus.VERIFIED]
    assert paid == [100000]
    for events in ([*completed(), starting_point("p", "youth")], completed()):
        decisions = evaluate_subject(rules, fold(SUBJECT, BIRTH, events), ON)
        assert all(d.status != OutcomeStatus.VERIFIED for d in decisions)


def test_only_the_education_register_may_report_the_starting_point() -> None:
    registry = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
    sealing = development_private_key()
    resolver = SubjectResolver(b"test-key", "k1", sealing)

    def send(by: str) -> object:
        line = json.dumps({"event_id": "pe-1", "occurred_on": "2005-01-01", "reported_by": by,
                           "subject": {"cpr": "150904-4321"},
                           "body": {"type": "parental_education", "highest_level": "primary"}}).encode()
        sealed = seal_line(line, sealing.public_key())
        return admit(sealed, registry, resolver, as_reported(sealed))

    admitted = send("education-register")
    assert isinstance(admitted, Transition)
    assert admitted.subject.startswith("k1:")  # the child, pseudonymised; no parent is named
    refused = send("alsskolen")
    assert isinstance(refused, DeadLetter)
    assert refused.reason == Reason.UNTRUSTED_SOURCE
