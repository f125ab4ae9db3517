"""The price of exclusion by municipality (cli/reporting/borders.py) is published beside
the national business case (`stafet report`, `stafet simulate --by-municipality`), whose
cost is the table's paid total and whose savings per level give its harvested total: a
total the table withholds is known anyway, so no small cell may hang on withholding it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cli.reporting.borders import COLUMNS, WITHHELD, publish
from tests.unit.disclosure_algebra import Equation, determined
from tests.unit.test_borders import PLACES, _case, _children


def _given_back(subjects: dict[str, dict[str, int]], minimum_cell: int) -> set[tuple[str, str, str]]:
    """Every small cell a reader knowing its own row and the national case computes."""
    published = publish(_case(subjects), minimum_cell)[0]
    rows = {r.place: r.shown for r in published.rows}
    total = rows.pop("all municipalities")
    hidden = [(c, p) for p in PLACES for c in COLUMNS if rows[p][c].startswith("suppressed")]
    found = set()
    for reader in PLACES:
        unknown = [cell for cell in hidden if cell[1] != reader]
        # The national case gives the paid and the harvested totals, shown here or not.
        equations: list[Equation] = [{(c, p): 1 for p in PLACES} for c in COLUMNS
                                     if total[c] != WITHHELD or c in ("paid", "harvested")]
        equations.append({**{("inflow", p): 1 for p in PLACES}, **{("outflow", p): -1 for p in PLACES}})
        equations += [{("harvested", p): 1, ("inflow", p): -1} for p in PLACES
                      if subjects["harvested"][p] == subjects["inflow"][p]]
        for column, place in determined(unknown, equations):
            if 0 < subjects[column][place] < minimum_cell:
                found.add((reader, column, place))
    return found


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
