"""Finding CPR numbers in free text, in any spelling, and removing them.

Past ingest nothing may carry a CPR number, and an institution's system can put one
anywhere: a stage, a programme, the key of a grade, a retraction's reason, an event id,
an integer. So ingest looks at every key and value of an event (strings and numbers;
JSON escapes are decoded by the parser before it looks), and dead letters are redacted
before they are written.

Text is folded before it is looked at, so that every spelling is one spelling:
- Unicode NFKC, and every decimal digit of any script (full-width, Arabic-Indic, ...)
  mapped to its ASCII digit;
- format characters (zero-width space and joiners, soft hyphen, BOM) and combining marks
  removed;
- every other character that is neither a letter nor a digit (dashes of every kind, the
  minus sign, spaces of every kind, tabs, dots, slashes, underscores, colons, plus,
  commas, ...) folded into one separator.
A CPR number is then ten digits in groups joined by separators (`170702-4000`,
`170 702 4000`, `17.07.02 - 4000`, `ev:170702:4000`), starting and ending at a group's
edge, whose first six digits are a valid date (DDMMYY, the century from the seventh
digit as the CPR rules say). An eleven-digit number, a Unix time (`1733390000`: month
33) or an order number is not one: detection refuses an event and redaction hides text
only where a CPR number can be.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator

REMOVED = "[cpr removed]"
CPR_DIGITS = 10
_SEPARATOR = " "
# ASCII: letters and digits stay, everything else is a separator (one C-speed translate).
_ASCII_FOLD = {c: (chr(c) if chr(c).isalnum() else _SEPARATOR) for c in range(128)}
_RUN = re.compile(r"[0-9]+(?: +[0-9]+)*")
_GROUP = re.compile(r"[0-9]+")
# A run of ten digits joined by separators somewhere in folded ASCII text: the fast
# check's superset of every CPR spelling.
_TEN_DIGITS = re.compile(rb"[0-9](?:[^0-9A-Za-z]*[0-9]){9}")
# JSON escapes in raw text (a dead letter's original), decoded before folding.
_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[\"\\/bfnrt])")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# The old ASCII-only pattern, for tests and tools that look for the common spellings.
CPR_SPELLED = re.compile(
    r"(?<![0-9])([0-9]{2})[-\s./_\u00a0]?([0-9]{2})[-\s./_\u00a0]?([0-9]{2})[-\s./_\u00a0]?([0-9]{4})(?![0-9])")


def cpr_birth_date(digits: str) -> dt.date | None:
    """The birth date ten ASCII digits encode as a CPR number (century from the seventh
    digit, per the CPR rules), or None when the first six are not a date."""
    if len(digits) != CPR_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    day, month, year2, seventh = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6])
    if seventh <= 3:
        century = 1900
    elif seventh in (4, 9):
        century = 2000 if year2 <= 36 else 1900
    else:
        century = 2000 if year2 <= 57 else 1800
    try:
        return dt.date(century + year2, month, day)
    except ValueError:
        return None


def _fold_char(char: str) -> str:
    if char.isascii():
        return _ASCII_FOLD[ord(char)]
    category = unicodedata.category(char)
    if category in ("Cf", "Mn", "Me"):
        return ""
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    normal = unicodedata.normalize("NFKC", char)
    if normal != char:
        return "".join(_fold_char(c) for c in normal)
    return char if category[0] in "LN" else _SEPARATOR


def fold(text: str) -> tuple[str, list[int]]:
    """`text` folded (see the module's docstring), and for each folded character the
    index of the character of `text` it came from."""
    if text.isascii():
        return text.translate(_ASCII_FOLD), list(range(len(text)))
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        for piece in _fold_char(char):
            folded.append(piece)
            origin.append(index)
    return "".join(folded), origin


def _spans(folded: str) -> Iterator[tuple[int, int]]:
    """(start, end) in `folded` of every CPR number: ten digits in whole groups."""
    for run in _RUN.finditer(folded):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in _GROUP.finditer(run.group())]
        for first in range(len(groups)):
            count = 0
            for last in range(first, len(groups)):
                count += groups[last][1] - groups[last][0]
                if count >= CPR_DIGITS:
                    break
            if count == CPR_DIGITS:
                digits = "".join(folded[start:end] for start, end in groups[first:last + 1])
                if cpr_birth_date(digits) is not None:
                    yield groups[first][0], groups[last][1]


def cprs_in(text: str) -> list[str]:
    """The ten digits of every CPR number in `text`, in any spelling, JSON escapes
    decoded first (for raw records, rows as JSON and log lines)."""
    folded, _ = fold(_decoded(text) if "\\" in text else text)
    return [re.sub(r"[^0-9]", "", folded[start:end]) for start, end in _spans(folded)]


def contains_cpr(text: str) -> bool:
    """True when `text` holds a CPR number in any spelling."""
    folded, _ = fold(text)
    return next(_spans(folded), None) is not None


def _decoded(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        escape = match.group(1)
        return chr(int(escape[1:], 16)) if escape[0] == "u" else _SIMPLE_ESCAPES[escape]
    decoded = _JSON_ESCAPE.sub(one, text)
    # A surrogate pair written as two escapes is one character.
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def scrub(text: str) -> str:
    """`text` with JSON escapes decoded and every CPR number, in any spelling, removed."""
    decoded = _decoded(text) if "\\" in text else text
    folded, origin = fold(decoded)
    spans = list(_spans(folded))
    if not spans:
        return decoded
    out: list[str] = []
    cursor = 0
    for start, end in spans:
        out.append(decoded[cursor:origin[start]])
        out.append(REMOVED)
        cursor = origin[end - 1] + 1
    out.append(decoded[cursor:])
    return "".join(out)


def strings_with_cpr(data: object, skip: frozenset[str] = frozenset(), path: str = "") -> Iterator[str]:
    """The dotted path of every key, string or number in parsed JSON that holds a CPR
    number (a key's path ends in the key itself, redacted). Paths in `skip` are not
    looked at."""
    if path in skip:
        return
    if isinstance(data, str):
        if contains_cpr(data):
            yield path
    elif isinstance(data, int | float) and not isinstance(data, bool):
        if contains_cpr(str(data)):
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
    """Whether a key or value of the JSON document `raw` may hold a CPR number. False is
    certain, so `strings_with_cpr` can be skipped; True means: walk and look.

    Without a backslash and in ASCII, a JSON string's decoded text is its raw text, and a
    number's text is its raw text: every CPR number inside is ten digits joined by
    non-alphanumeric characters in the raw text. One search over the whole record is much
    cheaper than one per string. Escapes and any non-ASCII text take the slow path."""
    if b"\\" in raw or not raw.isascii():
        return True
    return _TEN_DIGITS.search(raw) is not None


def strings_with_cpr_in(raw: bytes, data: object, skip: frozenset[str] = frozenset()) -> list[str]:
    """`strings_with_cpr(data, skip)` of the document `data` parsed from `raw`, skipping
    the walk when `raw` cannot hold one (`may_hold_cpr`)."""
    return list(strings_with_cpr(data, skip)) if may_hold_cpr(raw) else []
