"""Ingest admission: every bad record gets its reason code; no CPR number gets through."""

from __future__ import annotations

import json

import pytest

from cli.publish import seal_line
from shared.domain.admission import Reason, SubjectResolver, admit
from shared.domain.dead_letters import DeadLetter
from shared.domain.events import Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.principals import Authentication
from shared.domain.pseudonym import birth_date_from_cpr, pseudonymise
from shared.domain.sealing import development_private_key, seal
from shared.domain.signing import RecordSigner
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.trust import trusted_keys

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
KEY = b"test-key"
CPR = "150904-4321"


SEALING = development_private_key()


def clear(**overrides: object) -> bytes:
    """A record as it stands in an institution's file (CPR in clear)."""
    event: dict[str, object] = {
        "event_id": "e-1", "occurred_on": "2010-08-01", "reported_by": "alsskolen",
        "subject": {"cpr": CPR}, "body": {"type": "enrolled", "institution": "alsskolen"}}
    event.update(overrides)
    return json.dumps(event).encode()


def record(**overrides: object) -> bytes:
    """The record as `stafet publish` sends it: the CPR number sealed."""
    return seal_line(clear(**overrides), SEALING.public_key())


TRUST = trusted_keys(Settings(stafet_env="development"), REGISTRY)
TOPIC = "t.institution-events.v1"


def signed_by(raw: bytes, principal: str) -> Authentication:
    """Who ingest's trusted keys say signed `raw`, when `principal`'s dev key signed it."""
    headers = RecordSigner.development(principal).headers(TOPIC, None, raw)
    return TRUST.authenticate(TOPIC, None, raw, headers)


def _claimed(raw: bytes) -> str:
    try:
        return f"institution:{json.loads(raw).get('reported_by')}"
    except (ValueError, AttributeError):
        return "institution:alsskolen"


def admit_(raw: bytes, signer: str | None = None):  # type: ignore[no-untyped-def]
    """Admit `raw` as signed by `signer` (default: the institution it names)."""
    return admit(raw, REGISTRY, SubjectResolver(KEY, "k1", SEALING), signed_by(raw, signer or _claimed(raw)))


def test_a_good_event_becomes_a_pseudonymised_transition_with_its_birth_date() -> None:
    result = admit_(record())
    assert isinstance(result, Transition)
    assert result.subject == pseudonymise(CPR, KEY, "k1")
    assert result.birth_date.isoformat() == "2004-09-15"
    assert "4321" not in result.model_dump_json().replace(result.subject, "")


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"event_id": "e-1", ', Reason.MALFORMED_JSON),
    (b"\xff\xfe", Reason.MALFORMED_JSON),
    (record(occurred_on="2010-02-30"), Reason.SCHEMA_VIOLATION),
    (record(body={"type": "graduated"}), Reason.SCHEMA_VIOLATION),
    (record(event_id=12), Reason.SCHEMA_VIOLATION),
    (record(reported_by="nowhere"), Reason.UNKNOWN_SIGNER),
    (record(body={"type": "exam_result", "grades": {"danish": 7}}), Reason.UNTRUSTED_SOURCE),
    (record(subject={"cpr": "310204-1234"}), Reason.INVALID_CPR),
    (record(subject={"cpr": "15090-44321"}), Reason.INVALID_CPR),
    (record(subject={}), Reason.UNKNOWN_SUBJECT_REFERENCE),
    (b"{" + b" " * 70_000 + b"}", Reason.RECORD_TOO_LARGE),
    (clear(), Reason.UNSEALED_CPR),
    (clear(subject={"cpr_sealed": "v2." + "A" * 80}), Reason.INVALID_SEALED_CPR),
    (record(event_id="pupil-1509044321"), Reason.CPR_IN_IDENTIFIER),
])
def test_bad_input_is_dead_lettered_with_its_reason(raw: bytes, reason: Reason) -> None:
    result = admit_(raw)
    assert isinstance(result, DeadLetter)
    assert result.reason == reason
    for shape in (CPR, CPR.replace("-", "")):
        assert shape not in result.original
        assert shape not in result.message


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


@pytest.mark.parametrize(("raw", "field", "reason"), [
    (record(body={"type": "enrolled", "institution": "alsskolen", "stage": "pupil 170702-4000"}),
     "body.stage", Reason.CPR_IN_FIELD),
    (record(reported_by="exam-authority", body={
        "type": "education_completed", "programme": "stx for 1707024000", "level": "youth"}),
     "body.programme", Reason.CPR_IN_FIELD),
    (record(reported_by="exam-authority", body={"type": "exam_result", "grades": {"170702 4000": 7}}),
     "body.grades.[cpr removed]", Reason.CPR_IN_FIELD),
    (record(body={"type": "retraction", "retracts_event_id": "e-0", "reason": "wrong child 17.07.02-4000"}),
     "body.reason", Reason.CPR_IN_FIELD),
    (record(event_id="ev-17.07.02-4000"), "event_id", Reason.CPR_IN_IDENTIFIER),
    (record(body={"type": "enrolled", "institution": "alsskolen", "stage": "170702 4000"}),
     "body.stage", Reason.CPR_IN_FIELD),
    (record().replace(b'"type":"enrolled"', b'"type":"enrolled","stage":"' + _escaped("1707024000").encode() + b'"'),
     "body.stage", Reason.CPR_IN_FIELD),
])
def test_a_cpr_number_anywhere_outside_the_subject_is_refused_and_not_kept(
        raw: bytes, field: str, reason: Reason) -> None:
    result = admit_(raw)
    assert isinstance(result, DeadLetter)
    assert (result.reason, result.field) == (reason, field)
    for part in (result.original, result.message, result.field, result.record_id or ""):
        assert "1707024000" not in _digits(part)


def test_cpr_validation_does_not_apply_modulus_11() -> None:
    # 150904-4322 fails modulus 11 (weights 4,3,2,7,6,5,4,3,2,1) yet is a valid number.
    digits = [int(c) for c in "1509044322"]
    assert sum(w * d for w, d in zip([4, 3, 2, 7, 6, 5, 4, 3, 2, 1], digits, strict=True)) % 11 != 0
    assert birth_date_from_cpr("150904-4322").year == 2004
    assert isinstance(admit_(record(subject={"cpr": "150904-4322"})), Transition)


def test_century_comes_from_the_seventh_digit() -> None:
    assert birth_date_from_cpr("010190-4000").year == 1990
    assert birth_date_from_cpr("010110-4000").year == 2010
    assert birth_date_from_cpr("010160-5000").year == 1860
    assert birth_date_from_cpr("010160-1000").year == 1960


def test_a_cpr_sealed_to_another_ingest_key_cannot_be_opened() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    stranger = X25519PrivateKey.generate().public_key()
    raw = clear(subject={"cpr_sealed": seal(CPR, stranger)})
    result = admit_(raw)
    assert isinstance(result, DeadLetter)
    assert result.reason == Reason.INVALID_SEALED_CPR


def test_the_sealed_record_carries_no_cpr_in_clear() -> None:
    sealed_record = record()
    assert CPR.encode() not in sealed_record
    assert CPR.replace("-", "").encode() not in sealed_record
