"""Hypothesis: any contract that passes `stafet contract check` can be evaluated on any
generated history without an exception (the check is the engine's gate)."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.loader import ContractFileError, parse_contract
from shared.domain.decisions import decide_all
from shared.domain.events import Transition

KINDS = ["daycare", "primary_school", "exam_authority", "youth_education", "income_register", "club"]
INSTITUTIONS = [f"inst-{n}" for n in range(16)]
DATES = st.dates(dt.date(1990, 1, 1), dt.date(2040, 12, 31))


@st.composite
def contract_texts(draw: st.DrawFn) -> str:
    """Contract YAML built from the schema's parts, many of them invalid on purpose."""
    year_start = f"{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 31)):02d}"
    low = draw(st.integers(0, 140))
    high = draw(st.integers(low, 150))
    weight = draw(st.sampled_from(["1", "0.5", "0.25", "0.05", f"1/{high - low + 1}"]))
    if weight.startswith("1/"):
        weight = str(1 / (high - low + 1))
    distribution = draw(st.sampled_from([
        f'{{kind: solidarity, year_basis: {{kind: school, starts: "{year_start}"}}, weights: {{"{low}-{high}": "{weight}"}}}}',
        '{kind: solidarity, year_basis: {kind: calendar}, weights: {"0-19": "0.05"}}',
        "{kind: direct, payee: {role: previous_institution}}",
        "{kind: direct, payee: {role: event_field, field: employer}}",
        "{kind: direct, payee: {role: registered_kind, kind: youth_education}}",
        "{kind: split, shares: [{payee: {role: institution, institution: a}, share: '0.5'},"
        " {payee: {role: previous_institution}, share: '0.5'}]}",
    ]))
    price = draw(st.sampled_from(["{kind: fixed, amount_minor: 1000000}",
                                  "{kind: rate, rate: '0.05', of_field: compensation_minor}"]))
    event = draw(st.sampled_from(["education_completed", "exam_result", "transfer", "employment_started", "left"]))
    start, end = sorted([draw(DATES), draw(DATES)])
    extras = draw(st.lists(st.sampled_from([
        f"effective_from: {draw(DATES)}",
        f"caps: {{total_minor: {draw(st.integers(1, 10**7))}, review_days: {draw(st.integers(0, 60))}}}",
        f"caps: {{per_subject_minor: {draw(st.integers(1, 10**7))}}}",
        f"eligibility: {{birth_year_from: {draw(st.integers(1990, 2010))}}}",
        "fallback_account: fund",
    ]), max_size=2, unique=True))
    sustainment = draw(st.sampled_from(["", "    sustainment: {days: 91, broken_by: [employment_ended]}\n"]))
    deadline = draw(st.sampled_from(["", f"    deadline: {draw(DATES)}\n"]))
    currency = draw(st.sampled_from(["DKK", "EUR", "JPY", "BHD", "XYZ"]))
    return (f"contract_id: c\nversion: 1\npayer: payer\ncurrency: {currency}\n"
            f"period: {{start: {start}, end: {end}}}\n" + "\n".join(extras) + "\noutcomes:\n"
            f"  - id: o\n    trigger: {{event: {event}, age_below: {draw(st.integers(0, 130))}}}\n"
            f"    max_per_subject: {draw(st.integers(1, 5))}\n{sustainment}{deadline}"
            f"    price: {price}\n    distribution: {distribution}\n")


SUBJECT = "k1:" + "ab" * 32


@st.composite
def histories(draw: st.DrawFn) -> list[Transition]:
    """One subject's events: overlapping stays at up to 16 institutions, gaps, transfers in
    other currencies, late and retracted facts, birth dates from 1900 to 9990."""
    birth = draw(st.sampled_from([dt.date(2004, 9, 15), dt.date(1900, 1, 1), dt.date(9990, 6, 1),
                                  dt.date(2012, 2, 29)]))
    events: list[dict[str, object]] = []
    for n in range(draw(st.integers(1, 24))):
        institution = draw(st.sampled_from(INSTITUTIONS))
        body = draw(st.sampled_from([
            {"type": "enrolled", "institution": institution},
            {"type": "left", "institution": institution},
            {"type": "transfer", "from_institution": institution, "to_institution": "inst-0",
             "compensation_minor": draw(st.integers(0, 10**12)), "currency": draw(st.sampled_from(["DKK", "SEK", "EUR"]))},
            {"type": "education_completed", "programme": "stx", "level": "youth"},
            {"type": "exam_result", "grades": {"danish": 7.0, "maths": 4.0}},
            {"type": "employment_started", "employer": institution},
            {"type": "employment_ended", "employer": institution},
        ]))
        events.append({"event_id": f"e{n}", "occurred_on": draw(DATES).isoformat(), "reported_by": institution,
                       "reporter_kind": draw(st.sampled_from(KINDS)), "body": body})
    if draw(st.booleans()):  # a crowd: more institutions on one day than the arithmetic splits
        day = draw(DATES).isoformat()
        events += [{"event_id": f"crowd{n}", "occurred_on": day, "reported_by": institution,
                    "reporter_kind": "club", "body": {"type": "enrolled", "institution": institution}}
                   for n, institution in enumerate(INSTITUTIONS[:draw(st.integers(12, 16))])]
    for n in draw(st.lists(st.integers(0, len(events) - 1), max_size=3)):
        events.append({"event_id": f"r{n}", "occurred_on": draw(DATES).isoformat(), "reported_by": "inst-1",
                       "reporter_kind": "club", "body": {"type": "retraction", "retracts_event_id": f"e{n}"}})
    return [Transition.model_validate({**e, "subject": SUBJECT, "birth_date": birth.isoformat()}) for e in events]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(contract_texts(), histories(), DATES)
def test_any_contract_that_passes_check_evaluates_on_any_history_without_an_exception(
        text: str, history: list[Transition], on: dt.date) -> None:
    try:
        contract = parse_contract(text, "generated.yaml")
    except ContractFileError:
        return  # refused at check time: the engine never sees it
    effects = decide_all(ContractBook.of([contract]).in_force(), {SUBJECT: history}, on, {})
    assert set(effects) == {SUBJECT}
