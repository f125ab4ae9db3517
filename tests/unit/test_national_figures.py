"""National figures across tenants (cli/reporting/national.py): only suppressed aggregates,
safe against a tenant that reads the table knowing its own exact row."""

from __future__ import annotations

from cli.reporting.national import COLUMNS, NationalRow, suppress

COUNTS = {"a": {"children": 120, "verified": 60, "cross_border": 3},
          "b": {"children": 80, "verified": 20, "cross_border": 9},
          "c": {"children": 4, "verified": 2, "cross_border": 0}}


def given_back(rows: list[NationalRow], reader: str) -> dict[tuple[str, str], int]:
    """What `reader`, knowing its own exact row, recovers by subtraction: per column with the
    national total shown, a single hidden cell besides its own is the total minus the
    shown cells minus its own."""
    found = {}
    by = {r.tenant: r for r in rows}
    total = by.pop("all tenants")
    for column in COLUMNS:
        if not total.shown[column].replace(",", "").isdigit():
            continue
        unknown = [t for t, r in by.items() if t != reader and not r.shown[column].replace(",", "").isdigit()]
        if len(unknown) == 1:
            rest = sum(int(r.shown[column].replace(",", "")) for t, r in by.items() if t not in (reader, unknown[0]))
            found[(unknown[0], column)] = int(total.shown[column].replace(",", "")) - rest - by[reader].counts[column]
    return found


def test_a_tenant_knowing_its_own_row_cannot_give_back_anothers_suppressed_cell() -> None:
    rows = suppress(COUNTS, minimum_cell=5)
    # The finding: a's 3 cross-border children are under 5 and hidden; with one complement
    # (b's 9) and the total 12 shown, a gets b's 9 back: 12 - 0 (c, shown) - 3 (its own).
    for reader in COUNTS:
        assert given_back(rows, reader) == {}, reader
    by = {r.tenant: r for r in rows}
    # Too few non-empty cross-border cells for two hidden besides a reader's own: the
    # national total is withheld, and only the small cell is hidden.
    assert by["all tenants"].shown["cross_border"] == "withheld (would give back a suppressed cell)"
    assert [by[t].shown["cross_border"] for t in "abc"] == ["suppressed (too_few_subjects)", "9", "0"]
    # Children and verified: c's 4 and 2 are under 5; a and b are hidden with them, so b,
    # knowing its own, learns only a + c from the total.
    for column in ("children", "verified"):
        assert [by[t].shown[column] for t in "abc"] == [
            "suppressed (complementary)", "suppressed (complementary)", "suppressed (too_few_subjects)"]
    assert by["all tenants"].shown["children"] == "204"
    assert (by["a"].rate, by["b"].rate, by["c"].rate, by["all tenants"].rate) == (
        "suppressed", "suppressed", "suppressed", "40.2 %")


def test_a_complement_is_the_smallest_others_and_at_least_three_cells_are_hidden() -> None:
    counts = {t: {"children": n, "verified": 0, "cross_border": 0}
              for t, n in {"a": 2, "b": 50, "c": 7, "d": 9, "e": 0}.items()}
    by = {r.tenant: r for r in suppress(counts, minimum_cell=5)}
    assert {t: by[t].shown["children"] for t in counts} == {
        "a": "suppressed (too_few_subjects)", "b": "50", "c": "suppressed (complementary)",
        "d": "suppressed (complementary)", "e": "0"}
    assert by["all tenants"].shown["children"] == "68"
    for reader in counts:
        assert given_back(list(by.values()), reader) == {}, reader


def test_with_every_cell_large_enough_everything_is_shown() -> None:
    rows = suppress({"a": {"children": 10, "verified": 5, "cross_border": 5},
                     "b": {"children": 20, "verified": 10, "cross_border": 0}}, minimum_cell=5)
    assert [r.shown["children"] for r in rows] == ["10", "20", "30"]
    assert [r.rate for r in rows] == ["50.0 %", "50.0 %", "50.0 %"]
