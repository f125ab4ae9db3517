"""Event schemas: what institutions send, what ingest forwards, what the verifier and
the ledger publish. Frozen pydantic v2 models; every record carries `schema_version`.

An institution event is a past-tense fact about a subject. The envelope is the same for
every type; the `body` is discriminated by `type`. Ingest turns an `InstitutionEvent`
(which may carry a CPR number) into a `Transition` (which carries only a pseudonym).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    TypeAdapter,
    model_serializer,
    model_validator,
)

from shared.domain.currency import is_currency

EVENT_SCHEMA_VERSION = 1
PAYMENT_SCHEMA_VERSION = 1

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,8}:[0-9a-f]{64}$")]


def _iso_4217(code: str) -> str:
    if not is_currency(code):
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


# Money carries its currency: an ISO 4217 code the minor-unit table knows (XYZ is refused).
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_iso_4217)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventType(StrEnum):
    ENROLLED = "enrolled"
    LEFT = "left"
    EXAM_RESULT = "exam_result"
    EDUCATION_COMPLETED = "education_completed"
    EMPLOYMENT_STARTED = "employment_started"
    EMPLOYMENT_ENDED = "employment_ended"
    ABSENCE = "absence"
    TRANSFER = "transfer"
    RETRACTION = "retraction"
    AMENDMENT = "amendment"
    PARENTAL_EDUCATION = "parental_education"
    BENEFIT_STARTED = "benefit_started"
    BENEFIT_ENDED = "benefit_ended"
    REFERRAL = "referral"
    COMPANY_GROWTH = "company_growth"
    RESIDENCE = "residence"


# ---- bodies, one per fact ---------------------------------------------------------

class Enrolled(Frozen):
    type: Literal[EventType.ENROLLED] = EventType.ENROLLED
    institution: Identifier
    stage: Annotated[str, StringConstraints(max_length=64)] = ""


class Left(Frozen):
    type: Literal[EventType.LEFT] = EventType.LEFT
    institution: Identifier
    stage: Annotated[str, StringConstraints(max_length=64)] = ""


class ExamResult(Frozen):
    type: Literal[EventType.EXAM_RESULT] = EventType.EXAM_RESULT
    exam: Annotated[str, StringConstraints(max_length=64)] = "fp9"
    # Danish 7-point scale values (-3, 00, 02, 4, 7, 10, 12) or averages of them.
    grades: dict[Annotated[str, StringConstraints(max_length=32)],
                 Annotated[float, Field(ge=-3, le=12)]] = Field(max_length=32)


class EducationCompleted(Frozen):
    type: Literal[EventType.EDUCATION_COMPLETED] = EventType.EDUCATION_COMPLETED
    programme: Annotated[str, StringConstraints(max_length=128)]
    level: Literal["primary", "youth", "vocational", "higher"]
    institution: Identifier | None = None


class EmploymentStarted(Frozen):
    type: Literal[EventType.EMPLOYMENT_STARTED] = EventType.EMPLOYMENT_STARTED
    employer: Identifier
    hours_per_week: Annotated[int, Field(ge=1, le=80)] = 37
    # A job with a public wage subsidy (løntilskud, flexjob): not an ordinary job. A
    # double-sided PbR pays only for ordinary, unsubsidised jobs.
    wage_subsidy: bool = False


class EmploymentEnded(Frozen):
    type: Literal[EventType.EMPLOYMENT_ENDED] = EventType.EMPLOYMENT_ENDED
    employer: Identifier


class Absence(Frozen):
    type: Literal[EventType.ABSENCE] = EventType.ABSENCE
    institution: Identifier
    period_start: dt.date
    period_end: dt.date
    days_absent: Annotated[int, Field(ge=0, le=366)]
    days_total: Annotated[int, Field(ge=1, le=366)]


EducationLevel = Literal["primary", "youth", "vocational", "higher"]


class ParentalEducation(Frozen):
    """The child's starting point, from the education register: the highest education
    either parent had completed. A fact about the child (the subject), pseudonymised
    like every other; the parents are never named. The latest report counts."""

    type: Literal[EventType.PARENTAL_EDUCATION] = EventType.PARENTAL_EDUCATION
    highest_level: EducationLevel


# Public income support a citizen receives (from the benefit register, DREAM-like):
# the target groups of an employment programme are named by it.
BenefitType = Literal["cash_benefit", "integration_benefit", "unemployment_benefit",
                      "sickness_benefit", "other"]


class BenefitStarted(Frozen):
    """The citizen receives `benefit` from this day (the benefit register reports it)."""

    type: Literal[EventType.BENEFIT_STARTED] = EventType.BENEFIT_STARTED
    benefit: BenefitType
    municipality: Identifier


class BenefitEnded(Frozen):
    """The last day the citizen received `benefit` (inclusive)."""

    type: Literal[EventType.BENEFIT_ENDED] = EventType.BENEFIT_ENDED
    benefit: BenefitType


class Referral(Frozen):
    """The municipality (its jobcentre) refers the citizen to a programme's places in
    one of its clusters. Whether a place was free is decided from all referrals
    (shared/domain/programmes/double_sided.py), not by the referral itself."""

    type: Literal[EventType.REFERRAL] = EventType.REFERRAL
    programme: Identifier
    municipality: Identifier
    cluster: Identifier


class Residence(Frozen):
    """The CPR register's move: from `occurred_on` the subject lives in `municipality` (the
    code the institution registry's `municipality:` uses). Which municipality pays may be a
    contract's rule on it (`eligibility.resident_on`, docs/tenancy.md)."""

    type: Literal[EventType.RESIDENCE] = EventType.RESIDENCE
    municipality: Identifier


