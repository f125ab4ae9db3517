"""The institution registry and the trust rules: who may report which fact.

An event from an institution that is not in the registry, or whose kind may not report
that type of fact, is dead-lettered with a reason; it never reaches the verifier.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from shared.domain.events import EventType, Identifier

# Which institution kinds may report each fact. Only the exam authority reports exam
# results, only the income register reports employment: an institution that is paid
# for an outcome is never the source of its evidence.
TRUSTED_REPORTERS: dict[EventType, frozenset[str]] = {
    EventType.ENROLLED: frozenset({"daycare", "primary_school", "youth_education",
                                   "employment_actor", "social_enterprise", "club"}),
    EventType.LEFT: frozenset({"daycare", "primary_school", "youth_education",
                               "employment_actor", "social_enterprise", "club"}),
    EventType.ABSENCE: frozenset({"daycare", "primary_school", "youth_education"}),
    EventType.EXAM_RESULT: frozenset({"exam_authority"}),
    EventType.EDUCATION_COMPLETED: frozenset({"exam_authority"}),
    EventType.EMPLOYMENT_STARTED: frozenset({"income_register"}),
    EventType.EMPLOYMENT_ENDED: frozenset({"income_register"}),
    EventType.TRANSFER: frozenset({"association"}),
    # The starting point comes from Statistics Denmark's education register, never from
    # an institution that a larger mobility bonus would pay.
    EventType.PARENTAL_EDUCATION: frozenset({"education_register"}),
    # Benefit periods come from the benefit register, never from the programme that a
    # citizen's leaving benefit pays; a referral from the municipality that refers
    # (its jobcentre), which pays and is never paid by the outcome; a company's growth
    # from the business register, never from the company paid for it.
    EventType.BENEFIT_STARTED: frozenset({"benefit_register"}),
    EventType.BENEFIT_ENDED: frozenset({"benefit_register"}),
    EventType.REFERRAL: frozenset({"municipality"}),
    EventType.COMPANY_GROWTH: frozenset({"business_register"}),
    # Where a child lives comes from the CPR register, never from an institution a
    # municipality's contract pays (docs/tenancy.md).
    EventType.RESIDENCE: frozenset({"cpr_register"}),
    # Any registered institution may send a correction, of its own events only: ingest
    # checks it against the corrected event's reporter (`may_act_for`, and the reporter
    # it remembers per event id), and the verifier's fold checks it again.
    EventType.RETRACTION: frozenset(),
    EventType.AMENDMENT: frozenset(),
}


class PaymentMethod(StrEnum):
    """How a payee receives money (the registry's `payment_method`)."""

    # An ISO 20022 credit transfer to the payee's IBAN: in the pain.001 payout file.
    BANK_TRANSFER = "bank_transfer"
    # To the NemKonto registered for the payee's CVR number (the Danish public payment
    # system): the payout CSV carries it, a pain.001 cannot (it has no account to name).
    NEMKONTO = "nemkonto"


_CVR_WEIGHTS = (2, 7, 6, 5, 4, 3, 2, 1)


def _cvr(value: str) -> str:
    # CVR numbers carry a modulus-11 check over fixed weights (Erhvervsstyrelsen).
    if sum(int(d) * w for d, w in zip(value, _CVR_WEIGHTS, strict=True)) % 11:
        raise ValueError(f"{value!r} is not a CVR number (modulus 11 check fails)")
    return value


def _ean(value: str) -> str:
    # EAN (GLN) location numbers, used by public institutions for e-invoicing, end in a
    # GS1 check digit: weights 1 and 3 from the right, sum a multiple of 10.
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(reversed(value)))
    if total % 10:
        raise ValueError(f"{value!r} is not an EAN location number (check digit fails)")
    return value


def _iban(value: str) -> str:
    try:
        return str(IBAN(value).compact)
    except SchwiftyException as error:
        raise ValueError(f"{value!r} is not a valid IBAN: {error}") from None


def _bic(value: str) -> str:
    try:
        return str(BIC(value).compact)
    except SchwiftyException as error:
        raise ValueError(f"{value!r} is not a valid BIC: {error}") from None


Cvr = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{7}$"), AfterValidator(_cvr)]
Ean = Annotated[str, StringConstraints(pattern=r"^[0-9]{13}$"), AfterValidator(_ean)]
# Stored compact (no spaces, upper case): schwifty checks country, length, national
# format and the mod-97 check digits.
Iban = Annotated[str, StringConstraints(min_length=15, max_length=42), AfterValidator(_iban)]
Bic = Annotated[str, StringConstraints(min_length=8, max_length=11), AfterValidator(_bic)]


