"""One line of a POST, checked with ingest's admission rules before it is forwarded (pure).

The front door answers each line at once with what ingest would decide about it
without the secrets only ingest holds: the same reason codes (`services/ingest/
admission.py: Reason`) for malformed JSON, schema violations, CPR numbers in
identifiers, unknown institutions, untrusted sources and invalid CPR numbers, plus
`reporter_mismatch` when a line claims to come from another institution than the one
that authenticated. Ingest checks every forwarded record again; the front door never
widens what it admits.

A clear CPR number is sealed here for ingest (the institution's system speaks HTTPS,
not our sealing) and lives only in this function's locals and the sealer's cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from shared.domain.admission import SUBJECT_FIELDS, Reason, impossible_dates, own_facts_only
from shared.domain.bounded_json import Breach, parse
from shared.domain.cpr_text import contains_cpr, strings_with_cpr
from shared.domain.events import InstitutionEvent, SubjectReference
from shared.domain.institutions import InstitutionRegistry, may_report
from shared.domain.pseudonym import InvalidCpr, birth_date_from_cpr, scrub
from shared.domain.signing import RecordSigner
from shared.domain.upcasting import UnknownSchemaVersion, upcast


class FrontDoorReason(StrEnum):
    """Reasons only the front door gives (the rest are ingest's `Reason`)."""

    REPORTER_MISMATCH = "reporter_mismatch"


@dataclass(frozen=True)
class Admitted:
    event_id: str
    event: dict[str, object]  # the parsed line, upcast; the subject still as sent
    fingerprint: str
    # The subject in one spelling (`cpr:` and its ten digits, or `pseudonym:` with the
    # birth date), or None when it came sealed and cannot be compared here.
    subject_identity: bytes | None = None


_SUBJECT_LABEL = b"stafet-frontdoor-subject-fingerprint-v1:"


def subject_fingerprint(identity: bytes | None, signer: RecordSigner) -> str | None:
    """A keyed fingerprint of a subject: SHA-256 of the front door's Ed25519 signature
    over it (Ed25519 signatures are deterministic), with the key's id. A plain hash of a
    CPR number can be reversed by trying every number; this one only with the key."""
    if identity is None:
        return None
    return f"{signer.key_id}:{hashlib.sha256(signer.key.sign(_SUBJECT_LABEL + identity)).hexdigest()}"


@dataclass(frozen=True)
class Remembered:
    """What the front door keeps of a forwarded event: its fingerprint without the
    subject, and the subject's keyed fingerprint (None when it could not be taken)."""

    fingerprint: str
    subject_fingerprint: str | None

    def same_event_as(self, other: Remembered) -> bool:
        """Same body, and the same subject wherever both subjects can be compared (both
        taken, with the same key: after a key rotation only the body can be)."""
        if self.fingerprint != other.fingerprint:
            return False
        if self.subject_fingerprint is None or other.subject_fingerprint is None:
            return True
        key, _, mine = self.subject_fingerprint.partition(":")
        other_key, _, theirs = other.subject_fingerprint.partition(":")
        return key != other_key or mine == theirs


@dataclass(frozen=True)
class Refused:
    event_id: str | None
    reason: str
    field: str
    message: str  # CPR-shaped numbers removed


def fingerprint_of(event: dict[str, object]) -> str:
    without_subject = {k: v for k, v in event.items() if k != "subject"}
    return hashlib.sha256(json.dumps(without_subject, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def _refused(event_id: str | None, reason: StrEnum, field: str, message: str) -> Refused:
    return Refused(event_id, reason.value, field, scrub(message))


def check_line_guarded(raw: bytes, caller: str, registry: InstitutionRegistry,
                       today: dt.date | None = None) -> Admitted | Refused:
    """`check_line`, where no line can fail the request: an exception while checking
    this one line refuses it as `admission_error` (its class only, never its message,
    which may quote the line) and the other lines are answered as usual."""
    try:
        return check_line(raw, caller, registry, today)
    except Exception as error:  # noqa: BLE001 - one line's failure must not cost the batch
        return Refused(None, Reason.ADMISSION_ERROR.value, "", f"checking this line failed: {type(error).__name__}")


def check_line(raw: bytes, caller: str, registry: InstitutionRegistry,
               today: dt.date | None = None) -> Admitted | Refused:
    data = parse(raw)
    if isinstance(data, Breach):
        return _refused(None, Reason(data.reason.value), "", data.message)
    if not isinstance(data, dict):
        return _refused(None, Reason.SCHEMA_VIOLATION, "", "a line is one JSON object")
    found_id = data.get("event_id")
    event_id = found_id if isinstance(found_id, str) and not contains_cpr(found_id) else None
    # As ingest: a CPR number anywhere but in the subject reference, in any spelling.
    leaks = list(strings_with_cpr(data, SUBJECT_FIELDS))
    if leaks:
        reason = Reason.CPR_IN_IDENTIFIER if leaks[0] == "event_id" else Reason.CPR_IN_FIELD
        return _refused(event_id, reason, leaks[0], f"{leaks[0]} holds a CPR number; CPR numbers belong only "
                        "in the subject")
    try:
        upcast_data = upcast(data)
        event = InstitutionEvent.model_validate(upcast_data)
    except UnknownSchemaVersion as error:
        return _refused(event_id, Reason.SCHEMA_VIOLATION, "schema_version", str(error))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return _refused(event_id, Reason.SCHEMA_VIOLATION, field, f"{field}: {first['msg']}")
    if event.reported_by != caller:
        return _refused(event_id, FrontDoorReason.REPORTER_MISMATCH, "reported_by",
                        f"authenticated as {caller!r}, the line is reported by {event.reported_by!r}")
    reporter = registry.get(event.reported_by)
    if reporter is None:
        return _refused(event_id, Reason.UNKNOWN_INSTITUTION, "reported_by",
                        f"institution {event.reported_by!r} is not in the registry")
    if not may_report(reporter.kind, event.body.type):
        return _refused(event_id, Reason.UNTRUSTED_SOURCE, "reported_by",
                        f"a {reporter.kind} may not report {event.body.type.value}")
    refusal = own_facts_only(event, registry)
    if refusal is not None:
        return _refused(event_id, *refusal)
    subject = event.subject
    birth_date = subject.birth_date
    if subject.cpr is not None:
        try:
            birth_date = birth_date_from_cpr(subject.cpr)
        except InvalidCpr as error:
            return _refused(event_id, Reason.INVALID_CPR, "subject.cpr", str(error))
    elif subject.cpr_sealed is None and (subject.pseudonym is None or subject.birth_date is None):
        return _refused(event_id, Reason.UNKNOWN_SUBJECT_REFERENCE, "subject",
                        "a subject needs a cpr, or a pseudonym with its birth_date")
    elif subject.cpr_sealed is None and not reporter.may_send_pseudonyms:
        return _refused(event_id, Reason.PSEUDONYM_NOT_ALLOWED, "subject.pseudonym",
                        f"institution {reporter.id!r} may not name subjects by pseudonym; send the CPR number")
    # A sealed subject's birth date is known only to ingest, which checks it there.
    impossible = impossible_dates(event.occurred_on, birth_date, today) if birth_date is not None else None
    if impossible is not None:
        return _refused(event_id, *impossible)
    return Admitted(event.event_id, upcast_data, fingerprint_of(upcast_data), _identity(subject))


def _identity(subject: SubjectReference) -> bytes | None:
    if subject.cpr is not None:
        return b"cpr:" + re.sub(r"[^0-9]", "", subject.cpr).encode()
    if subject.pseudonym is not None and subject.birth_date is not None:
        return f"pseudonym:{subject.pseudonym}:{subject.birth_date.isoformat()}".encode()
    return None
