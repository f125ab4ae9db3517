"""Bank profiles: what each Danish bank's corporate channel wants in a pain.001, and the
Danish banking day.

A profile (`banks.yaml` beside this file, shipped in the package) names the bank's BIC
(the debtor agent), how the initiating party is identified (the customer agreement id
the bank issued, or the payer's CVR number), the payment type (service level, category
purpose), batch booking, the charge bearer and the form of a NemKonto transfer (a payee
known only by its CVR number). The values follow the Danish CGI implementation
guidelines as we read them; check them against your bank's own message implementation
guide before the first production file, and change `banks.yaml` (or pass
`--profiles FILE`) rather than the code.

The requested execution date must be a Danish banking day: not a Saturday or Sunday, not
a public holiday (the `holidays` package's Danish calendar, maintained upstream), and not
one of the days Danish banks close although they are not public holidays (Constitution
Day, Christmas Eve, New Year's Eve, the Friday after Ascension Day).
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import holidays
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.domain.institutions import Bic

PROFILES_FILE = Path(__file__).parent / "banks.yaml"

Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,35}$")]


class ProfileError(ValueError):
    pass


class NemKontoForm(BaseModel):
    """How a transfer to the NemKonto of a CVR number is written: no IBAN; the payment
    type's local instrument says NemKonto and the creditor account is the CVR number
    under the scheme the bank names."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    local_instrument: Code
    account_scheme: Code


class BankProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")]
    name: str
    bic: Bic
    # InitgPty/Id/OrgId/Othr: the bank's customer agreement id, or the payer's CVR number.
    initiating_party: Literal["agreement", "cvr"]
    initiating_party_scheme: Code  # SchmeNm/Cd, e.g. CUST (the bank's customer number), or BANK
    service_level: Code  # PmtTpInf/SvcLvl/Cd: NURG, a domestic non-urgent transfer
    category_purpose: Code  # PmtTpInf/CtgyPurp/Cd: SUPP, a supplier payment
    batch_booking: bool  # BtchBookg: one debit per payment block, or one per transfer
    charge_bearer: Literal["DEBT", "CRED", "SHAR", "SLEV"]
    nemkonto: NemKontoForm | None = None  # None: the bank takes no NemKonto transfer in a pain.001
    name_max_length: int = Field(default=70, ge=1, le=140)  # the CGI's limit on names


def load_profiles(path: Path = PROFILES_FILE) -> dict[str, BankProfile]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return {key: BankProfile.model_validate({"id": key, **value}) for key, value in data["profiles"].items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValidationError) as error:
        raise ProfileError(f"{path}: not a valid bank profile file: {error}") from None


@cache
def shipped_profiles() -> dict[str, BankProfile]:
    return load_profiles(PROFILES_FILE)


def profile_named(name: str, path: Path | None = None) -> BankProfile:
    profiles = load_profiles(path) if path is not None else shipped_profiles()
    if name not in profiles:
        raise ProfileError(f"no bank profile {name!r} (profiles: {', '.join(sorted(profiles))})")
    return profiles[name]


# Bank closing days that are not public holidays: the optional category of the `holidays`
# package's Danish calendar carries them, together with 1 May, which is a banking day.
_BANK_CLOSED_OPTIONAL = ("Constitution Day", "Christmas Eve", "New Year's Eve")


@cache
def _closed_days(year: int) -> frozenset[dt.date]:
    public = holidays.country_holidays("DK", years=year, language="en_US")
    optional = holidays.country_holidays("DK", years=year, categories=("optional",), language="en_US")
    closed = set(public)
    closed.update(day for day, name in optional.items() if name in _BANK_CLOSED_OPTIONAL)
    closed.update(day + dt.timedelta(days=1) for day, name in public.items() if name == "Ascension Day")
    return frozenset(closed)


def is_banking_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _closed_days(day.year)


def banking_day_on_or_after(day: dt.date) -> dt.date:
    while not is_banking_day(day):
        day += dt.timedelta(days=1)
    return day
