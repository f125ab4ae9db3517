"""The front door's per-line checks: ingest's reason codes, answered before forwarding."""

from __future__ import annotations

import json

from services.frontdoor.lines import Admitted, Refused, check_line, fingerprint_of
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")


def line(**changes: object) -> bytes:
    event: dict[str, object] = {"event_id": "e-1", "occurred_on": "2010-08-01", "reported_by": "alsskolen",
                                "subject": {"cpr": "150904-4321"},
                                "body": {"type": "enrolled", "institution": "alsskolen", "stage": "primary"}}
    event.update(changes)
    return json.dumps(event).encode()


def reason_of(raw: bytes, caller: str = "alsskolen") -> str:
    outcome = check_line(raw, caller, REGISTRY)
    assert isinstance(outcome, Refused), outcome
    assert "150904" not in outcome.message
    return outcome.reason


def test_a_good_line_is_admitted_with_a_fingerprint_that_leaves_the_subject_out() -> None:
    admitted = check_line(line(), "alsskolen", REGISTRY)
    assert isinstance(admitted, Admitted)
    assert admitted.event_id == "e-1"
    other_subject = check_line(line(subject={"cpr": "150904-4322"}), "alsskolen", REGISTRY)
    assert isinstance(other_subject, Admitted)
    assert other_subject.fingerprint == admitted.fingerprint  # no hash over a CPR number
    assert fingerprint_of(json.loads(line(occurred_on="2010-08-02"))) != admitted.fingerprint


def test_each_refusal_has_ingests_reason_code() -> None:
    assert reason_of(b"{oops") == "malformed_json"
    assert reason_of(b"[1, 2]") == "schema_violation"
    assert reason_of(line(occurred_on="2010-02-30")) == "schema_violation"
    assert reason_of(line(), caller="nordborg-skole") == "reporter_mismatch"
    assert reason_of(line(reported_by="ghost-school"), caller="ghost-school") == "unknown_institution"
    exam = line(body={"type": "exam_result", "grades": {"danish": 7}})
    assert reason_of(exam) == "untrusted_source"
    assert reason_of(line(subject={"cpr": "320104-4321"})) == "invalid_cpr"
    assert reason_of(line(subject={})) == "unknown_subject_reference"
    assert reason_of(line(event_id="x-150904-4321")) == "cpr_in_identifier"
    assert reason_of(b"{" + b" " * 70_000 + b"}") == "record_too_large"


def test_the_subject_is_remembered_only_as_a_keyed_fingerprint_that_tells_children_apart() -> None:
    from services.frontdoor.lines import Remembered, subject_fingerprint
    from shared.domain.signing import RecordSigner

    door = RecordSigner.development("service:frontdoor")
    first = check_line(line(), "alsskolen", REGISTRY)
    dashless = check_line(line(subject={"cpr": "1509044321"}), "alsskolen", REGISTRY)
    other_child = check_line(line(subject={"cpr": "150904-4322"}), "alsskolen", REGISTRY)
    assert isinstance(first, Admitted)
    assert isinstance(dashless, Admitted)
    assert isinstance(other_child, Admitted)
    mine = subject_fingerprint(first.subject_identity, door)
    assert mine is not None
    assert "1509044321" not in mine
    assert mine == subject_fingerprint(dashless.subject_identity, door)  # one spelling
    theirs = subject_fingerprint(other_child.subject_identity, door)
    assert mine != theirs
    # Without the key, nobody gets the same fingerprint (a plain hash could be reversed).
    assert subject_fingerprint(first.subject_identity, RecordSigner.development("service:other")) != mine
    assert Remembered(first.fingerprint, mine).same_event_as(Remembered(first.fingerprint, mine))
    assert not Remembered(first.fingerprint, mine).same_event_as(Remembered(first.fingerprint, theirs))
    assert Remembered(first.fingerprint, None).same_event_as(Remembered(first.fingerprint, theirs))
    rotated = "other-key:" + mine.partition(":")[2][::-1]
    assert Remembered(first.fingerprint, mine).same_event_as(Remembered(first.fingerprint, rotated))


def test_the_front_door_refuses_at_once_what_touches_another_institutions_facts() -> None:
    assert reason_of(line(body={"type": "left", "institution": "bornehuset-solsikken"})) == "not_own_institution"
    assert reason_of(line(body={"type": "retraction", "retracts_event_id": "x-1",
                                "retracts_reported_by": "exam-authority"})) == "not_original_reporter"
    assert reason_of(line(body={"type": "amendment", "amends_event_id": "x-1",
                                "body": {"type": "exam_result", "grades": {"danish": 12}}})) == "untrusted_source"
