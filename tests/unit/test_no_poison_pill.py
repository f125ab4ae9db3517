"""No record stops the line: every limit has its reason code, checked before any model,
and an exception while admitting one record dead-letters that record alone."""

from __future__ import annotations

import json

import pytest

from services.frontdoor.lines import Refused, check_line_guarded
from shared.domain import bounded_json
from shared.domain.admission import Reason, SubjectResolver, admit_guarded
from shared.domain.bounded_json import Breach, LimitReason, parse
from shared.domain.dead_letters import DeadLetter
from shared.domain.events import Transition
from shared.domain.sealing import seal
from tests.unit.test_admission import KEY, REGISTRY, SEALING, clear, record, signed_by

FIVE_THOUSAND_DIGITS = b'{"event_id": "e-1", "n": ' + b"7" * 5000 + b"}"
DEEP = b'{"event_id": "e-1", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
POISON = [
    (FIVE_THOUSAND_DIGITS, LimitReason.NUMBER_TOO_LONG),
    (DEEP, LimitReason.NESTING_TOO_DEEP),
    (b'{"s": "' + b"a" * (bounded_json.STRING_BYTES_MAX + 1) + b'"}', LimitReason.STRING_TOO_LONG),
    (b"[" + b"1," * bounded_json.ITEMS_MAX + b"1]", LimitReason.TOO_MANY_ITEMS),
    (b" " * (bounded_json.RECORD_BYTES_MAX + 1), LimitReason.RECORD_TOO_LARGE),
    (b'{"a": NaN}', LimitReason.MALFORMED_JSON),
    (b'{"a": "\\ud800"}', LimitReason.MALFORMED_JSON),  # a lone surrogate no encoder takes
    (json.dumps({"a": 1}).encode("utf-16"), LimitReason.MALFORMED_JSON),
]


@pytest.mark.parametrize(("raw", "reason"), POISON)
def test_each_limit_refuses_with_its_own_reason_before_parsing(raw: bytes, reason: LimitReason) -> None:
    found = parse(raw)
    assert isinstance(found, Breach)
    assert found.reason == reason
    assert "7777" not in found.message
    assert "aaaa" not in found.message


def test_within_the_limits_a_record_parses_as_json_would() -> None:
    document = {"a": [1, -2.5e3, {"b": "x,[{y\\\"", "c": None}], "d": "æ😀", "e": True}
    assert parse(json.dumps(document).encode()) == document
    nested = {"l": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]}  # depth 15 of 16
    assert parse(json.dumps(nested).encode()) == nested


def _admit(raw: bytes) -> Transition | DeadLetter:
    return admit_guarded(raw, REGISTRY, SubjectResolver(KEY, "k1", SEALING),
                         lambda: signed_by(raw, "institution:alsskolen"))


@pytest.mark.parametrize(("raw", "reason"), POISON)
def test_ingest_dead_letters_a_poison_record_with_the_limits_reason(raw: bytes, reason: LimitReason) -> None:
    result = _admit(raw)
    assert isinstance(result, DeadLetter)
    assert result.reason == Reason(reason.value)


def test_a_sealed_cpr_in_full_width_digits_is_an_invalid_cpr_not_a_crash() -> None:
    full_width = "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in "150904-4321")
    raw = json.dumps({**json.loads(clear()), "subject": {"cpr_sealed": seal(full_width, SEALING.public_key())}}).encode()
    result = _admit(raw)
    assert isinstance(result, DeadLetter)
    assert result.reason == Reason.INVALID_CPR


def test_an_exception_while_admitting_one_record_dead_letters_it_with_the_class_only() -> None:
    def broken() -> object:
        raise ValueError("the record said 150904-4321")

    result = admit_guarded(record(), REGISTRY, SubjectResolver(KEY, "k1", SEALING), broken)  # type: ignore[arg-type]
    assert isinstance(result, DeadLetter)
    assert (result.reason, result.message) == (Reason.ADMISSION_ERROR, "admitting this record failed: ValueError")
    assert isinstance(_admit(record()), Transition)  # and the next record is admitted as ever


@pytest.mark.parametrize(("raw", "reason"), POISON)
def test_the_front_door_refuses_a_poison_line_with_the_limits_reason(raw: bytes, reason: LimitReason) -> None:
    result = check_line_guarded(raw, "alsskolen", REGISTRY)
    assert isinstance(result, Refused)
    assert result.reason == reason.value


def test_the_front_door_answers_a_line_it_cannot_check_as_admission_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import services.frontdoor.lines as lines

    def explode(*_: object) -> object:
        raise RecursionError("deep")

    monkeypatch.setattr(lines, "check_line", explode)
    result = check_line_guarded(clear(), "alsskolen", REGISTRY)
    assert isinstance(result, Refused)
    assert (result.reason, result.message) == ("admission_error", "checking this line failed: RecursionError")


def test_an_access_log_line_names_the_path_without_its_query_string() -> None:
    import io
    import logging

    from shared.platform.logging import configure_logging

    out = io.StringIO()
    configure_logging("INFO", stream=out)
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/v1/events?token=s3cret&cpr=1707024000",
                "1.1", 200)
    line = out.getvalue()
    assert "/v1/events" in line
    assert "s3cret" not in line
    assert "1707024000" not in line