class CompanyGrowth(Frozen):
    """A company's jobs and turnover at the start and the end of a period, from the
    business register (CVR/Statistics Denmark-like). The subject is the company, named
    by `cvr:` and the SHA-256 of its CVR number (shared/domain/programmes/double_sided.py:
    company_subject), with its founding date as birth date. The two changes are the
    register's own arithmetic, checked here: a fact that contradicts itself is refused."""

    type: Literal[EventType.COMPANY_GROWTH] = EventType.COMPANY_GROWTH
    company: Identifier
    period_start: dt.date
    period_end: dt.date
    employees_start: Annotated[int, Field(ge=0, le=10_000_000)]
    employees_end: Annotated[int, Field(ge=0, le=10_000_000)]
    employees_change: int
    turnover_start_minor: Annotated[int, Field(ge=0, le=10**15)]
    turnover_end_minor: Annotated[int, Field(ge=0, le=10**15)]
    # Whole percent, rounded towards minus infinity; None when the start was 0.
    turnover_change_percent: int | None = None
    currency: Currency

    @model_validator(mode="after")
    def _consistent(self) -> CompanyGrowth:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must come after period_start")
        if self.employees_change != self.employees_end - self.employees_start:
            raise ValueError("employees_change must be employees_end - employees_start")
        if self.turnover_change_percent != turnover_change_percent(self.turnover_start_minor,
                                                                   self.turnover_end_minor):
            raise ValueError("turnover_change_percent must be the whole percent change, rounded down "
                             "(none when turnover_start_minor is 0)")
        return self


def turnover_change_percent(start_minor: int, end_minor: int) -> int | None:
    return None if start_minor == 0 else (100 * (end_minor - start_minor)) // start_minor


class Transfer(Frozen):
    type: Literal[EventType.TRANSFER] = EventType.TRANSFER
    from_institution: Identifier
    to_institution: Identifier
    compensation_minor: Annotated[int, Field(ge=0, le=10**15)]
    currency: Currency


