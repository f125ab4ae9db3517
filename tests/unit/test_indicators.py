"""Indicators on hand-built populations: who is in the denominator, who in the
numerator, and which cells are suppressed."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.events import Transition
from shared.domain.indicators.compute import Suppression, measure, protect, suppression, tally
from shared.domain.indicators.feed import timelines_from_transitions
from shared.domain.indicators.loader import IndicatorFileError, load_indicators, parse_indicators
from shared.domain.indicators.model import Indicator, IndicatorSet
from shared.platform.settings import REPO_ROOT

SONDERBORG = load_indicators(REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml")
AREA_SCHOOL = "kommune-000-primary-school-0"


def indicator(indicator_id: str) -> Indicator:
    found = SONDERBORG.by_id(indicator_id)
    assert found is not None
    return found


class Person:
    """One hand-built subject: facts added a line at a time."""

    def __init__(self, n: int, birth: str) -> None:
        self.subject = "k1:" + hashlib.sha256(f"person-{n}".encode()).hexdigest()
        self.birth = birth
        self.events: list[Transition] = []

    def fact(self, on: str, by: str, kind: str, body: dict[str, Any]) -> Person:
        self.events.append(Transition.model_validate({
            "event_id": f"{self.subject[-8:]}-{len(self.events)}", "occurred_on": on, "reported_by": by,
            "reporter_kind": kind, "subject": self.subject, "birth_date": self.birth, "body": body}))
        return self

    def school(self, start: str, end: str | None = None, school: str = "school-a") -> Person:
        self.fact(start, school, "primary_school", {"type": "enrolled", "institution": school})
        return self.fact(end, school, "primary_school", {"type": "left", "institution": school}) if end else self

    def college(self, start: str, end: str | None = None) -> Person:
        self.fact(start, "college-a", "youth_education", {"type": "enrolled", "institution": "college-a"})
        return self.fact(end, "college-a", "youth_education",
                         {"type": "left", "institution": "college-a"}) if end else self

    def absence(self, school_year: int, days: int, school: str = "school-a") -> Person:
        return self.fact(f"{school_year + 1}-06-20", school, "primary_school", {
            "type": "absence", "institution": school, "period_start": f"{school_year}-08-01",
            "period_end": f"{school_year + 1}-06-20", "days_absent": days, "days_total": 200})

    def exam(self, on: str, danish: float, maths: float) -> Person:
        return self.fact(on, "exam-authority", "exam_authority",
                         {"type": "exam_result", "exam": "fp9", "grades": {"danish": danish, "maths": maths}})

    def completed(self, on: str, level: str = "youth") -> Person:
        return self.fact(on, "exam-authority", "exam_authority",
                         {"type": "education_completed", "programme": "stx", "level": level})

    def job(self, on: str, ended: str | None = None) -> Person:
        self.fact(on, "income-register", "income_register", {"type": "employment_started", "employer": "firm"})
        return self.fact(ended, "income-register", "income_register",
                         {"type": "employment_ended", "employer": "firm"}) if ended else self


def timelines(*people: Person) -> list[SubjectTimeline]:
    return timelines_from_transitions(e for p in people for e in p.events)


def test_unlawful_absence_counts_pupils_with_more_than_nine_days_in_the_school_year() -> None:
    people = [Person(n, "2005-03-01").absence(2019, days) for n, days in enumerate([10, 30, 9, 0, 3, 10])]
    people.append(Person(90, "2004-03-01").absence(2018, 25))  # the school year before: not counted
    people.append(Person(91, "2005-03-01").school("2011-08-01"))  # no absence report: not in the denominator
    assert tally(indicator("unlawful-absence"), timelines(*people), 2019) == (3, 6)


def test_exam_counts_pupils_with_at_least_two_in_both_danish_and_maths() -> None:
    people = [Person(1, "2003-05-05").exam("2019-06-20", 2.0, 2.0),
              Person(2, "2003-05-05").exam("2019-06-20", 12.0, 0.0),  # maths below 2
              Person(3, "2003-05-05").exam("2019-06-20", -3.0, 7.0),  # Danish below 2
              Person(4, "2003-05-05").exam("2019-06-20", 4.0, 10.0),
              Person(5, "2002-05-05").exam("2018-06-20", 12.0, 12.0)]  # the year before
    assert tally(indicator("exam-danish-maths"), timelines(*people), 2019) == (2, 4)


def test_education_beyond_primary_counts_completions_up_to_the_reference_day_among_18_to_29() -> None:
    people = [Person(1, "1995-01-01").completed("2014-06-23"),
              Person(2, "1995-01-01").completed("2020-06-23"),  # after 1 January 2020
              Person(3, "2001-06-01").completed("2019-12-01", level="vocational"),  # 18 on the day
              Person(4, "1990-01-02").completed("2009-06-23"),  # 29 (30 on 2 January)
              Person(5, "1989-06-01").completed("2008-06-23"),  # 30: outside the population
              Person(6, "2002-06-01").completed("2019-12-01"),  # 17: outside the population
              Person(7, "1998-04-04").school("2004-08-01", "2014-06-26")]  # primary only
    assert tally(indicator("education-beyond-primary"), timelines(*people), 2020) == (3, 5)


def test_neither_job_nor_education_is_a_status_on_the_reference_day() -> None:
    day_after = "2021-03-01"
    people = [Person(1, "2005-01-01").school("2011-08-01"),  # 16, at school: not NEET
              Person(2, "2003-01-01").college("2019-08-10"),  # at college: not NEET
              Person(3, "2000-01-01").job("2020-09-01"),  # in a job: not NEET
              Person(4, "2000-01-01").job("2020-09-01", ended="2021-01-31"),  # job ended: NEET
              Person(5, "1999-01-01").college("2015-08-10", "2016-03-01"),  # dropped out: NEET
              Person(6, "1998-01-01").job(day_after),  # job starts after the day: NEET
              Person(7, "1990-01-01"),  # 31: outside the population
              Person(8, "2000-01-01").job("2021-02-28", ended="2021-02-28")]  # ends on the day: in a job
    assert tally(indicator("neither-job-nor-education"), timelines(*people), 2021) == (3, 7)


def test_an_area_is_the_catchment_of_its_institutions() -> None:
    area = [Person(n, "2005-03-01").school("2011-08-01", school=AREA_SCHOOL).absence(2019, 12, AREA_SCHOOL)
            for n in range(5)] + [Person(9, "2005-03-01").school("2011-08-01", school=AREA_SCHOOL)
                                  .absence(2019, 1, AREA_SCHOOL)]
    outside = [Person(n, "2005-03-01").school("2011-08-01").absence(2019, 0) for n in range(10, 20)]
    everyone = timelines(*area, *outside)
    ids = ["kommune-000-daycare-0", AREA_SCHOOL]
    absence = indicator("unlawful-absence")
    area_row = measure(absence, everyone, 2019, scope="area", institutions=ids, minimum_cell=1)
    whole = measure(absence, everyone, 2019, scope="municipality", minimum_cell=1)
    assert (area_row.numerator, area_row.denominator, area_row.percent) == (5, 6, Decimal("83.33"))
    assert (whole.numerator, whole.denominator) == (5, 16)


@pytest.mark.parametrize(("numerator", "denominator", "expected"), [
    (0, 0, None), (2, 4, Suppression.TOO_FEW_SUBJECTS), (0, 4, Suppression.TOO_FEW_SUBJECTS),
    (4, 50, Suppression.TOO_FEW_IN_NUMERATOR), (47, 50, Suppression.TOO_FEW_OUTSIDE_NUMERATOR),
    (0, 50, None), (50, 50, None), (5, 10, None), (5, 5, None)])
def test_small_cells_are_suppressed(numerator: int, denominator: int, expected: Suppression | None) -> None:
    assert suppression(numerator, denominator, 5) == expected


def test_a_suppressed_cell_carries_no_number_and_is_marked() -> None:
    row = protect("unlawful-absence", "area", 2019, "2019/2020", 3, 40)
    assert (row.numerator, row.denominator, row.percent) == (None, None, None)
    assert row.shown() == "suppressed (too_few_in_numerator)"
    shown = protect("unlawful-absence", "area", 2019, "2019/2020", 6, 40).shown()
    assert shown == "15.00 % (6/40)"


def test_measure_suppresses_a_small_population_by_default() -> None:
    people = [Person(n, "2003-05-05").exam("2019-06-20", 7.0, 7.0) for n in range(4)]
    row = measure(indicator("exam-danish-maths"), timelines(*people), 2019)
    assert row.suppressed == Suppression.TOO_FEW_SUBJECTS
    assert row.percent is None
    with pytest.raises(ValueError, match="minimum_cell"):
        suppression(1, 1, 0)


def test_the_example_file_defines_the_four_indicators_with_both_baselines() -> None:
    assert [i.id for i in SONDERBORG.indicators] == [
        "unlawful-absence", "exam-danish-maths", "education-beyond-primary", "neither-job-nor-education"]
    assert all({b.scope for b in i.baselines} == {"area", "municipality"} for i in SONDERBORG.indicators)


def test_bad_indicator_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(IndicatorFileError, match=r"<t>: indicators.0.better"):
        parse_indicators("indicators: [{id: x, title: X, better: up, period: {kind: calendar_year},"
                         " numerator: {kind: everyone}}]", "<t>")
    with pytest.raises(IndicatorFileError, match="100 %"):
        parse_indicators("indicators: [{id: x, title: X, better: higher, period: {kind: calendar_year},"
                         " numerator: {kind: everyone}}]", "<t>")
    with pytest.raises(IndicatorFileError, match="not YAML"):
        parse_indicators("indicators: [", "<t>")
    result = CliRunner().invoke(app, ["indicators", "baselines", "--indicators", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_periods_cover_the_right_days() -> None:
    ind = indicator("unlawful-absence")
    assert ind.period.window(2019) == (dt.date(2019, 8, 1), dt.date(2020, 7, 31))
    assert ind.period.label(2019) == "2019/2020"
    assert indicator("neither-job-nor-education").period.reference_day(2021) == dt.date(2021, 2, 28)
    assert isinstance(SONDERBORG, IndicatorSet)


def test_the_tuned_synthetic_municipality_matches_the_baselines_within_the_stated_tolerance() -> None:
    from cli.synthetic.baselines import compare, synthetic_timelines

    rows = compare(SONDERBORG, synthetic_timelines(10_000), minimum_cell=5)
    assert len(rows) == 8
    shown = [r for r in rows if r.measured.suppressed is None]
    # At this size the area's handful of absent pupils is a small cell: suppressed, not compared.
    assert len(shown) >= 7
    assert all(r.within for r in shown), [(r.indicator.id, r.scope, r.measured.shown(), r.baseline) for r in shown]


def counted(indicator_id: str, n: int, inside: bool) -> Person:
    """One subject in the indicator's denominator, in its numerator when `inside`."""
    if indicator_id == "unlawful-absence":
        return Person(n, "2005-03-01").absence(2019, 12 if inside else 2)
    if indicator_id == "exam-danish-maths":
        return Person(n, "2003-05-05").exam("2019-06-20", 7.0, 7.0 if inside else 0.0)
    if indicator_id == "education-beyond-primary":
        person = Person(n, "1995-01-01")
        return person.completed("2014-06-23") if inside else person.school("2001-08-01", "2011-06-26")
    assert indicator_id == "neither-job-nor-education"
    person = Person(n, "2000-01-01").college("2016-08-10", "2017-03-01")  # dropped out
    return person if inside else person.job("2020-09-01")


YEARS = {"unlawful-absence": 2019, "exam-danish-maths": 2019, "education-beyond-primary": 2020,
         "neither-job-nor-education": 2021}


@pytest.mark.parametrize("indicator_id", list(YEARS))
def test_every_indicator_is_suppressed_over_four_subjects_and_shown_over_five(indicator_id: str) -> None:
    ind, year = indicator(indicator_id), YEARS[indicator_id]
    four = timelines(*(counted(indicator_id, n, inside=n < 2) for n in range(4)))
    assert tally(ind, four, year) == (2, 4)  # counted, and then not shown
    row = measure(ind, four, year)
    assert (row.suppressed, row.numerator, row.denominator, row.percent) == (
        Suppression.TOO_FEW_SUBJECTS, None, None, None)
    ten = timelines(*(counted(indicator_id, n, inside=n < 5) for n in range(10)))
    assert measure(ind, ten, year).shown() == "50.00 % (5/10)"
    # Five in the numerator and four outside it: the four are a small cell.
    nine = timelines(*(counted(indicator_id, n, inside=n < 5) for n in range(9)))
    assert measure(ind, nine, year).suppressed == Suppression.TOO_FEW_OUTSIDE_NUMERATOR
