"""Disputes: an institution objects to an outcome in its review window (DOMAIN.md, "Finality").

A dispute is an event on a topic of its own (`stafet.disputes.v1`), signed by the front
door, which authenticated the institution's administrator who raised it (or the operator
who resolved it). The ledger keeps every dispute record (services/ledger/disputes.py) and
a payout run leaves out every payment of an outcome whose dispute is still open: the
instructions themselves stay a function of facts, watermarks and contract versions alone
(DOMAIN.md, "Determinism"), and a dispute only holds their money until it is resolved.

Resolved by an operator: `correction_requested` (the operator agrees and asks the
authoritative source, named in `requested_from`, for a correcting event; the source reads
the request in its portal; still open, the money stays held), `upheld`
(the correcting event is in: the decision names it, reporter and event id, and the
verifier moves the money by the difference it makes, DOMAIN.md "Corrections after
finality"; the ledger holds the payments until that adjustment is in, services/ledger/payouts.py),
or `rejected` with a reason the institution reads.

Pure: ids, the window rule and the fold of a dispute's records into its state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from shared.domain.cpr_text import contains_cpr
from shared.domain.events import Identifier

NOTE_LENGTH_MAX = 1000
USER_LENGTH_MAX = 64
# contract|outcome|subject|trigger: two identifiers, a pseudonym and an identifier.
OUTCOME_KEY_LENGTH_MAX = 400
REVIEW_WINDOW_CLOSED = "review_window_closed"

Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


def _no_cpr(note: str) -> str:
    # A note is kept for good (an append-only table, a topic) and read by people: a CPR
    # number typed into it would be a raw CPR past the edge. A line names the child by the
    # institution's own references, never by CPR (DOMAIN.md, privacy).
    if contains_cpr(note):
        raise ValueError("a note must not contain a CPR number: name the child by your own references")
    return note


Note = Annotated[str, StringConstraints(max_length=NOTE_LENGTH_MAX), AfterValidator(_no_cpr)]
User = Annotated[str, StringConstraints(min_length=1, max_length=USER_LENGTH_MAX)]


class DisputeReason(StrEnum):
    STAY_MISSING = "stay_missing"            # a stay of the child at the institution is not counted
    WRONG_DATES = "wrong_dates"              # a stay's dates are wrong
    WRONG_INSTITUTION = "wrong_institution"  # the child was not at this institution (or at another)
    OTHER = "other"


class Resolution(StrEnum):
    UPHELD = "upheld"
    CORRECTION_REQUESTED = "correction_requested"
    REJECTED = "rejected"


class DisputeState(StrEnum):
    OPEN = "open"
    CORRECTION_REQUESTED = "correction_requested"
    UPHELD = "upheld"
    REJECTED = "rejected"


# While a dispute is in one of these states its outcome's payments go in no payout run.
HOLDING = frozenset({DisputeState.OPEN, DisputeState.CORRECTION_REQUESTED})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DisputeOpened(_Frozen):
    """An institution's administrator disputes its part of an outcome in the review window."""

    kind: Literal["dispute_opened"] = "dispute_opened"
    schema_version: Literal[1] = 1
    dispute_id: Hex32
    outcome_key: Annotated[str, StringConstraints(min_length=1, max_length=OUTCOME_KEY_LENGTH_MAX)]
    contract_id: Identifier
    outcome_id: Identifier
    institution: Identifier
    reason: DisputeReason
    note: Note = ""
    opened_by: User
    opened_on: dt.date          # the verifier's event time when it was raised
    window_closes_on: dt.date   # the outcome's decision date: final (and paid) from then

    @model_validator(mode="after")
    def _within_the_window(self) -> DisputeOpened:
        if window_refusal(self.window_closes_on, self.opened_on) is not None:
            raise ValueError(f"raised on {self.opened_on}, after the window closed on {self.window_closes_on}")
        if self.dispute_id != dispute_id(self.outcome_key, self.institution):
            raise ValueError("dispute_id is not the id of this outcome and institution")
        return self


class DisputeResolved(_Frozen):
    """An operator's decision on a dispute."""

    kind: Literal["dispute_resolved"] = "dispute_resolved"
    schema_version: Literal[1] = 1
    resolution_id: Hex32
    dispute_id: Hex32
    resolution: Resolution
    note: Note = ""
    resolved_by: User
    resolved_on: dt.date
    # Upheld: the correcting event (its reporter and event id) the fix came as.
    correcting_reported_by: Identifier | None = None
    correcting_event_id: Identifier | None = None
    # A correction requested: of whom (the authoritative source: an institution, or a register).
    requested_from: Identifier | None = None

    @model_validator(mode="after")
    def _rejection_has_reason_upheld_has_correction(self) -> DisputeResolved:
        if self.resolution == Resolution.REJECTED and not self.note.strip():
            raise ValueError("a rejection needs a reason the institution can read")
        named = self.correcting_event_id is not None and self.correcting_reported_by is not None
        if self.resolution == Resolution.UPHELD and not named:
            raise ValueError("an upheld dispute names the correcting event (reporter and event id)")
        if self.resolution != Resolution.UPHELD and (self.correcting_event_id or self.correcting_reported_by):
            raise ValueError("only an upheld dispute names a correcting event")
        if (self.resolution == Resolution.CORRECTION_REQUESTED) != (self.requested_from is not None):
            raise ValueError("a correction is requested of a source, and only then is a source named")
        return self


DisputeRecord = Annotated[DisputeOpened | DisputeResolved, Field(discriminator="kind")]
DISPUTE_RECORD: TypeAdapter[DisputeOpened | DisputeResolved] = TypeAdapter(DisputeRecord)


def dispute_id(outcome_key: str, institution: str) -> str:
    """One dispute per outcome and institution: raising it again is the same dispute."""
    return hashlib.sha256(f"dispute|{outcome_key}|{institution}".encode()).hexdigest()[:32]


def resolution_id(dispute: str, resolution: Resolution, note: str, correcting: tuple[str, str] | None,
                  requested_from: str | None = None) -> str:
    """The same decision sent twice (a retry, a double click) is one decision."""
    reporter, event_id = correcting or ("", "")
    text = f"resolution|{dispute}|{resolution.value}|{note}|{reporter}|{event_id}"
    if requested_from is not None:
        text += f"|of:{requested_from}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def window_refusal(window_closes_on: dt.date, event_time: dt.date) -> str | None:
    """None while the review window is open: the verifier's event time is before the
    outcome's decision date (on that date the outcome is final, DOMAIN.md "Finality")."""
    return REVIEW_WINDOW_CLOSED if event_time >= window_closes_on else None


def state_after(state: DisputeState | None, record: DisputeOpened | DisputeResolved) -> DisputeState | None:
    """A dispute's state after one more of its records; None: the record does not apply
    (a resolution of a dispute that was never opened, or of one already decided)."""
    if isinstance(record, DisputeOpened):
        return DisputeState.OPEN if state is None else state
    if state not in HOLDING:
        return None
    return DisputeState(record.resolution.value)


def fold_state(records: Iterable[DisputeOpened | DisputeResolved]) -> DisputeState | None:
    state: DisputeState | None = None
    for record in records:
        state = state_after(state, record) or state
    return state
