"""Counting CPR numbers in what is already stored: records on topics, rows, log lines,
exports. Pure: text in, a count out (never the numbers).

The search is `cpr_text.cprs_in` (every spelling), applied to each value on its own: a
JSON document is walked key by key and value by value (a string that holds JSON is
walked too), a CSV file cell by cell, an HTML page text node by text node (its scripts
and styles left out: code, not data), anything else line by line. Searching a whole
JSON text at once would join the digits of neighbouring
values (`"partition": 2, "offset": 0, ...`) into false hits. Machine-made tokens are left
out: a lowercase hex run of 16 or more (pseudonyms, payment ids, hashes, key ids), a
sealed number (`v2.` and base64url) and a timestamp (`2026-12-05T06:45:12.123456+00:00`),
whose digits can make ten in a row with a valid date. (Ingest's own check leaves nothing
out: there a CPR number written as a timestamp's fraction is refused.)
"""

from __future__ import annotations

import csv
import html
import io
import json
import re

from shared.domain.cpr_text import cprs_in

_STORED_TOKEN = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9a-f]{16,}|v2\.[A-Za-z0-9_-]{40,})(?![0-9A-Za-z])"
    # A timestamp as databases and loggers write it: its seconds, fraction and offset
    # group into ten digits that often read as a date.
    r"|(?<![0-9])(?:19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?(?![0-9])")
_TAG = re.compile(r"<[^>]*>")
# Code in a page (a chart library, its styles) is not data.
_CODE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_NESTED_DEPTH_MAX = 32


def in_value(text: str) -> int:
    """CPR numbers in one stored value (a string, a cell, a text node)."""
    return len(cprs_in(_STORED_TOKEN.sub(" ", text)))


def in_json(data: object, depth: int = 0) -> int:
    """CPR numbers in a parsed JSON document: every key, string and number on its own."""
    if depth > _NESTED_DEPTH_MAX:
        return 0
    if isinstance(data, str):
        if data[:1] in ("{", "["):
            try:
                return in_json(json.loads(data), depth + 1)
            except ValueError:
                pass
        return in_value(data)
    if isinstance(data, bool) or data is None:
        return 0
    if isinstance(data, int | float):
        return in_value(str(data))
    if isinstance(data, dict):
        return sum(in_value(str(key)) + in_json(value, depth + 1) for key, value in data.items())
    if isinstance(data, list):
        return sum(in_json(value, depth + 1) for value in data)
    return 0


def in_record(text: str) -> int:
    """A record or a row: walked as JSON when it is JSON, else searched as one value."""
    try:
        return in_json(json.loads(text))
    except (ValueError, RecursionError):
        return in_value(text)


def in_lines(text: str) -> int:
    """A log or JSON Lines file: each line a record."""
    return sum(in_record(line) for line in text.splitlines() if line.strip())


def in_csv(text: str) -> int:
    return sum(in_value(cell) for row in csv.reader(io.StringIO(text)) for cell in row)


def in_html(text: str) -> int:
    """A page's text, node by node (its scripts and styles left out: code, not data)."""
    return sum(in_value(html.unescape(piece)) for piece in _TAG.split(_CODE.sub(" ", text)))


def in_file_text(name: str, text: str) -> int:
    """CPR numbers in a file's text, by its kind (from its name)."""
    lowered = name.lower()
    if lowered.endswith(".csv"):
        return in_csv(text)
    if lowered.endswith((".html", ".htm", ".xml")):
        return in_html(text)
    if lowered.endswith(".json"):
        return in_record(text)
    return in_lines(text)
