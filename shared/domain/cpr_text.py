"""Finding CPR numbers in free text, in any common spelling, and removing them.

Past ingest nothing may carry a CPR number, and an institution's system can put one
anywhere: a stage, a programme, the key of a grade, a retraction's reason, an event id.
So ingest looks at every string of an event (keys and values; JSON escapes are decoded
by the parser before it looks), and dead letters are redacted before they are written.

Spellings recognised: ten digits as DDMMYY SSSS with at most one separator between the
groups, a separator being a dash, space, dot, slash or underscore (`170702-4000`,
`1707024000`, `170702 4000`, `17.07.02-4000`, `17 07 02 4000`). Detection (which
refuses an event) also requires DD and MM to be a possible day and month, so that an
order number is not mistaken for a CPR number; redaction (which only hides text in a
dead letter) removes every such ten-digit run, date or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_SEPARATOR = r"[-\s./_\u00a0]?"
CPR_SPELLED = re.compile(
    rf"(?<![0-9])([0-9]{{2}}){_SEPARATOR}([0-9]{{2}}){_SEPARATOR}([0-9]{{2}}){_SEPARATOR}([0-9]{{4}})(?![0-9])")
# A JSON escape of a digit or a separator, as a record's raw text may spell a CPR number
# to slip past a plain pattern match (`\u0031\u0037...`).
_JSON_ESCAPE = re.compile(r"\\u00(3[0-9]|2[0de]|2f|5f|20|a0)", re.IGNORECASE)
REMOVED = "[cpr removed]"


def _plausible(match: re.Match[str]) -> bool:
    day, month = int(match.group(1)), int(match.group(2))
    return 1 <= day <= 31 and 1 <= month <= 12


def contains_cpr(text: str) -> bool:
    """True when `text` holds something spelled like a CPR number with a possible date."""
    return any(_plausible(match) for match in CPR_SPELLED.finditer(text))


def scrub(text: str) -> str:
    """`text` with JSON escapes of digits decoded and every CPR-like run removed."""
    decoded = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return CPR_SPELLED.sub(REMOVED, decoded)


def strings_with_cpr(data: object, skip: frozenset[str] = frozenset(), path: str = "") -> Iterator[str]:
    """The dotted path of every key or string value in parsed JSON that holds a CPR number
    (a key's path ends in the key itself, redacted). Paths in `skip` are not looked at."""
    if path in skip:
        return
    if isinstance(data, str):
        if contains_cpr(data):
            yield path
    elif isinstance(data, dict):
        for key, value in data.items():
            child = f"{path}.{key}" if path else str(key)
            if contains_cpr(str(key)):
                yield scrub(child)
                continue
            yield from strings_with_cpr(value, skip, child)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from strings_with_cpr(value, skip, f"{path}.{index}" if path else str(index))


def may_hold_cpr(raw: bytes) -> bool:
    """Whether a string (key or value) of the JSON document `raw` may hold a CPR number.
    False is certain, so `strings_with_cpr` can be skipped; True means: walk and look.

    Without a backslash, a JSON string's decoded text is its raw text verbatim, between
    quotes, which are neither digits nor separators: every match inside a string is a
    match in the raw text. One search over the whole record is much cheaper than one per
    string. Escapes (`\\u0031`, `\\/`) and text that is not UTF-8 take the slow path."""
    if b"\\" in raw:
        return True
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return CPR_SPELLED.search(text) is not None


def strings_with_cpr_in(raw: bytes, data: object, skip: frozenset[str] = frozenset()) -> list[str]:
    """`strings_with_cpr(data, skip)` of the document `data` parsed from `raw`, skipping
    the walk when `raw` cannot hold one (`may_hold_cpr`)."""
    return list(strings_with_cpr(data, skip)) if may_hold_cpr(raw) else []
