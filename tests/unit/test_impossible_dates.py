"""Facts that cannot be: dated before 1900, after today plus a bound, before the
subject's birth, or about a subject born in the future, are dead-lettered with reasons."""

from __future__ import annotations

import datetime as dt

import pytest

from services.frontdoor.lines import Admitted, Refused, check_line
from shared.domain.admission import OCCURRED_DAYS_AHEAD_MAX, Reason, SubjectResolver, admit
from shared.domain.dead_letters import DeadLetter
from shared.domain.events import Transition
from tests.unit.test_admission import KEY, REGISTRY, SEALING, _claimed, record, signed_by
from tests.unit.test_frontdoor_lines import line

TODAY = dt.date(2026, 12, 5)
AHEAD = (TODAY + dt.timedelta(days=OCCURRED_DAYS_AHEAD_MAX)).isoformat()
TOO_FAR = (TODAY + dt.timedelta(days=OCCURRED_DAYS_AHEAD_MAX + 1)).isoformat()
BORN_2030 = "010130-4000"  # seventh digit 4, year 30: born 2030


def admitted(raw: bytes, today: dt.date | None = TODAY) -> Transition | DeadLetter:
    return admit(raw, REGISTRY, SubjectResolver(KEY, "k1", SEALING), signed_by(raw, _claimed(raw)), today=today)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"occurred_on": "9999-12-31"}, Reason.OCCURRED_IN_FUTURE),
    ({"occurred_on": TOO_FAR}, Reason.OCCURRED_IN_FUTURE),
    ({"occurred_on": "1899-12-31"}, Reason.OCCURRED_BEFORE_1900),
    ({"occurred_on": "2004-09-14"}, Reason.OCCURRED_BEFORE_BIRTH),  # the CPR's birth date is 2004-09-15
    ({"subject": {"cpr": BORN_2030}, "occurred_on": "2026-01-01"}, Reason.BORN_IN_FUTURE),
])
def test_a_fact_that_cannot_be_is_dead_lettered_with_its_reason(changes: dict[str, object], reason: Reason) -> None:
    result = admitted(record(**changes))
    assert isinstance(result, DeadLetter)
    assert result.reason == reason
    front_door = check_line(line(**changes), "alsskolen", REGISTRY, TODAY)
    assert isinstance(front_door, Refused)
    assert front_door.reason == reason.value


def test_a_register_naming_a_subject_born_in_the_future_is_refused() -> None:
    raw = record(reported_by="income-register", occurred_on="2026-01-01",
                 subject={"pseudonym": "k1:" + "a" * 64, "birth_date": "2027-01-01"},
                 body={"type": "employment_started", "employer": "alsvaerket"})
    result = admitted(raw)
    assert isinstance(result, DeadLetter)
    assert result.reason == Reason.BORN_IN_FUTURE


def test_the_edges_are_facts_and_a_replay_without_a_clock_checks_only_what_needs_none() -> None:
    assert isinstance(admitted(record(occurred_on=AHEAD)), Transition)
    assert isinstance(admitted(record(occurred_on="2004-09-15")), Transition)  # the day of birth
    assert isinstance(check_line(line(occurred_on=AHEAD), "alsskolen", REGISTRY, TODAY), Admitted)
    assert isinstance(admitted(record(occurred_on="9999-12-31"), today=None), Transition)
    unborn = admitted(record(occurred_on="1899-12-31"), today=None)
    assert isinstance(unborn, DeadLetter)
    assert unborn.reason == Reason.OCCURRED_BEFORE_1900
