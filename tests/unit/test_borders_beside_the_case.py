"""The price of exclusion by municipality (cli/reporting/borders.py) is published beside
the national business case (`stafet report`, `stafet simulate --by-municipality`), whose
cost is the table's paid total and whose savings per level give its harvested total: a
total the table withholds is known anyway, so no small cell may hang on withholding it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cli.reporting.borders import COLUMNS, publish
from tests.unit.test_borders import PLACES, _case, _children
from tests.unit.test_borders import _given_back as given_back


def _given_back(subjects: dict[str, dict[str, int]], minimum_cell: int) -> set[tuple[str, str, str]]:
    return given_back(subjects, minimum_cell, beside_the_case=True)


def test_a_paid_total_withheld_for_one_small_cell_withholds_the_horizon() -> None:
    # a's paid is about 2 children and b's about 40, c and d paid for nobody: too few
    # non-empty cells to hide three, so the table withheld the paid total, which the
    # national case's cost gives back (a = cost - b - c - d).
    subjects = {c: dict.fromkeys(PLACES, 0) for c in COLUMNS}
    subjects["paid"].update(a=2, b=40)
    subjects["harvested"].update(a=30, b=30)
    assert _given_back(subjects, 5) == set()
    rows = {r.place: r.shown for r in publish(_case(subjects), 5)[0].rows}
    assert all(rows[p]["paid"].startswith("suppressed") for p in PLACES)


@settings(max_examples=300, deadline=None)
@given(st.composite(_children)(), st.integers(1, 6))
def test_no_tenant_knowing_its_own_row_and_the_national_case_gets_a_small_cell_back(
        subjects: dict[str, dict[str, int]], minimum_cell: int) -> None:
    assert _given_back(subjects, minimum_cell) == set()
