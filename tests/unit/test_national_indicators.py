"""The indicators compared across tenants (cli/reporting/national_indicators.py): each
municipality's children where they live on the reference day, rows hidden so that no
tenant knowing its own row gets a small one back; and where a child lives
(shared/domain/homes.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from cli.reporting.national import COLUMNS as NATIONAL_COLUMNS
from cli.reporting.national import suppress
from cli.reporting.national_indicators import (
    ALL_TENANTS,
    WITHHELD,
    WITHHELD_ROW,
    compare,
    compare_latest,
    publish_rows,
)
from shared.domain.contracts.timeline import fold
from shared.domain.events import Transition
from shared.domain.homes import home_on
from shared.domain.indicators.compute import suppression
from shared.domain.indicators.model import Indicator
from tests.unit.builders import enrolled, transition
from tests.unit.disclosure_algebra import Equation, determined, determines

D = dt.date
MUNICIPALITY_OF = {"school-a": "a", "school-b": "b", "college-b": "b"}
# Aged 15-17 on 31 December, in education (registered at a primary school or a youth
# education) that day: the share of them who are.
IN_EDUCATION = Indicator.model_validate({
    "id": "in-education", "title": "In education", "better": "higher", "period": {"kind": "calendar_year"},
    "population": {"age_from": 15, "age_to": 17}, "numerator": {"kind": "status_on_day", "in_education": True}})


def pseudonym(n: int) -> str:
    return "k1:" + hashlib.sha256(f"child-{n}".encode()).hexdigest()


def residence(event_id: str, on: str, municipality: str) -> Transition:
    return transition(event_id, on, "cpr", "cpr_register", {"type": "residence", "municipality": municipality})


def test_a_child_lives_where_the_cpr_register_says_else_where_it_last_started() -> None:
    stays = [enrolled("e1", "2010-08-01", "school-a"), enrolled("e2", "2016-08-01", "school-b")]
    timeline = fold("s", D(2004, 9, 15), stays)
    assert home_on(timeline, D(2015, 1, 1), MUNICIPALITY_OF) == "a"
    assert home_on(timeline, D(2017, 1, 1), MUNICIPALITY_OF) == "b"
    assert home_on(timeline, D(2009, 1, 1), MUNICIPALITY_OF) is None  # nothing known yet
    moved = fold("s", D(2004, 9, 15), [*stays, residence("r1", "2016-03-01", "c")])
    assert home_on(moved, D(2017, 1, 1), MUNICIPALITY_OF) == "c"  # the register wins over the school
    assert home_on(moved, D(2016, 1, 1), MUNICIPALITY_OF) == "a"  # before the move: the school again


def test_each_tenant_counts_the_children_living_in_it_on_the_reference_day() -> None:
    def child(n: int, school: str, college: bool) -> list[Transition]:
        subject = pseudonym(n)
        events = [transition(f"e{n}-1", "2011-08-01", school, "primary_school",
                             {"type": "enrolled", "institution": school}, subject=subject, birth=D(2004, 3, 1)),
                  transition(f"e{n}-2", "2020-06-20", school, "primary_school",
                             {"type": "left", "institution": school}, subject=subject, birth=D(2004, 3, 1))]
        if college:
            events.append(transition(f"e{n}-3", "2020-08-10", "college-b", "youth_education",
                                     {"type": "enrolled", "institution": "college-b"}, subject=subject,
                                     birth=D(2004, 3, 1)))
        return events

    # 12 children at school in a and 12 in b; in 2020 (aged 16) 9 of a's and 3 of b's are at
    # college in b, so 9 of a's have moved to b by the school (no register facts here).
    children = [child(n, "school-a", n < 9) for n in range(12)] + [child(12 + n, "school-b", n < 3) for n in range(12)]
    timelines = [fold(pseudonym(n), D(2004, 3, 1), events) for n, events in enumerate(children)]
    [comparison] = compare([IN_EDUCATION], timelines, 2020, ["a", "b"],
                           lambda t, day: home_on(t, day, MUNICIPALITY_OF), minimum_cell=5)
    rows = {r.tenant: r for r in comparison.rows}
    assert rows["a"].counts == (0, 3)
    assert rows["b"].counts == (12, 21)
    # a's 3 children (none in education) are under 5; with only two tenants no complement
    # can hide it from b, which knows its own row: the total is withheld, and with it every
    # row (the store-wide measure, 12/24, less b's 12/21 would give a's back).
    assert rows["a"].shown == rows["b"].shown == WITHHELD_ROW
    assert rows[ALL_TENANTS].shown == WITHHELD
    # The report's table: each indicator for its latest year with a population of at
    # least the minimum (aged 15-17: born 2004, so 2019-2021; 2022 and on has nobody).
    [latest] = compare_latest([IN_EDUCATION], timelines, range(2015, 2026), ["a", "b"],
                              lambda t, day: home_on(t, day, MUNICIPALITY_OF), minimum_cell=5)
    assert latest.period == "2021"
    assert compare_latest([IN_EDUCATION], timelines, range(2022, 2026), ["a", "b"],
                          lambda t, day: home_on(t, day, MUNICIPALITY_OF), minimum_cell=5) == []


def _given_back(counts: dict[str, tuple[int, int]], minimum_cell: int) -> set[tuple[str, str, str]]:
    """Every small row's numerator, denominator or complement that some tenant, knowing
    its own row, computes exactly from the published comparison."""
    rows = {r.tenant: r.shown for r in publish_rows(IN_EDUCATION, 2020, counts, minimum_cell).rows}
    total = rows.pop(ALL_TENANTS)
    hidden = [t for t, shown in rows.items() if not shown.endswith(")") or shown.startswith("suppressed")]
    found = set()
    for reader in counts:
        unknown = [(part, t) for t in hidden if t != reader for part in ("numerator", "denominator")]
        equations: list[Equation] = []
        if total != WITHHELD and not total.startswith("suppressed"):
            equations += [{("numerator", t): 1 for t in counts}, {("denominator", t): 1 for t in counts}]
        for t in hidden:
            if t == reader or suppression(*counts[t], minimum_cell) is None:
                continue
            for part, combination in (("numerator", {("numerator", t): 1}), ("denominator", {("denominator", t): 1}),
                                      ("complement", {("denominator", t): 1, ("numerator", t): -1})):
                if determines(unknown, equations, combination):
                    found.add((reader, part, t))
    return found


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abcde"), st.tuples(st.integers(0, 12), st.integers(0, 12)).map(
    lambda pair: (min(pair), max(pair))), min_size=1), st.integers(1, 6))
def test_no_tenant_knowing_its_own_row_gets_a_small_indicator_row_back(counts: dict[str, tuple[int, int]],
                                                                       minimum_cell: int) -> None:
    assert _given_back(counts, minimum_cell) == set()
    rows = {r.tenant: r.shown for r in publish_rows(IN_EDUCATION, 2020, counts, minimum_cell).rows}
    for tenant, (numerator, denominator) in counts.items():
        if suppression(numerator, denominator, minimum_cell) is not None:
            assert rows[tenant].startswith("suppressed"), tenant


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("abcde"), st.fixed_dictionaries(
    {c: st.integers(0, 12) for c in NATIONAL_COLUMNS}), min_size=1), st.integers(1, 6))
def test_the_demos_national_table_gives_no_small_cell_back_either(counts: dict[str, dict[str, int]],
                                                                  minimum_cell: int) -> None:
    rows = {r.tenant: r.shown for r in suppress(counts, minimum_cell)}
    total = rows.pop("all tenants")
    for reader in counts:
        for column in NATIONAL_COLUMNS:
            unknown = [t for t in counts if t != reader and rows[t][column].startswith("suppressed")]
            equations: list[Equation] = [] if total[column].startswith("withheld") else [dict.fromkeys(counts, 1)]
            for tenant in determined(unknown, equations):
                assert not 0 < counts[tenant][column] < minimum_cell, (reader, column, tenant)


def test_the_national_commands_need_tenants_and_name_a_bad_file_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    env: dict[str, str | None] = {"TENANTS_FILE": None}  # unset
    result = runner.invoke(app, ["national", "indicators", "--year", "2021"], env=env)
    assert result.exit_code == 2
    assert result.output.strip() == "error: national figures compare tenants: set TENANTS_FILE (docs/tenancy.md)"
    bad = tmp_path / "model.yaml"
    bad.write_text("discount_rate: lots\n", encoding="utf-8")
    result = runner.invoke(app, ["national", "exclusion", "--exclusion-model", str(bad)], env=env)
    assert result.exit_code == 2
    assert result.output.startswith("error: ")
    assert len(result.output.strip().splitlines()) == 1


def _possible(x_range: range, others: list[range], total: int) -> set[int]:
    """The values a hidden cell can take, given the others' ranges and their known sum."""
    sums = {0}
    for allowed in others:
        sums = {s + v for s in sums for v in allowed if s + v <= total}
    return {v for v in x_range if total - v in sums}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 14), min_size=1), st.integers(2, 6))
