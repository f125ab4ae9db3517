"""No data can stall a service: evaluation never raises on data; what the arithmetic
cannot allocate is a decision with a reason code; the verifier's batch core survives
generated histories (overlaps, gaps, late and retracted facts, many institutions)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import OutcomeStatus, RejectionReason, evaluate_subject
from shared.domain.contracts.loader import load_contract, parse_contract
from shared.domain.contracts.timeline import fold
from shared.domain.events import Transition
from shared.platform.settings import REPO_ROOT
from tests.unit.builders import BIRTH, SUBJECT, enrolled, transition
from tests.verifier_model import InMemoryVerifier

runner = CliRunner()
CONTRACTS = REPO_ROOT / "examples" / "contracts"
MOBILITY = load_contract(CONTRACTS / "mobility-bonus.yaml")


def completed(event_id: str, on: str, subject: str = SUBJECT, birth: dt.date = BIRTH) -> Transition:
    return transition(event_id, on, "education-register", "exam_authority",
                      {"type": "education_completed", "programme": "stx", "level": "youth"},
                      subject=subject, birth=birth)


def thirteen_at_once(subject: str = SUBJECT) -> list[Transition]:
    stays = [transition(f"{subject[-4:]}-s{n}", "2010-08-01", f"school-{n}", "primary_school",
                        {"type": "enrolled", "institution": f"school-{n}"}, subject=subject) for n in range(13)]
    return [*stays, completed(f"{subject[-4:]}-done", "2023-06-20", subject)]


def test_a_subject_at_13_institutions_at_once_gets_a_reason_not_an_exception() -> None:
    decisions = evaluate_subject(MOBILITY, fold(SUBJECT, BIRTH, thirteen_at_once()), dt.date(2024, 1, 1))
    youth = next(d for d in decisions if d.outcome_id == "youth-education-completed")
    assert youth.status == OutcomeStatus.REJECTED
    assert youth.reason == RejectionReason.ALLOCATION_IMPOSSIBLE
    assert "more than 12 institutions" in youth.detail


def test_a_birth_date_in_the_year_9990_gets_a_reason_not_a_traceback() -> None:
    birth = dt.date(9990, 1, 1)
    events = [transition("e1", "9995-08-01", "school", "primary_school", {"type": "enrolled", "institution": "school"},
                         birth=birth), completed("e2", "9999-06-01", birth=birth)]
    text = (CONTRACTS / "mobility-bonus.yaml").read_text().replace("end: 2035-12-31", "end: 9999-12-31") \
        .replace("birth_year_to: 2030", "birth_year_to: 2200")
    far = parse_contract(text, "far.yaml").model_copy(update={"eligibility": MOBILITY.eligibility.model_copy(
        update={"birth_year_to": None})})
    decisions = evaluate_subject(far, fold(SUBJECT, birth, events), dt.date(9999, 12, 31))
    youth = next(d for d in decisions if d.outcome_id == "youth-education-completed")
    assert youth.reason == RejectionReason.ALLOCATION_IMPOSSIBLE


def test_allocate_with_a_birth_date_in_9990_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    history = tmp_path / "h.json"
    history.write_text(json.dumps({"birth_date": "9990-05-05", "registrations": [
        {"institution": "club-a", "start": "9995-01-01", "end": "9998-12-31"}]}))
    result = runner.invoke(app, ["allocate", "--contract", str(CONTRACTS / "fifa-solidarity.yaml"),
                                 "--history", str(history), "--amount-minor", "1000", "--on", "9999-01-01"])
    assert result.exit_code == 2
    assert "error:" in result.stderr
    assert "Traceback" not in result.output


def test_registrations_before_birth_are_rejected_with_a_reason_not_paid() -> None:
    events = [enrolled("e1", "2003-01-01", "school"), completed("e2", "2023-06-20")]
    youth = evaluate_subject(MOBILITY, fold(SUBJECT, BIRTH, events), dt.date(2024, 1, 1))[0]
    assert youth.status == OutcomeStatus.REJECTED
    assert youth.reason == RejectionReason.REGISTRATION_BEFORE_BIRTH


def test_simulate_reports_the_subject_allocate_refuses_instead_of_crashing(tmp_path: Path) -> None:
    # Thirteen stays, each reported by its own institution (a stay reported by another
    # institution is refused as not_own_institution), registered for the run.
    registry = yaml.safe_load((REPO_ROOT / "examples" / "institutions.yaml").read_text(encoding="utf-8"))
    registry["institutions"] += [{"id": f"inst-{n}", "name": f"School {n}", "kind": "primary_school",
                                  "municipality": "sonderborg"} for n in range(13)]
    institutions = tmp_path / "institutions.yaml"
    institutions.write_text(yaml.safe_dump(registry), encoding="utf-8")
    lines = [json.dumps({"event_id": f"s{n}", "occurred_on": "2010-08-01", "reported_by": f"inst-{n}",
                         "subject": {"cpr": "150904-4321"}, "body": {"type": "enrolled", "institution": f"inst-{n}"}})
             for n in range(13)]
    lines.append(json.dumps({"event_id": "done", "occurred_on": "2023-06-20", "reported_by": "exam-authority",
                             "subject": {"cpr": "150904-4321"},
                             "body": {"type": "education_completed", "programme": "stx", "level": "youth"}}))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    arguments = ["simulate", "--events", str(events), "--contract", str(CONTRACTS / "mobility-bonus.yaml"),
                 "--report", str(tmp_path / "r.html"), "--institutions", str(institutions)]
    # One child: a small cell, so only with the minimum at 1 does the report name the reason.
    result = runner.invoke(app, arguments, env={"MINIMUM_CELL": "1"})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "allocation_impossible" in (tmp_path / "r.html").read_text()
    protected = runner.invoke(app, arguments)
    assert protected.exit_code == 0, protected.output
    assert "allocation_impossible" not in (tmp_path / "r.html").read_text()


# ---- the verifier's batch core against generated histories -----------------------------

KINDS = ["daycare", "primary_school", "exam_authority", "youth_education", "income_register", "club", "job_centre"]
INSTITUTIONS = [f"inst-{n}" for n in range(16)]
DATES = st.dates(dt.date(1995, 1, 1), dt.date(2035, 12, 31))
BOOK = ContractBook.of([load_contract(p) for p in sorted(CONTRACTS.glob("*.yaml"))])


@st.composite
def events_of(draw: st.DrawFn, subject: str) -> list[Transition]:
    birth = draw(st.sampled_from([dt.date(2004, 9, 15), dt.date(2000, 2, 29), dt.date(2010, 1, 1)]))
    events: list[Transition] = []
    for n in range(draw(st.integers(1, 30))):
        institution = draw(st.sampled_from(INSTITUTIONS))
        body = draw(st.sampled_from([
            {"type": "enrolled", "institution": institution},
            {"type": "left", "institution": institution},
            {"type": "transfer", "from_institution": institution, "to_institution": draw(st.sampled_from(INSTITUTIONS)),
             "compensation_minor": draw(st.integers(0, 10**15)), "currency": draw(st.sampled_from(["EUR", "DKK", "SEK"]))},
            {"type": "education_completed", "programme": "stx", "level": draw(st.sampled_from(["youth", "higher"]))},
            {"type": "exam_result", "grades": {"danish": draw(st.floats(-3, 12)), "maths": draw(st.floats(-3, 12))}},
            {"type": "employment_started", "employer": institution},
            {"type": "employment_ended", "employer": institution},
        ]))
        events.append(Transition.model_validate({
            "event_id": f"{subject[-6:]}-{n}", "occurred_on": draw(DATES).isoformat(), "reported_by": institution,
            "reporter_kind": draw(st.sampled_from(KINDS)), "subject": subject, "birth_date": birth.isoformat(),
            "body": body}))
    if draw(st.booleans()):  # a crowd: more institutions on one day than the arithmetic splits
        day = draw(DATES).isoformat()
        events += [Transition.model_validate({
            "event_id": f"{subject[-6:]}-crowd{n}", "occurred_on": day, "reported_by": institution,
            "reporter_kind": "primary_school", "subject": subject, "birth_date": birth.isoformat(),
            "body": {"type": "enrolled", "institution": institution}})
            for n, institution in enumerate(INSTITUTIONS[:draw(st.integers(12, 16))])]
    for n in draw(st.lists(st.integers(0, len(events) - 1), max_size=4)):
        target = events[n]
        body = draw(st.sampled_from([{"type": "retraction", "retracts_event_id": target.event_id},
                                     {"type": "amendment", "amends_event_id": target.event_id,
                                      "body": {"type": "enrolled", "institution": "inst-1"}}]))
        events.append(target.model_copy(update={"event_id": f"{target.event_id}-fix{len(events)}", "body":
                                                Transition.model_validate({**target.model_dump(mode="json"),
                                                                           "body": body}).body,
                                                "occurred_on": draw(DATES)}))
    return events


@st.composite
def populations(draw: st.DrawFn) -> list[Transition]:
    events: list[Transition] = []
    for n in range(draw(st.integers(1, 4))):
        events += draw(events_of(f"k1:{n:064x}"))
    return draw(st.permutations(events))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(populations(), st.integers(1, 10), st.lists(st.dates(dt.date(2000, 1, 1), dt.date(2040, 1, 1)), max_size=3))
def test_the_batch_core_survives_generated_histories_under_every_example_contract(
        events: list[Transition], batch_size: int, ticks: list[dt.date]) -> None:
    live = InMemoryVerifier(ContractBook.of(BOOK.all()), {})
    for first in range(0, len(events), batch_size):
        live.batch(events[first:first + batch_size])
        live.drain()
    for tick in ticks:
        live.batch([], [tick])
        live.drain()
    assert set(live.streams) == {e.subject for e in events}
