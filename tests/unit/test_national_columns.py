"""The nation's table per tenant (cli/reporting/national.py, `suppress`) gives no small
cell back through the bounds a row's other columns put on it: verified and cross-border
children are at most the row's children, which may be shown."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cli.reporting.national import COLUMNS, suppress

SMALL, COMPLEMENT = "suppressed (too_few_subjects)", "suppressed (complementary)"


def _published(counts: dict[str, dict[str, int]], minimum_cell: int) -> dict[str, dict[str, str]]:
    return {row.tenant: dict(row.shown) for row in suppress(counts, minimum_cell)}


def test_a_complement_bounded_by_its_rows_children_gives_a_small_verified_count_back() -> None:
    # Anyone reads 53 - 40 = 13 for the three hidden verified counts; b's and c's are
    # complements (at least 5) of rows with 5 children shown, so exactly 5: a's is 3.
    counts = {"a": {"children": 50, "verified": 3, "cross_border": 0},
              "b": {"children": 5, "verified": 5, "cross_border": 0},
              "c": {"children": 5, "verified": 5, "cross_border": 0},
              "d": {"children": 100, "verified": 40, "cross_border": 0}}
    rows = _published(counts, 5)
    assert (rows["a"]["verified"], rows["b"]["verified"], rows["b"]["children"]) == (SMALL, COMPLEMENT, "5")
    assert rows["all tenants"]["verified"].startswith("withheld")


def _bounds(rows: dict[str, dict[str, str]], counts: dict[str, dict[str, int]], tenant: str, column: str,
            minimum_cell: int, top: int) -> range:
    """What a reader knows of a hidden cell from its mark and its row's shown cells."""
    low, high = (1, minimum_cell - 1) if rows[tenant][column] == SMALL else (minimum_cell, top)
    if column == "children":
        low = max([low, *(counts[tenant][c] for c in ("verified", "cross_border")
                          if not rows[tenant][c].startswith("suppressed"))])
    elif not rows[tenant]["children"].startswith("suppressed"):
        high = min(high, counts[tenant]["children"])
    elif rows[tenant]["children"] == SMALL:
        high = min(high, minimum_cell - 1)
    return range(low, high + 1)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12))
                       .map(lambda t: {"children": max(t), "verified": t[1] if t[1] <= max(t) else 0,
                                       "cross_border": min(t[0], t[2])}), min_size=1), st.integers(2, 6))
def test_no_reader_pins_a_small_cell_from_the_marks_the_total_and_its_rows_other_columns(
        counts: dict[str, dict[str, int]], minimum_cell: int) -> None:
    rows = _published(counts, minimum_cell)
    total = rows.pop("all tenants")
    for column in COLUMNS:
        if total[column].startswith("withheld"):
            continue
        for reader in (None, *counts):
            unknown = [t for t in counts if t != reader and rows[t][column].startswith("suppressed")]
            left = sum(counts[t][column] for t in unknown)
            for t in unknown:
                if rows[t][column] != SMALL:
                    continue
                sums = {0}
                for other in (o for o in unknown if o != t):
                    allowed = _bounds(rows, counts, other, column, minimum_cell, left)
                    sums = {s + v for s in sums for v in allowed if s + v <= left}
                possible = [v for v in _bounds(rows, counts, t, column, minimum_cell, left) if left - v in sums]
                assert len(possible) >= 2, (column, reader, t, counts)
