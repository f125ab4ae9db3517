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
