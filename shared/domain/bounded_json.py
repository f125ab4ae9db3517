"""Parsing a record from outside under explicit limits, before any model sees it.

Anyone who may write one record may try to stop the line with it: a number of 5,000
digits (Python's `int` refuses more than 4,300, with a `ValueError` that is not a JSON
error), 30,000 levels of nesting (a `RecursionError`), a megabyte-long string. So every
record is checked against each limit below first, and a record over one is refused with
that limit's reason code; only a record within all of them is handed to `json.loads`
(with hooks that check numbers once more, and refuse `NaN` and `Infinity`, which are not
JSON). Pure: bytes in, a value or a `Breach` out.

The limits are far above any real event (a few hundred bytes, depth 4, a dozen numbers
of at most 17 characters) and far below what costs anything to check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum

RECORD_BYTES_MAX = 64 * 1024  # an institution event is a few hundred bytes
DEPTH_MAX = 16  # an amendment's grades are at depth 4
NUMBER_CHARS_MAX = 32  # 10**15 minor units has 16 digits; a float's repr at most 24 characters
STRING_BYTES_MAX = 4096  # as written, escapes included: a 500-character reason, escaped, fits
ITEMS_MAX = 1024  # values in the whole record (object members and array elements)

# A JSON string as written (escapes undecoded), and what is left outside strings.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: no alternation per character
_BRACKET = re.compile(rb"[\[\]{}]")
_NUMBER_RUN = re.compile(rb"[-+0-9.eE]+")
_LONG_NUMBER_RUN = re.compile(rb"[-+0-9.eE]{%d,}" % (NUMBER_CHARS_MAX + 1))
# A UTF-16 surrogate escape: alone, it makes a string no UTF-8 encoder takes.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


class LimitReason(StrEnum):
    RECORD_TOO_LARGE = "record_too_large"
    NESTING_TOO_DEEP = "nesting_too_deep"
    NUMBER_TOO_LONG = "number_too_long"
    STRING_TOO_LONG = "string_too_long"
    TOO_MANY_ITEMS = "too_many_items"
    MALFORMED_JSON = "malformed_json"


@dataclass(frozen=True)
class Breach:
    """A record refused before parsing: which limit, and a message with no record text."""

    reason: LimitReason
    message: str


class _NotJson(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text) > NUMBER_CHARS_MAX:  # the scan checked already; this is the parser's own word
        raise _NotJson(f"a number of {len(text)} characters, at most {NUMBER_CHARS_MAX}")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > NUMBER_CHARS_MAX:
        raise _NotJson(f"a number of {len(text)} characters, at most {NUMBER_CHARS_MAX}")
    return float(text)


def _no_constant(text: str) -> object:
    raise _NotJson(f"{text} is not JSON")


def _scan(raw: bytes) -> Breach | None:
    """Check every limit on the raw text; None when it is within all of them."""
    if len(raw) > RECORD_BYTES_MAX:
        return Breach(LimitReason.RECORD_TOO_LARGE, f"record is {len(raw)} bytes, at most {RECORD_BYTES_MAX}")
    opens = raw.count(b"[") + raw.count(b"{")
    if len(raw) <= STRING_BYTES_MAX and opens <= DEPTH_MAX and raw.count(b",") + opens <= ITEMS_MAX \
            and _LONG_NUMBER_RUN.search(raw) is None:
        # Counted over the whole text, strings included, each is at least its count
        # outside strings: within every bound here, the record is within every limit.
        return None
    longest = max((len(m) for m in _STRING.findall(raw)), default=0)
    if longest > STRING_BYTES_MAX:
        return Breach(LimitReason.STRING_TOO_LONG, f"a string of {longest} bytes, at most {STRING_BYTES_MAX}")
    outside = _STRING.sub(b'""', raw)
    number = max((len(m) for m in _NUMBER_RUN.findall(outside)), default=0)
    if number > NUMBER_CHARS_MAX:
        return Breach(LimitReason.NUMBER_TOO_LONG, f"a number of {number} characters, at most {NUMBER_CHARS_MAX}")
    depth = deepest = 0
    for bracket in _BRACKET.findall(outside):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > deepest:
            deepest = depth
            if deepest > DEPTH_MAX:
                return Breach(LimitReason.NESTING_TOO_DEEP, f"nested deeper than {DEPTH_MAX} levels")
    # Every value after the first in a container follows a comma; a record's values are
    # at most its commas plus its containers.
    items = outside.count(b",") + outside.count(b"[") + outside.count(b"{")
    if items > ITEMS_MAX:
        return Breach(LimitReason.TOO_MANY_ITEMS, f"about {items} values, at most {ITEMS_MAX}")
    return None


def parse(raw: bytes) -> object | Breach:
    """The JSON document `raw` (UTF-8), or the first limit it breaks, or `malformed_json`."""
    breach = _scan(raw)
    if breach is not None:
        return breach
    try:
        text = raw.decode("utf-8")
        data: object = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant)
        if _SURROGATE.search(raw):
            json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate raises here
        return data
    except UnicodeDecodeError:
        return Breach(LimitReason.MALFORMED_JSON, "not valid JSON: not UTF-8")
    except json.JSONDecodeError as error:
        # The decoder's own message names a position, never the record's text.
        return Breach(LimitReason.MALFORMED_JSON, f"not valid JSON: {error}")
    except _NotJson as error:
        return Breach(LimitReason.MALFORMED_JSON, f"not valid JSON: {error}")
    except (UnicodeEncodeError, RecursionError, ValueError) as error:
        return Breach(LimitReason.MALFORMED_JSON, f"not valid JSON: {type(error).__name__}")
