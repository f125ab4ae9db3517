"""The indicators per tenant (cli/reporting/national_indicators.py) are published beside
the same indicator over the whole store (`stafet report --indicators`), which is the
tenants' total when every child lives in a tenant's municipality: a withheld total must
not be what protects a small row."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cli.reporting.national_indicators import ALL_TENANTS, WITHHELD, WITHHELD_ROW, publish_rows
from tests.unit.test_national_indicators import IN_EDUCATION


def test_a_small_row_is_not_left_to_the_store_total_less_the_shown_rows() -> None:
    # Two tenants, a's numerator small: too few rows to hide three, so the total is
    # withheld; the store's measure (1 + 30 of 150) would give a's back from b's row.
    counts = {"a": (1, 50), "b": (30, 100)}
    rows = {r.tenant: r.shown for r in publish_rows(IN_EDUCATION, 2020, counts, 5).rows}
    assert rows == {"a": WITHHELD_ROW, "b": WITHHELD_ROW, ALL_TENANTS: WITHHELD}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abcde"), st.tuples(st.integers(0, 12), st.integers(0, 12)).map(
    lambda pair: (min(pair), max(pair))), min_size=1), st.integers(1, 6))
def test_a_withheld_total_withholds_every_row(counts: dict[str, tuple[int, int]], minimum_cell: int) -> None:
    rows = {r.tenant: r.shown for r in publish_rows(IN_EDUCATION, 2020, counts, minimum_cell).rows}
    if rows.pop(ALL_TENANTS) == WITHHELD:
        assert set(rows.values()) == {WITHHELD_ROW}
