"""National figures across tenants (cli/reporting/national.py): only suppressed aggregates."""

from __future__ import annotations

from cli.reporting.national import suppress


def test_a_small_tenants_cells_are_suppressed_with_a_complement_and_its_rate_withheld() -> None:
    counts = {"a": {"children": 120, "verified": 60, "cross_border": 3},
              "b": {"children": 80, "verified": 20, "cross_border": 9},
              "c": {"children": 4, "verified": 2, "cross_border": 0}}
    rows = {r.tenant: r for r in suppress(counts, minimum_cell=5)}
    # c's 4 children and 2 verified are under 5; so are a's 3 cross-border children. Each
    # column has one hidden cell, so the next smallest non-empty one is hidden too (the
    # national total is shown and would give it back).
    assert rows["c"].shown == {"children": "suppressed (too_few_subjects)",
                               "verified": "suppressed (too_few_subjects)", "cross_border": "0"}
    assert rows["b"].shown == {"children": "suppressed (complementary)", "verified": "suppressed (complementary)",
                               "cross_border": "suppressed (complementary)"}
    assert rows["a"].shown == {"children": "120", "verified": "60", "cross_border": "suppressed (too_few_subjects)"}
    assert (rows["a"].rate, rows["b"].rate, rows["c"].rate) == ("50.0 %", "suppressed", "suppressed")
    assert rows["all tenants"].shown == {"children": "204", "verified": "82", "cross_border": "12"}
    assert rows["all tenants"].rate == "40.2 %"


def test_with_every_cell_large_enough_everything_is_shown() -> None:
    rows = suppress({"a": {"children": 10, "verified": 5, "cross_border": 5},
                     "b": {"children": 20, "verified": 10, "cross_border": 0}}, minimum_cell=5)
    assert [r.shown["children"] for r in rows] == ["10", "20", "30"]
    assert [r.rate for r in rows] == ["50.0 %", "50.0 %", "50.0 %"]
