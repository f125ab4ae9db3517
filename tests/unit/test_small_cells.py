"""Small cells wherever statistics about subjects are shown: a figure about 4 subjects
is suppressed and marked, the same figure about 5 is shown (the default minimum); the
one setting moves the line; financial records are not touched (docs/privacy.md)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.demo import DemoResult, print_summary
from cli.indicators import minimum_cell_setting
from cli.main import app
from cli.reporting.business_case import load_assumptions
from cli.reporting.data import Institution, MoneyRow, OutcomeRow, ReportData
from cli.reporting.disclosure import cell, group
from cli.reporting.exports import ExportFormat, indicator_rows, write_indicator_rows
from cli.reporting.html import render
from shared.domain.contracts.loader import load_contract
from shared.domain.indicators.compute import Suppression
from shared.domain.indicators.loader import load_indicators
from shared.platform.settings import REPO_ROOT
from tests.unit.test_indicators import Person, timelines

MOBILITY = load_contract(REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml")
ASSUMPTIONS = load_assumptions(REPO_ROOT / "examples" / "business-case.yaml")
PRICE_MINOR = 4_000_000
SCHOOL = "sonderborg-skole"


def report_data(children: int) -> ReportData:
    """`children` subjects, each with one verified youth education paid to one school."""
    subjects = [f"k1:{n:064x}" for n in range(children)]
    on = dt.date(2024, 6, 20)
    outcomes = tuple(OutcomeRow("mobility-bonus", "youth-education-completed", "verified", None, on, PRICE_MINOR, s)
                     for s in subjects)
    money = tuple(MoneyRow("mobility-bonus", "youth-education-completed", SCHOOL, "payment", PRICE_MINOR, on, s)
                  for s in subjects)
    return ReportData("test", (MOBILITY,), outcomes, money,
                      {SCHOOL: Institution(SCHOOL, "Sønderborg Skole", "primary_school")}, source="a test")


def test_a_figure_about_four_subjects_is_suppressed_and_five_are_shown() -> None:
    assert cell(4, 5) == Suppression.TOO_FEW_SUBJECTS
    assert cell(5, 5) is None
    assert cell(0, 5) is None  # about no one
    assert cell(4, 4) is None
    with pytest.raises(ValueError, match="minimum_cell"):
        cell(3, 0)


def test_one_suppressed_cell_of_a_group_with_a_shown_total_takes_the_next_smallest_with_it() -> None:
    assert group({"a": 40, "b": 3, "c": 9}, 5, total_shown=True) == {
        "b": Suppression.TOO_FEW_SUBJECTS, "c": Suppression.COMPLEMENTARY}
    assert group({"a": 40, "b": 3, "c": 9}, 5, total_shown=False) == {"b": Suppression.TOO_FEW_SUBJECTS}
    two = group({"a": 40, "b": 3, "c": 2}, 5, total_shown=True)
    assert two == {"b": Suppression.TOO_FEW_SUBJECTS, "c": Suppression.TOO_FEW_SUBJECTS}
    assert group({"a": 40, "b": 0}, 5, total_shown=True) == {}


def test_a_report_row_about_four_children_is_suppressed_and_marked() -> None:
    page = render([report_data(4)], ASSUMPTIONS, title="t")
    amount = "160,000.00 DKK"  # 4 x 40,000 DKK
    assert amount not in page
    assert "<td>Social mobility bonus, youth education completed</td>" \
           "<td>suppressed (too_few_subjects)</td>" in page
    assert "rg Skole" not in page  # nor the school's bar in the chart (the name may be JSON-escaped there)


def test_the_same_report_row_about_five_children_is_shown() -> None:
    page = render([report_data(5)], ASSUMPTIONS, title="t")
    assert "<td>Social mobility bonus, youth education completed</td><td>5</td>" in page
    assert "200,000.00 DKK" in page
    assert "suppressed (" not in page
    assert "rg Skole" in page  # its bar in the chart


def test_the_minimum_is_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert minimum_cell_setting() == 5
    monkeypatch.setenv("MINIMUM_CELL", "3")
    assert minimum_cell_setting() == 3
    page = render([report_data(4)], ASSUMPTIONS, title="t", minimum_cell=minimum_cell_setting())
    assert "160,000.00 DKK" in page
    monkeypatch.setenv("MINIMUM_CELL", "0")
    with pytest.raises(typer.Exit):
        minimum_cell_setting()


def test_the_demo_summary_suppresses_like_the_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    print_summary(DemoResult(report_data(4), 0, 0, 0, tmp_path / "r.html"), 5)
    small = capsys.readouterr().out
    assert "suppressed (too_few_subjects)" in small
    assert "160,000.00" not in small
    assert "Sønderborg Skole" not in small
    print_summary(DemoResult(report_data(5), 0, 0, 0, tmp_path / "r.html"), 5)
    shown = capsys.readouterr().out
    assert "200,000.00 DKK" in shown
    assert "Sønderborg Skole" in shown


INDICATORS = load_indicators(REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml")


def exam_takers(passed: int, failed: int) -> list[Person]:
    return ([Person(n, "2003-05-05").exam("2019-06-20", 7.0, 7.0) for n in range(passed)]
            + [Person(100 + n, "2003-05-05").exam("2019-06-20", 0.0, 0.0) for n in range(failed)])


@pytest.mark.parametrize("output_format", [ExportFormat.CSV, ExportFormat.JSONL])
def test_the_indicator_export_suppresses_a_row_of_four_and_marks_it(tmp_path: Path,
                                                                     output_format: ExportFormat) -> None:
    out = tmp_path / f"indicators.{output_format.value}"
    rows = indicator_rows(INDICATORS, timelines(*exam_takers(4, 0)), [2019], minimum_cell=5)
    write_indicator_rows(rows, output_format, out)
    written = (list(csv.DictReader(out.open())) if output_format == ExportFormat.CSV
               else [json.loads(line) for line in out.read_text().splitlines()])
    (exam,) = [r for r in written if r["indicator_id"] == "exam-danish-maths" and r["scope"] == "municipality"]
    assert exam["suppressed"] == "too_few_subjects"
    assert exam["numerator"] in ("", None)
    assert exam["denominator"] in ("", None)
    assert exam["percent"] in ("", None)
    assert exam["baseline_percent"] in ("91.4", 91.4)


def test_the_indicator_export_shows_a_row_of_five(tmp_path: Path) -> None:
    out = tmp_path / "indicators.csv"
    write_indicator_rows(indicator_rows(INDICATORS, timelines(*exam_takers(5, 0)), [2019], 5), ExportFormat.CSV, out)
    (exam,) = [r for r in csv.DictReader(out.open())
               if r["indicator_id"] == "exam-danish-maths" and r["scope"] == "municipality"]
    assert (exam["numerator"], exam["denominator"], exam["percent"], exam["suppressed"]) == ("5", "5", "100.00", "")
    # Four who failed next to many who passed: the four are a small cell even in a large row.
    write_indicator_rows(indicator_rows(INDICATORS, timelines(*exam_takers(40, 4)), [2019], 5), ExportFormat.CSV,
                         out)
    (exam,) = [r for r in csv.DictReader(out.open())
               if r["indicator_id"] == "exam-danish-maths" and r["scope"] == "municipality"]
    assert exam["suppressed"] == "too_few_outside_numerator"
    assert exam["numerator"] == ""


def test_the_indicator_export_is_refused_as_parquet_or_without_a_year(tmp_path: Path) -> None:
    runner = CliRunner()
    for arguments, message in ((["--format", "parquet", "--year", "2019"], "csv or jsonl"), ([], "--year")):
        result = runner.invoke(app, ["export", "indicators", "--out", str(tmp_path / "x"), *arguments])
        assert result.exit_code == 2
        assert result.stderr.startswith("error: ")
        assert message in result.stderr


def test_an_indicator_outcome_is_about_a_population_not_a_handful_of_people() -> None:
    from cli.reporting.data import headcount
    from shared.domain.contracts.indicator_outcomes import population_id

    population = population_id("housing-area-exam-indicator", "exam-improvement")
    assert headcount({population}) >= 1_000  # its cells were protected by the contract's own minimum
    assert headcount({"k1:a", "k1:b"}) == 2
    on = dt.date(2023, 3, 31)
    data = ReportData("test", (MOBILITY,), (OutcomeRow("mobility-bonus", "youth-education-completed", "verified",
                                                       None, on, 250_000, population),),
                      (MoneyRow("mobility-bonus", "youth-education-completed", SCHOOL, "payment", 250_000, on,
                                population),), {}, source="a test")
    assert "2,500.00 DKK" in render([data], ASSUMPTIONS, title="t")
