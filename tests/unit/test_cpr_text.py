"""CPR numbers are found in every common spelling, and removed from dead letters whole."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.cpr_text import contains_cpr, may_hold_cpr, scrub, strings_with_cpr, strings_with_cpr_in
from shared.domain.dead_letters import ORIGINAL_CHARS_MAX, DeadLetter

SPELLINGS = ("170702-4000", "1707024000", "170702 4000", "17.07.02-4000", "17.07.02.4000",
             "17 07 02 4000", "170702/4000", "170702_4000", "ev-17.07.02-4000", "cpr:1707024000.")


def digits_only(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


@pytest.mark.parametrize("text", SPELLINGS)
def test_every_common_spelling_is_found_and_scrubbed(text: str) -> None:
    assert contains_cpr(text)
    assert "1707024000" not in digits_only(scrub(text))


@pytest.mark.parametrize("text", ["ev-0000000001", "order 9999999999", "12345", "2010-08-01",
                                  "k1:" + "ab" * 32, "17070240001", "phone +45 12 34 56 78"])
def test_numbers_that_cannot_be_a_cpr_number_are_not_refused(text: str) -> None:
    assert not contains_cpr(text)


def test_json_escaped_digits_are_decoded_before_redaction() -> None:
    escaped = json.dumps({"stage": "1707024000"}).replace("1", "\\u0031").replace("7", "\\u0037")
    assert "1707024000" not in escaped
    assert "1707024000" not in digits_only(scrub(escaped))
    assert "[cpr removed]" in scrub(escaped)


def test_every_key_and_value_is_looked_at_except_the_skipped_paths() -> None:
    data = {"event_id": "e-1", "subject": {"pseudonym": "k1:" + "1707024000" + "a" * 54},
            "body": {"stage": "x", "grades": {"170702-4000": 7}, "list": ["a", "17.07.02 4000"]}}
    found = list(strings_with_cpr(data, frozenset({"subject.pseudonym"})))
    assert found == ["body.grades.[cpr removed]", "body.list.1"]


def test_a_dead_letter_keeps_no_cpr_in_any_spelling_even_at_the_cut() -> None:
    text = "x" * (ORIGINAL_CHARS_MAX - 5) + "1707024000"
    letter = DeadLetter.of("r", "body.grades.170702 4000", "bad 17.07.02-4000",
                           text.encode(), "ev-1707024000")
    for part in (letter.original, letter.field, letter.message, letter.record_id or ""):
        assert "1707024000" not in digits_only(part)
        assert "17070" not in part


def test_a_record_id_keeps_a_hex_run_of_digits_that_cannot_be_a_cpr_number() -> None:
    letter = DeadLetter.of("already_settled", "payment_id", "m", b"{}", "bank2-e6283649870ad082373")
    assert letter.record_id == "bank2-e6283649870ad082373"


# Text made mostly of digits and separators, so that CPR-like runs are common.
_CPRISH = st.text(alphabet="0123456789-. /_\u00a0ab\\\"æ", max_size=24)
_JSON = st.recursive(st.none() | st.integers() | _CPRISH,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_CPRISH, inner, max_size=4),
                     max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(document=_JSON, ascii_only=st.booleans())
def test_the_fast_check_never_misses_a_string_the_walk_would_refuse(document: object, ascii_only: bool) -> None:
    # Whatever the spelling (escaped or not), `may_hold_cpr` says False only when the
    # walk over every string finds nothing.
    raw = json.dumps(document, ensure_ascii=ascii_only).encode()
    data = json.loads(raw)
    assert strings_with_cpr_in(raw, data) == list(strings_with_cpr(data))
    if not may_hold_cpr(raw):
        assert list(strings_with_cpr(data)) == []


@pytest.mark.parametrize("raw", [b'{"stage":"170702-4000"}', b'{"170702 4000":1}',
                                 b'{"stage":"17\\u00307024000"}', b'{"stage":"170702\\/4000"}',
                                 '{"stage":"1707024000"}'.encode("utf-16")])
def test_the_fast_check_sends_every_spelling_and_escape_to_the_walk(raw: bytes) -> None:
    assert may_hold_cpr(raw)


def test_the_fast_check_lets_an_ordinary_record_through() -> None:
    assert not may_hold_cpr(b'{"event_id":"e-1","occurred_on":"2010-08-01","body":{"stage":"0. klasse"}}')
