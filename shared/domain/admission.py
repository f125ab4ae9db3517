"""Admission: one raw institution record in, a trusted `Transition` or a `DeadLetter` out.

Pure (no Kafka, no clock): the handler decodes nothing itself, it calls `admit` and
publishes what comes back. Every expected failure is a dead letter with a reason code;
the CPR number, if any, lives only in this function's locals.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

from shared.domain.bounded_json import Breach, parse
from shared.domain.cpr_text import contains_cpr, strings_with_cpr_in
from shared.domain.dead_letters import DeadLetter
from shared.domain.events import Absence, Amendment, Enrolled, InstitutionEvent, Left, Retraction, Transition
from shared.domain.institutions import InstitutionRegistry, may_report
from shared.domain.principals import Authentication, Principal, Role, Unauthenticated
from shared.domain.pseudonym import InvalidCpr, birth_date_from_cpr, pseudonymise
from shared.domain.sealing import InvalidSeal, unseal
from shared.domain.upcasting import UnknownSchemaVersion, upcast

RESOLVER_CACHE_MAX = 100_000  # sealed tokens remembered (about 20 MB)
# Where a subject is named: the CPR number belongs there (sealed, or refused as
# `unsealed_cpr`), and a pseudonym's hex may happen to hold ten digits in a row.
FRONT_DOOR = Principal(Role.SERVICE, "frontdoor")
SUBJECT_FIELDS = frozenset({"subject.cpr", "subject.cpr_sealed", "subject.pseudonym"})


class Reason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    # The parse limits (shared/domain/bounded_json.py), checked before any model.
    RECORD_TOO_LARGE = "record_too_large"
    NESTING_TOO_DEEP = "nesting_too_deep"
    NUMBER_TOO_LONG = "number_too_long"
    STRING_TOO_LONG = "string_too_long"
    TOO_MANY_ITEMS = "too_many_items"
    # Anything else that went wrong while admitting one record: that record is
    # dead-lettered (with the exception's class only) and the batch goes on.
    ADMISSION_ERROR = "admission_error"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_INSTITUTION = "unknown_institution"
    UNTRUSTED_SOURCE = "untrusted_source"
    INVALID_CPR = "invalid_cpr"
    UNKNOWN_SUBJECT_REFERENCE = "unknown_subject_reference"
    CPR_IN_IDENTIFIER = "cpr_in_identifier"
    CPR_IN_FIELD = "cpr_in_field"
    UNSEALED_CPR = "unsealed_cpr"
    INVALID_SEALED_CPR = "invalid_sealed_cpr"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    MISSING_SIGNATURE = "missing_signature"
    UNKNOWN_SIGNER = "unknown_signer"
    BAD_SIGNATURE = "bad_signature"
    REVOKED_KEY = "revoked_key"
    EXPIRED_KEY = "expired_key"
    SIGNER_MISMATCH = "signer_mismatch"
    PSEUDONYM_NOT_ALLOWED = "pseudonym_not_allowed"
    # An institution touches only its own facts (or those of an institution whose
    # registry entry names it as `authority`).
    NOT_ORIGINAL_REPORTER = "not_original_reporter"
    NOT_OWN_INSTITUTION = "not_own_institution"
    AMENDMENT_CHANGES_TYPE = "amendment_changes_type"
    CORRECTION_CHANGES_SUBJECT = "correction_changes_subject"
    # Facts that cannot be (dates).
    OCCURRED_BEFORE_1900 = "occurred_before_1900"
    OCCURRED_IN_FUTURE = "occurred_in_future"
    OCCURRED_BEFORE_BIRTH = "occurred_before_birth"
    BORN_IN_FUTURE = "born_in_future"


def _dead(reason: Reason, field: str, message: str, raw: bytes,
          event_id: str | None = None) -> DeadLetter:
    return DeadLetter.of(reason.value, field, message, raw, event_id)


class SubjectResolver:
    """Sealed CPR number in, (pseudonym, birth date) out; the CPR lives only in `resolve`.

    The publisher seals a subject's number once per run, so the same token recurs for
    that subject's events: a bounded cache from token to pseudonym saves the key
    exchange for all but the first (and holds no CPR number).
    """

    def __init__(self, key: bytes, key_id: str, opener: X25519PrivateKey,
                 cache_max: int = RESOLVER_CACHE_MAX) -> None:
        self._key, self._key_id, self._opener = key, key_id, opener
        self._cache: OrderedDict[str, tuple[str, dt.date]] = OrderedDict()
        self._cache_max = cache_max

    def resolve(self, token: str) -> tuple[str, dt.date]:
        """Raises InvalidSeal or InvalidCpr."""
        hit = self._cache.get(token)
        if hit is not None:
            self._cache.move_to_end(token)
            return hit
        cpr = unseal(token, self._opener)
        birth_date = birth_date_from_cpr(cpr)  # first: it refuses what is not ten ASCII digits
        resolved = (pseudonymise(cpr, self._key, self._key_id), birth_date)
        self._cache[token] = resolved
        if len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)
        return resolved


def admit(raw: bytes, registry: InstitutionRegistry, subjects: SubjectResolver,
          signer: Authentication, *, today: dt.date | None = None) -> Transition | DeadLetter:
    """`signer` is who the record's signature proves sent it (`TrustedKeys.authenticate`);
    `today` the day it is admitted on (the caller's clock; None, for a replay of old
    files, leaves out the checks against the future)."""
    data = parse(raw)
    if isinstance(data, Breach):
        return _dead(Reason(data.reason.value), "", data.message, raw)
    event_id = data.get("event_id") if isinstance(data, dict) else None
    event_id = event_id if isinstance(event_id, str) and not contains_cpr(event_id) else None
    # Every string outside the subject reference travels on to topics, tables and logs:
    # one that holds a CPR number would leak it past the edge, so the event is refused
    # (and the dead letter's copy is redacted). One search over the raw record first: only
    # a record with a CPR-like run anywhere is walked string by string.
    leaks = strings_with_cpr_in(raw, data, SUBJECT_FIELDS)
    if leaks:
        reason = Reason.CPR_IN_IDENTIFIER if leaks[0] == "event_id" else Reason.CPR_IN_FIELD
        return _dead(reason, leaks[0], f"{leaks[0]} holds a CPR number; CPR numbers belong only in "
                     "subject.cpr_sealed", raw, event_id)
    try:
        event = InstitutionEvent.model_validate(upcast(data) if isinstance(data, dict) else data)
    except UnknownSchemaVersion as error:
        return _dead(Reason.SCHEMA_VIOLATION, "schema_version", str(error), raw, event_id)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return _dead(Reason.SCHEMA_VIOLATION, field, f"{field}: {first['msg']}", raw, event_id)
    # The signature, not the record, says who is speaking: an institution may report only
    # as itself; the front door only for the caller whose token it checked (it refuses a
    # line that names another institution before it signs).
    if isinstance(signer, Unauthenticated):
        return _dead(Reason(signer.problem.value), "reported_by", signer.message, raw, event_id)
    if signer != FRONT_DOOR and (signer.role != Role.INSTITUTION or signer.name != event.reported_by):
        return _dead(Reason.SIGNER_MISMATCH, "reported_by",
                     f"signed by {signer}, not by institution {event.reported_by!r}", raw, event_id)
    reporter = registry.get(event.reported_by)
    if reporter is None:
        return _dead(Reason.UNKNOWN_INSTITUTION, "reported_by",
                     f"institution {event.reported_by!r} is not in the registry", raw, event_id)
    if not may_report(reporter.kind, event.body.type):
        return _dead(Reason.UNTRUSTED_SOURCE, "reported_by",
                     f"a {reporter.kind} may not report {event.body.type.value}", raw, event_id)
    refusal = own_facts_only(event, registry)
    if refusal is not None:
        return _dead(*refusal, raw, event_id)
    subject = event.subject
    if subject.cpr is not None:
        return _dead(Reason.UNSEALED_CPR, "subject.cpr",
                     "a CPR number must be sealed by the publisher (stafet publish), never sent in clear",
                     raw, event_id)
    if subject.cpr_sealed is not None:
        try:
            pseudonym, birth_date = subjects.resolve(subject.cpr_sealed)
        except InvalidSeal as error:
            return _dead(Reason.INVALID_SEALED_CPR, "subject.cpr_sealed", str(error), raw, event_id)
        except InvalidCpr as error:
            return _dead(Reason.INVALID_CPR, "subject.cpr_sealed", str(error), raw, event_id)
    elif subject.pseudonym is not None and subject.birth_date is not None:
        # A pseudonym is ingest's own output: only a register trusted to hold the mapping
        # may use it, or anyone could invent subjects (and be paid for them).
        if not reporter.may_send_pseudonyms:
            return _dead(Reason.PSEUDONYM_NOT_ALLOWED, "subject.pseudonym",
                         f"institution {reporter.id!r} may not name subjects by pseudonym; "
                         "send the CPR number sealed", raw, event_id)
        pseudonym, birth_date = subject.pseudonym, subject.birth_date
    else:
        return _dead(Reason.UNKNOWN_SUBJECT_REFERENCE, "subject",
                     "a subject needs a cpr, or a pseudonym with its birth_date", raw, event_id)
    impossible = impossible_dates(event.occurred_on, birth_date, today)
    if impossible is not None:
        return _dead(*impossible, raw, event_id)
    return Transition(
        event_id=event.event_id, occurred_on=event.occurred_on, reported_by=event.reported_by,
        reporter_kind=reporter.kind, subject=pseudonym, birth_date=birth_date, body=event.body,
    )


EARLIEST_OCCURRED_ON = dt.date(1900, 1, 1)
# How far after today an event may be dated: a stay that starts at the next month's
# start may be reported ahead; 9999-12-31 may not.
OCCURRED_DAYS_AHEAD_MAX = 31


def impossible_dates(occurred_on: dt.date, birth_date: dt.date,
                     today: dt.date | None) -> tuple[Reason, str, str] | None:
    """Why these dates cannot be a fact about a subject, or None."""
    if occurred_on < EARLIEST_OCCURRED_ON:
        return Reason.OCCURRED_BEFORE_1900, "occurred_on", f"occurred_on {occurred_on} is before 1900"
    if today is not None and birth_date > today:
        return Reason.BORN_IN_FUTURE, "subject", f"the subject's birth date is after today ({today})"
    if today is not None and (occurred_on - today).days > OCCURRED_DAYS_AHEAD_MAX:
        return (Reason.OCCURRED_IN_FUTURE, "occurred_on",
                f"occurred_on {occurred_on} is more than {OCCURRED_DAYS_AHEAD_MAX} days after today ({today})")
    if occurred_on < birth_date:
        return Reason.OCCURRED_BEFORE_BIRTH, "occurred_on", f"occurred_on {occurred_on} is before the subject's birth"
    return None


_STAYS = (Enrolled, Left, Absence)


def own_facts_only(event: InstitutionEvent, registry: InstitutionRegistry) -> tuple[Reason, str, str] | None:
    """Why `event` touches another institution's facts, or None. A correction names an
    event of its own reporter (or of an institution it is the authority for); an
    amendment's new body must be one the original reporter may report, and a stay
    (enrolled, left, absence) is at the reporting institution (or one it acts for).
    Whether the corrected event is really that reporter's, of this subject and of this
    type is checked when it is known (services/ingest/dedup.py, and the verifier's fold)."""
    body, actor = event.body, event.reported_by
    owner = actor
    if isinstance(body, Retraction | Amendment):
        named, _ = body.corrects
        owner = named or actor
        field = "body.retracts_reported_by" if isinstance(body, Retraction) else "body.amends_reported_by"
        if not registry.may_act_for(actor, owner):
            return (Reason.NOT_ORIGINAL_REPORTER, field,
                    f"{actor!r} may not correct the events of {owner!r}: only their reporter or its authority")
        found = registry.get(owner)
        if found is None:
            return Reason.UNKNOWN_INSTITUTION, field, f"institution {owner!r} is not in the registry"
        if isinstance(body, Amendment) and not may_report(found.kind, body.body.type):
            return (Reason.UNTRUSTED_SOURCE, "body.body.type",
                    f"a {found.kind} may not report {body.body.type.value}")
        body = body.body if isinstance(body, Amendment) else body
    if isinstance(body, _STAYS) and not registry.may_act_for(owner, body.institution) \
            and not registry.may_act_for(actor, body.institution):
        return (Reason.NOT_OWN_INSTITUTION, "body.institution",
                f"{actor!r} may not report a stay at {body.institution!r}: only that institution or its authority")
    return None


def admit_guarded(raw: bytes, registry: InstitutionRegistry, subjects: SubjectResolver,
                  signer: Callable[[], Authentication], *, today: dt.date | None = None) -> Transition | DeadLetter:
    """`admit`, where no record can stop the line: an exception while admitting this one
    record (a bug, or an input no rule foresaw) dead-letters it as `admission_error`
    and the caller goes on with the next. Only the exception's class is kept: its
    message may quote the record (a CPR number in a sealed token, say)."""
    try:
        return admit(raw, registry, subjects, signer(), today=today)
    except Exception as error:  # noqa: BLE001 - one record's failure must not stop a partition
        return _dead(Reason.ADMISSION_ERROR, "", f"admitting this record failed: {type(error).__name__}", raw)


def as_reported(raw: bytes) -> Principal:
    """For a what-if or a test oracle that reads an institution's own files, not a topic:
    there is no signature to check, so each event counts as signed by the institution
    it names. Never used on a record from Kafka."""
    try:
        data = json.loads(raw)
    except ValueError:
        return Principal(Role.INSTITUTION, "")
    return Principal(Role.INSTITUTION, str(data.get("reported_by", "")) if isinstance(data, dict) else "")