def test_no_reader_pins_a_small_count_from_the_marks_and_the_total(counts: dict[str, int], minimum_cell: int) -> None:
    rows = {r.tenant: r.shown["children"] for r in suppress(
        {t: {"children": n, "verified": 0, "cross_border": 0} for t, n in counts.items()}, minimum_cell)}
    if rows.pop("all tenants").startswith("withheld"):
        return
    for reader in (None, *counts):
        unknown = [t for t, shown in rows.items() if shown.startswith("suppressed") and t != reader]
        total = sum(counts[t] for t in unknown)  # the total less the shown cells and its own
        for t in unknown:
            if rows[t] != "suppressed (too_few_subjects)":
                continue
            ranges = [range(1, minimum_cell) if rows[o] == "suppressed (too_few_subjects)" else
                      range(minimum_cell, total + 1) for o in unknown if o != t]
            assert len(_possible(range(1, minimum_cell), ranges, total)) >= 2, (reader, t)


def _what_a_mark_allows(mark_text: str, minimum_cell: int, cap: int) -> tuple[set[int], set[int], set[int]]:
    """By enumeration: the numerators, populations and outside counts a row with this mark
    can have (a complement: a row that could have been shown, someone in it)."""
    found: tuple[set[int], set[int], set[int]] = (set(), set(), set())
    for den in range(1, cap + 1):
        for num in range(den + 1):
            reason = suppression(num, den, minimum_cell)
            if (reason is None and mark_text == "suppressed (complementary)") or \
                    (reason is not None and mark_text == f"suppressed ({reason.value})"):
                found[0].add(num)
                found[1].add(den)
                found[2].add(den - num)
    return found


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("abcde"), st.tuples(st.integers(0, 9), st.integers(0, 9)).map(
    lambda pair: (min(pair), max(pair))), min_size=1), st.integers(2, 5))
def test_no_reader_pins_a_small_indicator_count_from_the_marks_and_the_totals(
        counts: dict[str, tuple[int, int]], minimum_cell: int) -> None:
    rows = {r.tenant: r.shown for r in publish_rows(IN_EDUCATION, 2020, counts, minimum_cell).rows}
    total_shown = rows.pop(ALL_TENANTS)
    if total_shown == WITHHELD or total_shown.startswith("suppressed"):
        return  # no totals, nothing to add up
    cap = sum(d for _, d in counts.values())
    parts = {t: (n, d, d - n) for t, (n, d) in counts.items()}
    for reader in (None, *counts):
        unknown = [t for t, shown in rows.items() if shown.startswith("suppressed") and t != reader]
        allowed = {t: _what_a_mark_allows(rows[t], minimum_cell, cap) for t in unknown}
        for column in range(3):
            total = sum(parts[t][column] for t in unknown)
            for t in unknown:
                if rows[t] == "suppressed (complementary)":
                    continue
                sums = {0}
                for other in unknown:
                    if other != t:
                        sums = {s + v for s in sums for v in allowed[other][column] if s + v <= total}
                options = {v for v in allowed[t][column] if total - v in sums}
                assert len(options) >= 2, (reader, t, column, options)
