"""CPR numbers are found in every common spelling, and removed from dead letters whole."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.cpr_text import (
    REMOVED,
    contains_cpr,
    cpr_birth_date,
    cprs_in,
    may_hold_cpr,
    scrub,
    strings_with_cpr,
    strings_with_cpr_in,
)
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


# ---- every spelling (issue 25): what passed before, refused now ------------------------------

FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in "170702") + "-" + "".join(chr(0xFF10 + int(d)) for d in "4000")
ARABIC_INDIC = "".join(chr(0x660 + int(d)) for d in "1707024000")
ONCE_ACCEPTED = (FULL_WIDTH, ARABIC_INDIC, "170702\u20134000", "170702\u22124000", "170702--4000", "170702 - 4000",
                 "170702\u200b4000", "1707\u200b02-4000", "170702\u00ad4000", "170 702 4000", "170702:4000",
                 "170702+4000", "170702,4000", "ev:170702:4000", "17\u00a007\u00a002\u00a04000",
                 "\U0001d7cf\U0001d7d5\U0001d7ce\U0001d7d5\U0001d7ce\U0001d7d0\U0001d7d2\U0001d7ce\U0001d7ce\U0001d7ce")


@pytest.mark.parametrize("text", ONCE_ACCEPTED)
def test_the_spellings_that_once_passed_are_found_and_scrubbed(text: str) -> None:
    assert contains_cpr(text)
    assert cprs_in(text) == ["1707024000"]
    assert not contains_cpr(scrub(text))
    assert REMOVED in scrub(text)


def test_an_integer_field_is_looked_at_too() -> None:
    assert list(strings_with_cpr({"body": {"hours_per_week": 1707024000, "n": 1733390000, "ok": True}})) \
        == ["body.hours_per_week"]


def test_a_ten_digit_number_that_is_no_date_is_neither_refused_nor_redacted() -> None:
    unix_time = "ev-1733390000"  # the 17th of the 33rd month
    assert not contains_cpr(unix_time)
    assert scrub(unix_time) == unix_time
    assert DeadLetter.of("r", "event_id", "m", b"{}", unix_time).record_id == unix_time


_DIGIT_ZEROS = (0x30, 0xFF10, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0x1D7CE)
_SEPARATORS = ("", "-", "\u2013", "\u2014", "\u2212", "--", " - ", " ", "\u00a0", "\u2009", "\u3000", ".", "/", "_",
               ":", "+", ",", "\t", "\u200b", "\u00ad", "\ufeff", "\u2060")


@st.composite
def spelled_cprs(draw: st.DrawFn) -> tuple[str, str]:
    """(the ten digits, a spelling of them: any script's digits, any grouping, any separators)."""
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2036, 12, 31)))
    seventh = 0 if born.year < 2000 else 4
    digits = born.strftime("%d%m%y") + str(seventh) + draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    cuts = sorted(draw(st.sets(st.integers(1, 9), max_size=4)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, 10], strict=True)]
    spelled_groups = ["".join(chr(draw(st.sampled_from(_DIGIT_ZEROS)) + int(d)) for d in group) for group in groups]
    text = spelled_groups[0]
    for group in spelled_groups[1:]:
        text += draw(st.sampled_from(_SEPARATORS)) + group
    prefix = draw(st.text(alphabet="abcæø: ", max_size=6))
    suffix = draw(st.text(alphabet="xyzå. ", max_size=6))
    return digits, prefix + text + suffix


@settings(max_examples=300, deadline=None)
@given(spelled=spelled_cprs(), where=st.sampled_from(["stage", "reason", "grade key", "event_id", "nested"]))
def test_any_spelling_in_any_field_is_found_refused_and_scrubbed(spelled: tuple[str, str], where: str) -> None:
    digits, text = spelled
    assert cprs_in(text) == [digits]
    assert not cprs_in(scrub(text))
    document: dict[str, object] = {"event_id": "e-1", "body": {"type": "enrolled", "stage": "x"}}
    path = {"stage": "body.stage", "reason": "body.reason", "event_id": "event_id",
            "grade key": f"body.grades.{scrub(text)}", "nested": "body.extra.0.note"}[where]
    if where == "grade key":
        document["body"] = {"grades": {text: 7}}
    elif where == "event_id":
        document["event_id"] = text
    elif where == "nested":
        document["body"] = {"extra": [{"note": text}]}
    else:
        document["body"] = {where: text}
    raw = json.dumps(document, ensure_ascii=False).encode()
    assert strings_with_cpr_in(raw, json.loads(raw)) == [path]
    escaped = json.dumps(document).encode()  # every non-ASCII character as a JSON escape
    assert strings_with_cpr_in(escaped, json.loads(escaped)) == [path]
    assert digits not in "".join(c for c in scrub(escaped.decode()) if c.isascii() and c.isdigit())


@settings(max_examples=200, deadline=None)
@given(number=st.integers(min_value=10**9, max_value=10**10 - 1))
def test_a_ten_digit_integer_is_a_cpr_number_exactly_when_its_first_six_digits_are_a_date(number: int) -> None:
    text = str(number)
    assert contains_cpr(text) == (cpr_birth_date(text) is not None)


def test_a_stored_record_is_searched_value_by_value_around_its_hex_digests_and_sealed_numbers() -> None:
    from shared.domain import stored_cprs

    pseudonym = "k1:" + "1707024000" + "a" * 54
    sealed = "v2." + "1707024000-" + "A" * 40
    log_line = json.dumps({"partition": 2, "offset": 0, "offsets": {"0": "0-13", "1": "0-10", "2": "0-10"}})
    assert stored_cprs.in_record(json.dumps({"subject": pseudonym, "token": sealed, "key": "ed25519:1707024000abcdef"})) == 0
    assert stored_cprs.in_lines(log_line) == 0
    assert stored_cprs.in_record(json.dumps({"applied_at": "2026-12-05T06:45:12.123456+00:00"})) == 0
    assert stored_cprs.in_lines("[2026-12-05 06:44:47,096] INFO started\n") == 0
    assert stored_cprs.in_record(json.dumps({"subject": pseudonym, "stage": "child 170702\u20134000"})) == 1
    row = json.dumps({"transition": json.dumps({"body": {"stage": "\uff11\uff17\uff10\uff17\uff10\uff12 4000"}})})
    assert stored_cprs.in_record(row) == 1
    assert stored_cprs.in_file_text("x.csv", "a,b\n2024-01-15,170702-4000\n") == 1
    assert stored_cprs.in_file_text("r.html", "<td>17</td><td>07024000</td><p>17.07.02-4000</p>") == 1


def test_a_pages_scripts_are_code_not_data() -> None:
    from shared.domain import stored_cprs

    page = '<script>var limits = [1e6, 17.0702, 4000];</script><style>x{}</style><td>ev 170702-4000</td>'
    assert stored_cprs.in_html(page) == 1