class Institution(BaseModel):
    """One registered institution and, if it is ever paid, its payee master data."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Identifier
    name: str
    kind: Identifier
    municipality: str = ""
    # Ed25519 public keys (hex) whose signatures prove an event comes from this
    # institution; several while a key is being rotated (shared/platform/trust.py).
    keys: tuple[str, ...] = ()
    # A register (the CPR-based exam authority, the income register) may name subjects by
    # pseudonym and birth date; every other institution must send a sealed CPR number.
    may_send_pseudonyms: bool = False
    # The institution that may act for this one: correct its events and report stays at
    # it (a municipality for its own schools and daycares). No one else may.
    authority: Identifier | None = None
    # Payee master data: who the money goes to. Statements print it and payout files
    # are built from it; a payee without it is left out of a payout with a reason.
    cvr: Cvr | None = None
    ean: Ean | None = None  # public institutions (municipalities, schools, daycares)
    iban: Iban | None = None
    bic: Bic | None = None
    payment_method: PaymentMethod | None = None
    # One of the payer's own institutions (a municipality's school or daycare): money
    # from `owned_by` to it is an internal posting in the payer's books, not a bank
    # transfer, booked on `cost_centre` (`stafet finance payout --format postings`).
    owned_by: Identifier | None = None
    cost_centre: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z._-]{1,20}$")] | None = None

    def internal_to(self, payer: str) -> bool:
        """Whether money from `payer` to this institution stays in the payer's own books."""
        return self.owned_by is not None and self.owned_by == payer

    @model_validator(mode="after")
    def _payment_method_has_its_account(self) -> Institution:
        if self.payment_method == PaymentMethod.BANK_TRANSFER and self.iban is None:
            raise ValueError(f"{self.id}: payment_method bank_transfer needs an iban")
        if self.payment_method == PaymentMethod.NEMKONTO and self.cvr is None:
            raise ValueError(f"{self.id}: payment_method nemkonto needs a cvr")
        if self.payment_method is None and self.iban is not None:
            raise ValueError(f"{self.id}: an iban needs a payment_method")
        if self.owned_by is not None and self.cost_centre is None:
            raise ValueError(f"{self.id}: owned_by needs a cost_centre (where the payer books it)")
        return self


def synthetic_payee_fields(institution_id: str) -> dict[str, str]:
    """Deterministic, check-digit-valid CVR, EAN and IBAN for a synthetic institution
    (generated populations and tests): derived from the id, so the same id always gets
    the same accounts. Not real accounts: bank code 9999 is not a Danish bank."""
    digits = str(int(hashlib.sha256(institution_id.encode()).hexdigest(), 16))
    base = "1" + digits[:6]
    for last in range(10):
        if sum(int(d) * w for d, w in zip(base + str(last), _CVR_WEIGHTS, strict=True)) % 11 == 0:
            cvr = base + str(last)
            break
    else:  # no digit makes the sum divisible: shift the base (happens for 1 in 11)
        return synthetic_payee_fields(institution_id + "'")
    ean_body = "5798" + digits[6:14]
    check = (10 - sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(ean_body))) % 10) % 10
    iban = IBAN.generate("DK", bank_code="9999", account_code=digits[14:24])
    return {"cvr": cvr, "ean": ean_body + str(check), "iban": str(iban.compact),
            "payment_method": PaymentMethod.BANK_TRANSFER.value}


class RegistryError(ValueError):
    pass


class InstitutionRegistry:
    def __init__(self, institutions: tuple[Institution, ...]) -> None:
        self._by_id = {i.id: i for i in institutions}
        unknown = sorted(f"{i.id}: {i.authority}" for i in institutions
                         if i.authority is not None and i.authority not in self._by_id)
        if unknown:
            raise RegistryError(f"an authority that is not in the registry: {', '.join(unknown)}")

    @classmethod
    def from_file(cls, path: Path) -> InstitutionRegistry:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            rows = tuple(Institution.model_validate(row) for row in data["institutions"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValidationError) as error:
            raise RegistryError(f"{path}: not a valid institution registry: {error}") from None
        return cls(rows)

    def get(self, institution_id: str) -> Institution | None:
        return self._by_id.get(institution_id)

    def name_of(self, institution_id: str) -> str:
        found = self._by_id.get(institution_id)
        return found.name if found else institution_id

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> tuple[Institution, ...]:
        return tuple(self._by_id.values())

    def may_act_for(self, actor: str, owner: str) -> bool:
        """Whether `actor` may correct `owner`'s events and report stays at `owner`: it
        is `owner`, or the authority the registry names for `owner`."""
        if actor == owner:
            return True
        found = self._by_id.get(owner)
        return found is not None and found.authority == actor

    def authorities(self) -> dict[str, str]:
        """Institution id -> the authority that may act for it (for the verifier's fold)."""
        return {i.id: i.authority for i in self._by_id.values() if i.authority is not None}


def may_report(kind: str, event_type: EventType) -> bool:
    allowed = TRUSTED_REPORTERS[event_type]
    return not allowed or kind in allowed