class _Correction(Frozen):
    """A correction names the event it corrects by its reporter's event id. An event id
    is its reporter's own, so by default that is the correction's own reporter; an
    institution the registry names as another's `authority` (a municipality for its own
    schools) names the original reporter as well. Only the original reporter or its
    authority may correct an event (ingest refuses anything else as
    `not_original_reporter`, and the verifier's fold ignores it)."""

    @model_serializer(mode="wrap")
    def _without_default_reporter(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # Left out when not given, so that a correction's bytes (and ingest's content
        # hash of it) are what they were before the field existed.
        data: dict[str, object] = handler(self)
        for name in ("retracts_reported_by", "amends_reported_by"):
            if name in data and data[name] is None:
                del data[name]
        return data


class Retraction(_Correction):
    type: Literal[EventType.RETRACTION] = EventType.RETRACTION
    retracts_event_id: Identifier
    reason: Annotated[str, StringConstraints(max_length=500)] = ""
    retracts_reported_by: Identifier | None = None

    @property
    def corrects(self) -> tuple[str | None, str]:
        """(the corrected event's reporter if named, its event id)."""
        return self.retracts_reported_by, self.retracts_event_id


class Amendment(_Correction):
    """Replaces the body of an earlier event: never its type, its subject or its reporter."""

    type: Literal[EventType.AMENDMENT] = EventType.AMENDMENT
    amends_event_id: Identifier
    body: FactBody
    amends_reported_by: Identifier | None = None

    @property
    def corrects(self) -> tuple[str | None, str]:
        return self.amends_reported_by, self.amends_event_id


FactBody = Annotated[
    Enrolled | Left | ExamResult | EducationCompleted | EmploymentStarted
    | EmploymentEnded | Absence | Transfer | ParentalEducation
    | BenefitStarted | BenefitEnded | Referral | CompanyGrowth | Residence,
    Field(discriminator="type"),
]
Body = Annotated[
    Enrolled | Left | ExamResult | EducationCompleted | EmploymentStarted
    | EmploymentEnded | Absence | Transfer | ParentalEducation
    | BenefitStarted | BenefitEnded | Referral | CompanyGrowth | Residence | Retraction | Amendment,
    Field(discriminator="type"),
]
Amendment.model_rebuild()


# ---- the envelopes ------------------------------------------------------------------

class SubjectReference(Frozen):
    """How an institution names a subject.

    On the topic: `cpr_sealed` (the CPR number sealed to ingest's public key by
    `stafet publish`), or a `pseudonym` with the `birth_date`. In an institution's own
    files: `cpr` in clear, which the publisher seals before anything leaves the machine.
    """

    cpr: Annotated[str, StringConstraints(max_length=11)] | None = None
    cpr_sealed: Annotated[str, StringConstraints(pattern=r"^v2\.[A-Za-z0-9_-]{40,200}$")] | None = None
    pseudonym: Pseudonym | None = None
    birth_date: dt.date | None = None


class InstitutionEvent(Frozen):
    """What an institution publishes on the institution-events topic (schema v1)."""

    event_id: Identifier
    schema_version: Literal[1] = 1
    occurred_on: dt.date
    reported_by: Identifier
    subject: SubjectReference
    body: Body


class Transition(Frozen):
    """A validated, trusted, pseudonymised fact, as the verifier consumes it."""

    event_id: Identifier
    schema_version: Literal[1] = 1
    occurred_on: dt.date
    reported_by: Identifier
    reporter_kind: str
    subject: Pseudonym
    birth_date: dt.date
    body: Body


# ---- money out ------------------------------------------------------------------------

class PaymentKind(StrEnum):
    PAYMENT = "payment"
    CLAWBACK = "clawback"


class PaymentInstruction(Frozen):
    """One payee's money for one outcome, or the reversal of an earlier instruction.

    `payment_id` is derived from contract, version, outcome, subject and payee, so a
    replay or redelivery can never create a second payment. For an indicator outcome
    (docs/contracts.md) `subject` is the population's id (`pop:` and 64 hex digits, no
    person), and a re-decision that raises the amount is a top-up payment of the
    difference.
    """

    payment_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    schema_version: Literal[1] = 1
    kind: Literal[PaymentKind.PAYMENT, PaymentKind.CLAWBACK]
    contract_id: Identifier
    contract_version: int
    outcome_id: Identifier
    subject: Pseudonym
    payer: Identifier
    payee: Identifier
    # Which receivable the money goes to: an institution, or the contract's fallback.
    payee_role: Literal["institution", "fallback"] = "institution"
    amount_minor: Annotated[int, Field(gt=0)]
    currency: Currency
    occurred_on: dt.date
    reverses_payment_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None
    # The event that was the evidence for the outcome (audit trail).
    trigger_event_id: Identifier | None = None


class OutcomeStatus(StrEnum):
    """Where an outcome stands: the engine decides it, the outcomes topic carries it."""

    VERIFIED = "verified"
    REJECTED = "rejected"
    CAPPED = "capped"
    PENDING_SUSTAINMENT = "pending_sustainment"
    # Verified under a contract with a total or per-period cap, and waiting for the
    # contract's review window to pass before the budget decides it (docs/contracts.md).
    PENDING_REVIEW = "pending_review"


class OutcomeRecorded(Frozen):
    """An outcome decision, published whenever it changes (outcomes topic, schema v1).

    `type` follows the domain's names: OutcomeVerified, OutcomeRejected (with a reason
    code), OutcomeCapped, OutcomePending (waiting for its sustainment period). An
    indicator outcome (docs/contracts.md) is recorded with the population's id as its
    `subject` (`pop:...`, no person) and `indicator:<indicator id>` as its trigger;
    its reasons include `population_below_minimum` and `improvement_below_floor`.
    """

    type: Literal["OutcomeVerified", "OutcomeRejected", "OutcomeCapped", "OutcomePending"]
    schema_version: Literal[1] = 1
    outcome_key: str
    contract_id: Identifier
    contract_version: int
    outcome_id: Identifier
    subject: Pseudonym
    trigger_event_id: Identifier
    status: OutcomeStatus
    reason: str | None
    occurred_on: dt.date
    owed_minor: int
    currency: Currency
    payees: tuple[tuple[str, int], ...] = ()


class SettlementStatus(StrEnum):
    PAID = "paid"
    FAILED = "failed"
    # Paid, then sent back by the payee's bank (camt.054 RtrInf: AC04 closed account, AC06
    # blocked, MD07 deceased, ...): owed to the payee again, paid in a later run.
    RETURNED = "returned"


class Settlement(Frozen):
    """A finance system's answer to one instruction (settlements topic, schema v1).

    `paid` needs the bank reference; `failed` and `returned` need a reason. A payment
    takes one `paid` or `failed`; a `returned` undoes a `paid` (the payment is owed
    again), after which it may be paid again. `settlement_id` is the finance system's
    idempotency key: the same settlement twice is one settlement.
    Publish it keyed by `payment_id`, so that one payment's answers keep their order.
    """

    kind: Literal["settlement"] = "settlement"
    settlement_id: Identifier
    schema_version: Literal[1] = 1
    payment_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    status: SettlementStatus
    settled_on: dt.date
    bank_reference: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    # Who signed it (`finance:<name>`): set by the ledger's forwarder from the verified
    # signature when it puts the settlement on the journal, whatever the finance system
    # wrote here; the journal then decides whether that principal acts for the payment's
    # payer (shared/domain/tenancy.py). Not part of the entry's hash (the signed journal
    # record kept with the entry proves it: services/ledger/provenance.py).
    settled_by: Annotated[str, StringConstraints(max_length=200)] | None = None

    @model_validator(mode="after")
    def _paid_has_reference_failed_has_reason(self) -> Settlement:
        if self.status == SettlementStatus.PAID and not self.bank_reference:
            raise ValueError("a paid settlement needs a bank_reference")
        if self.status in (SettlementStatus.FAILED, SettlementStatus.RETURNED) and not self.reason:
            raise ValueError(f"a {self.status.value} settlement needs a reason")
        return self


# What the ledger journal (the payments topic) carries, in ledger order.
JournalRecord = Annotated[PaymentInstruction | Settlement, Field(discriminator="kind")]

JOURNAL_RECORD: TypeAdapter[PaymentInstruction | Settlement] = TypeAdapter(JournalRecord)


class ClockTick(Frozen):
    """A watermark (transitions topic, schema v1): "the facts that occurred on or before
    `today` are in". `stafet clock` publishes it, signed by an operator, on every
    partition after the facts it covers; the verifier's event time is the least of the
    partitions' watermarks, so no subject's fact moves another subject's time, and an
    outcome is final once it passes the outcome's decision date (docs/contracts.md,
    "Finality")."""

    kind: Literal["clock_tick"] = "clock_tick"
    schema_version: Literal[1] = 1
    today: dt.date


# What the transitions topic carries: facts, and clock ticks. A Transition never has a
# `kind` field, so the left-to-right union is unambiguous.
TRANSITIONS_RECORD: TypeAdapter[ClockTick | Transition] = TypeAdapter(
    Annotated[ClockTick | Transition, Field(union_mode="left_to_right")])
