"""CPR numbers in, pseudonyms out. Only ingest imports this module.

A pseudonym is `<key id>:<HMAC-SHA256(key, CPR digits) in hex>`. The key id lets a new
key be introduced later (docs/privacy.md) without confusing two keys' pseudonyms.
CPR validation checks the DDMMYY-SSSS shape and the date, not modulus 11: numbers
issued since 2007 may fail modulus 11 and are still valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from shared.domain.cpr_text import cpr_birth_date, scrub

# ASCII digits only: `\d` would take any script's digits, which no pseudonym key hashes.
CPR_SHAPE = re.compile(r"^([0-9]{2})([0-9]{2})([0-9]{2})-?([0-9]{4})$")
DEVELOPMENT_KEY = b"stafet-development-key-not-for-production"


class InvalidCpr(ValueError):
    pass


def birth_date_from_cpr(cpr: str) -> dt.date:
    """The birth date a CPR number encodes (century from the 7th digit, per CPR rules)."""
    match = CPR_SHAPE.match(cpr)
    if match is None:
        raise InvalidCpr("a CPR number is 10 digits, DDMMYY-SSSS")
    born = cpr_birth_date("".join(match.groups()))
    if born is None:
        raise InvalidCpr("the CPR number's first six digits are not a date")
    return born


def pseudonymise(cpr: str, key: bytes, key_id: str) -> str:
    digits = cpr.replace("-", "")
    mac = hmac.new(key, digits.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{key_id}:{mac}"


__all__ = ["DEVELOPMENT_KEY", "InvalidCpr", "birth_date_from_cpr", "pseudonymise", "scrub"]
