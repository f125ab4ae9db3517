"""An institution touches only its own facts: a correction from anyone but the original
reporter (or the authority the registry names for it) is refused by ingest and ignored
by the verifier's fold, an amendment never changes an event's type or subject, and a
correction that arrives before its event waits for it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.dedup import Forwardable, SeenEvent, judge_corrections
from shared.domain.admission import Reason
from shared.domain.contracts.timeline import AMENDMENT_CHANGES_TYPE, NOT_ORIGINAL_REPORTER, IgnoredCorrection, fold
from shared.domain.dead_letters import DeadLetter
from shared.domain.events import Transition
from tests.unit.builders import BIRTH, SUBJECT, transition
from tests.unit.test_admission import admit_, record

EXAM = {"type": "exam_result", "grades": {"danish": 2.0, "maths": 2.0}}
TWELVE = {"type": "exam_result", "grades": {"danish": 12.0, "maths": 12.0}}
OTHER = "k1:" + "0" * 64


def exam(event_id: str = "x-1", by: str = "exam-authority", body: dict[str, Any] = EXAM,
         subject: str = SUBJECT) -> Transition:
    return transition(event_id, "2020-06-20", by, "exam_authority" if by == "exam-authority" else "primary_school",
                      body, subject=subject)


def correction(by: str, body: dict[str, Any], event_id: str = "c-1", subject: str = SUBJECT) -> Transition:
    return transition(event_id, "2020-07-01", by, "primary_school", body, subject=subject)


def amend(target: str, body: dict[str, Any], **named: str) -> dict[str, Any]:
    return {"type": "amendment", "amends_event_id": target, "body": body, **named}


def retract(target: str, **named: str) -> dict[str, Any]:
    return {"type": "retraction", "retracts_event_id": target, **named}


def grades(timeline_events: list[Transition], authorities: dict[str, str] | None = None) -> list[object]:
    timeline = fold(SUBJECT, BIRTH, timeline_events, authorities)
    return [f.body.get("grades") for f in timeline.facts if f.type == "exam_result"]


# ---- ingest: admission (who may correct whom, by the registry) ------------------------------

def reason_of(raw: bytes) -> str:
    result = admit_(raw)
    assert isinstance(result, DeadLetter), result
    return result.reason


def test_a_school_naming_the_exam_authority_as_the_reporter_of_what_it_corrects_is_refused() -> None:
    assert reason_of(record(body=amend("x-1", TWELVE, amends_reported_by="exam-authority"))) \
        == Reason.NOT_ORIGINAL_REPORTER
    assert reason_of(record(body=retract("x-1", retracts_reported_by="exam-authority"))) \
        == Reason.NOT_ORIGINAL_REPORTER
    # Another school's stay, amended to its own, or corrected by its id.
    assert reason_of(record(body=amend("s-1", {"type": "enrolled", "institution": "alsskolen"},
                                       amends_reported_by="nordborg-skole"))) == Reason.NOT_ORIGINAL_REPORTER


def test_an_amendment_carries_only_a_fact_its_reporter_may_report() -> None:
    assert reason_of(record(body=amend("x-1", TWELVE))) == Reason.UNTRUSTED_SOURCE


def test_a_stay_is_reported_by_the_institution_itself_or_its_authority() -> None:
    left_elsewhere = {"type": "left", "institution": "bornehuset-solsikken"}
    assert reason_of(record(body=left_elsewhere)) == Reason.NOT_OWN_INSTITUTION
    assert reason_of(record(body=amend("s-1", left_elsewhere))) == Reason.NOT_OWN_INSTITUTION
    municipality = admit_(record(reported_by="sonderborg-kommune",
                                 body={"type": "left", "institution": "alsskolen"}))
    assert isinstance(municipality, DeadLetter)
    assert municipality.reason == Reason.UNTRUSTED_SOURCE  # a municipality reports no stays by kind


def test_the_authority_the_registry_names_may_correct_its_schools_events() -> None:
    for body in (retract("s-1", retracts_reported_by="alsskolen"),
                 amend("s-1", {"type": "left", "institution": "alsskolen"}, amends_reported_by="alsskolen")):
        admitted = admit_(record(reported_by="sonderborg-kommune", body=body))
        assert isinstance(admitted, Transition), admitted
    # ... but not those of an institution whose authority it is not.
    assert reason_of(record(reported_by="sonderborg-kommune",
                            body=retract("x-1", retracts_reported_by="exam-authority"))) \
        == Reason.NOT_ORIGINAL_REPORTER


# ---- ingest: against the event it corrects (dedup.py) ---------------------------------------

def seen(event: Transition) -> dict[tuple[str, str], SeenEvent]:
    item = Forwardable.of(event)
    return {item.key: SeenEvent(item.digest, event.subject, event.body.type.value)}


def test_a_correction_by_id_of_another_institutions_event_of_this_subject_is_not_original_reporter() -> None:
    attack = Forwardable.of(correction("alsskolen", retract("x-1")))
    forward, misfits = judge_corrections(seen(exam()), [attack])
    assert forward == ()
    assert [m.reason for m in misfits] == ["not_original_reporter"]


def test_a_correction_of_another_subject_or_to_another_type_is_refused() -> None:
    own = exam(by="alsskolen", body={"type": "enrolled", "institution": "alsskolen"})
    other_subject = Forwardable.of(correction("alsskolen", retract("x-1"), subject=OTHER))
    other_type = Forwardable.of(correction("alsskolen", amend("x-1", {"type": "left", "institution": "alsskolen"})))
    _, misfits = judge_corrections(seen(own), [other_subject, other_type])
    assert [m.reason for m in misfits] == ["correction_changes_subject", "amendment_changes_type"]


def test_a_correction_whose_event_is_not_known_yet_is_forwarded_to_wait_for_it() -> None:
    early = Forwardable.of(correction("alsskolen", retract("s-9")))
    forward, misfits = judge_corrections({}, [early])
    assert (forward, misfits) == ((early,), ())


# ---- the verifier's fold: the same rules again ------------------------------------------------

def test_the_fold_ignores_and_records_a_correction_of_another_institutions_event() -> None:
    attacks = [correction("alsskolen", amend("x-1", TWELVE), "c-1"),
               correction("alsskolen", retract("x-1"), "c-2"),
               correction("alsskolen", retract("x-1", retracts_reported_by="exam-authority"), "c-3")]
    timeline = fold(SUBJECT, BIRTH, [exam(), *attacks])
    assert [f.body["grades"] for f in timeline.facts] == [{"danish": 2.0, "maths": 2.0}]
    assert timeline.ignored == tuple(IgnoredCorrection("alsskolen", f"c-{n}", NOT_ORIGINAL_REPORTER)
                                     for n in (1, 2, 3))


def test_the_fold_applies_the_reporters_own_corrections_and_its_authoritys() -> None:
    own = correction("exam-authority", amend("x-1", TWELVE))
    assert grades([exam(), own]) == [{"danish": 12.0, "maths": 12.0}]
    assert grades([exam(), correction("exam-authority", retract("x-1"))]) == []
    by_authority = correction("ministry", retract("x-1", retracts_reported_by="exam-authority"))
    assert grades([exam(), by_authority]) == [{"danish": 2.0, "maths": 2.0}]
    assert grades([exam(), by_authority], {"exam-authority": "ministry"}) == []


def test_the_fold_ignores_an_amendment_that_changes_the_type() -> None:
    stay = exam(by="alsskolen", body={"type": "enrolled", "institution": "alsskolen"})
    timeline = fold(SUBJECT, BIRTH, [stay, correction("alsskolen", amend("x-1", {"type": "left",
                                                                                  "institution": "alsskolen"}))])
    assert [f.type for f in timeline.facts] == ["enrolled"]
    assert timeline.ignored == (IgnoredCorrection("alsskolen", "c-1", AMENDMENT_CHANGES_TYPE),)


def test_two_institutions_events_under_one_id_are_two_events() -> None:
    squatter = exam(by="alsskolen", body={"type": "enrolled", "institution": "alsskolen"})
    timeline = fold(SUBJECT, BIRTH, [squatter, exam()])
    assert sorted((f.reported_by, f.event_id) for f in timeline.facts) == [("alsskolen", "x-1"),
                                                                          ("exam-authority", "x-1")]


@given(st.permutations([exam(), correction("exam-authority", amend("x-1", TWELVE)),
                        correction("alsskolen", retract("x-1"), "c-2"), exam("x-2", subject=SUBJECT)]))
def test_a_correction_before_its_event_waits_and_any_arrival_order_folds_the_same(order: list[Transition]) -> None:
    timeline = fold(SUBJECT, BIRTH, order)
    assert [f.body["grades"] for f in timeline.facts if f.event_id == "x-1"] == [{"danish": 12.0, "maths": 12.0}]
    assert timeline.ignored == (IgnoredCorrection("alsskolen", "c-2", NOT_ORIGINAL_REPORTER),)



def test_a_correction_alone_changes_nothing_and_applies_once_its_event_arrives() -> None:
    early = correction("exam-authority", amend("x-1", TWELVE))
    waiting = fold(SUBJECT, BIRTH, [early])
    assert (waiting.facts, waiting.ignored) == ((), ())
    assert grades([early, exam()]) == [{"danish": 12.0, "maths": 12.0}]
