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

from shared.domain.cpr_text import scrub

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
    day, month, year2 = int(match.group(1)), int(match.group(2)), int(match.group(3))
    seventh = int(match.group(4)[0])
    if seventh <= 3:
        century = 1900
    elif seventh in (4, 9):
        century = 2000 if year2 <= 36 else 1900
    else:
        century = 2000 if year2 <= 57 else 1800
    try:
        return dt.date(century + year2, month, day)
    except ValueError:
        raise InvalidCpr("the CPR number's first six digits are not a date") from None


def pseudonymise(cpr: str, key: bytes, key_id: str) -> str:
    digits = cpr.replace("-", "")
    mac = hmac.new(key, digits.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{key_id}:{mac}"


__all__ = ["DEVELOPMENT_KEY", "InvalidCpr", "birth_date_from_cpr", "pseudonymise", "scrub"]
