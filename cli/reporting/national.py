"""National figures across tenants, computed inside the clearing house and published only
as suppressed aggregates (docs/tenancy.md, "National figures").

A tenant's people read its own rows (row-level security); no tenant reads another's
subject-level rows. The comparison across tenants is made here, from the clearing
house's own read role, and leaves as counts per tenant under the report's disclosure
rule (cli/reporting/disclosure.py): a count about 1 to `minimum_cell - 1` children is
suppressed. Each tenant reads the table knowing its own exact row, so a column with a
hidden cell hides at least three (the smallest non-empty others as complements): a
tenant then learns only the sum of two or more others from the national total. Where a
column has too few non-empty cells for that, its national total is withheld instead
(`group_read_by_members`). A rate is shown only when both its counts are.

`national_figures` does the same for the business case across borders (who paid for an
outcome, who harvests its savings: cli/reporting/borders.py) and for the indicators per
tenant (cli/reporting/national_indicators.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import asyncpg

from cli.reporting.borders import BorderCase, PublishedHorizon, border_case, publish
from cli.reporting.disclosure import Interval, group_read_by_members, mark, pinned_by_marks
from cli.reporting.evidence import trend_years
from cli.reporting.live import published_from_database
from cli.reporting.live_indicators import live_timelines
from cli.reporting.national_indicators import IndicatorComparison, compare, compare_latest
from cli.reporting.skandia import ExclusionModel
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.homes import home_on
from shared.domain.indicators.compute import Suppression
from shared.domain.indicators.model import IndicatorSet
from shared.domain.institutions import InstitutionRegistry
from shared.domain.tenancy import Tenant

# Per tenant (payer): the children its contracts concern (a decision other than "not
# eligible"), those with an outcome verified, and those it pays for an institution in
# another municipality (a cross-border child).
_CHILDREN = """
SELECT c.payer, o.subject, bool_or(o.status = 'verified') AS verified
  FROM verifier_outcomes o
  JOIN (SELECT DISTINCT contract_id, contract::jsonb ->> 'payer' AS payer FROM verifier_contracts) c USING (contract_id)
 WHERE o.reason IS DISTINCT FROM 'not_eligible'
 GROUP BY c.payer, o.subject
"""
_PAID = "SELECT DISTINCT payer, payee, subject FROM ledger_entries WHERE kind = 'payment'"
COLUMNS = ("children", "verified", "cross_border")


@dataclass(frozen=True)
class NationalRow:
    tenant: str
    counts: Mapping[str, int]  # column -> children (exact: never published as such)
    shown: Mapping[str, str]  # column -> the published figure or its suppression mark
    rate: str  # verified / children, or why not shown


def suppress(counts: Mapping[str, Mapping[str, int]], minimum_cell: int) -> list[NationalRow]:
    """Per tenant's exact counts, the published rows plus a national total ("all tenants")."""
    decided = {column: group_read_by_members({t: c[column] for t, c in counts.items()}, minimum_cell)
               for column in COLUMNS}
    hidden = {column: found for column, (found, _) in decided.items()}
    total_shown = {column: decided[column][1] and not _pinned_across_columns(counts, hidden, column, minimum_cell)
                   for column in COLUMNS}
    rows = []
    for tenant, exact in sorted(counts.items()):
        shown = {column: mark(hidden[column][tenant]) if tenant in hidden[column] else f"{exact[column]:,}"
                 for column in COLUMNS}
        both = tenant not in hidden["children"] and tenant not in hidden["verified"]
        rate = (f"{100 * exact['verified'] / exact['children']:.1f} %" if exact["children"] else "-") if both else \
            "suppressed"
        rows.append(NationalRow(tenant, exact, shown, rate))
    total = {column: sum(c[column] for c in counts.values()) for column in COLUMNS}
    both = total_shown["children"] and total_shown["verified"]
    rows.append(NationalRow(
        "all tenants", total,
        {column: f"{total[column]:,}" if total_shown[column] else "withheld (would give back a suppressed cell)"
         for column in COLUMNS},
        (f"{100 * total['verified'] / total['children']:.1f} %" if total["children"] else "-") if both else
        "withheld"))
    return rows


def _pinned_across_columns(counts: Mapping[str, Mapping[str, int]], hidden: Mapping[str, Mapping[str, Suppression]],
                           column: str, minimum_cell: int) -> bool:
    """Whether a reader pins a small hidden cell of `column` from its total and the marks,
    once each hidden cell is also bounded by its row's other columns as shown: verified
    and cross-border children are at most the row's children (or fewer than the minimum,
    when its children are too few), and children at least its verified and cross-border
    ones. `group_read_by_members` judges each column on its own: a complement's verified
    count is at least the minimum there, but with the row's 5 children shown it is exactly
    5, and the total less the shown cells then gives a small one back."""
    mine = hidden[column]
    protected = [t for t, reason in mine.items() if reason == Suppression.TOO_FEW_SUBJECTS]
    if not protected:
        return False
    allowed: dict[str, list[Interval]] = {}
    for tenant, reason in mine.items():
        low, high = (1, minimum_cell - 1) if reason == Suppression.TOO_FEW_SUBJECTS else (minimum_cell, None)
        if column == "children":
            low = max([low, *(counts[tenant][c] for c in ("verified", "cross_border") if tenant not in hidden[c])])
        elif tenant not in hidden["children"]:
            high = counts[tenant]["children"] if high is None else min(high, counts[tenant]["children"])
        elif hidden["children"][tenant] == Suppression.TOO_FEW_SUBJECTS:
            high = minimum_cell - 1 if high is None else min(high, minimum_cell - 1)
        allowed[tenant] = [(low, high)]
    return pinned_by_marks({t: c[column] for t, c in counts.items()}, allowed, protected)


async def national_counts(database_url: str, homes: Mapping[str, str],
                          municipality_of: Callable[[str], str]) -> dict[str, dict[str, int]]:
    """The exact counts per tenant (`homes`: tenant -> its municipality), read as the
    clearing house (a role that sees every row)."""
    tenants = sorted(homes)
    connection = await asyncpg.connect(database_url)
    try:
        children = await connection.fetch(_CHILDREN)
        paid = await connection.fetch(_PAID)
    finally:
        await connection.close()
    counts = {t: dict.fromkeys(COLUMNS, 0) for t in tenants}
    for row in children:
        if row["payer"] in counts:
            counts[row["payer"]]["children"] += 1
            counts[row["payer"]]["verified"] += int(row["verified"])
    crossing: dict[str, set[str]] = {t: set() for t in tenants}
    for row in paid:
        if row["payer"] in crossing and municipality_of(row["payee"]) != homes[row["payer"]]:
            crossing[row["payer"]].add(row["subject"])
    for tenant, subjects in crossing.items():
        counts[tenant]["cross_border"] = len(subjects)
    return counts


@dataclass(frozen=True)
class NationalFigures:
    """The business case across borders and the indicators per tenant, published."""

    exclusion: tuple[PublishedHorizon, ...] | None  # None: the case cannot be made (another currency)
    indicators: tuple[IndicatorComparison, ...]
    exact: BorderCase | None = None  # the exact figures behind `exclusion`: never published as such


def tenant_homes(tenants: Iterable[Tenant]) -> dict[str, str]:
    """Each tenant's municipality (a municipality's `municipality:`, else its id): a
    contract's payer is named by the tenant's id, a child's home by the municipality."""
    return {t.id: t.municipality or t.id for t in tenants}


async def national_figures(database_url: str, registry: InstitutionRegistry, homes: Mapping[str, str],
                           model: ExclusionModel | None, definitions: IndicatorSet | None, year: int | None,
                           minimum_cell: int) -> NationalFigures:
    """Read inside the clearing house (`database_url`: a role that sees every row, the
    operators'), computed here, and returned only as published figures: the price of
    exclusion split by municipality (`model`) and the indicators per tenant for `year`
    (None: each indicator's latest year with a population, as the report shows them)."""
    municipality_of = {i.id: i.municipality for i in registry.all() if i.municipality}
    timelines = {t.subject: t for t in await live_timelines(database_url)}

    def home_of(subject: str, day: dt.date) -> str | None:
        timeline = timelines.get(subject)
        return home_on(timeline, day, municipality_of) if timeline is not None else None

    published, case = None, None
    if model is not None:
        data = await published_from_database(database_url, registry, "national", minimum_cell)
        case = border_case(data, model, home_of, payer_home=homes)
        published = publish(case, minimum_cell) if case is not None else None
    compared: list[IndicatorComparison] = []
    if definitions is not None:
        places = sorted(set(homes.values()))
        everyone = list(timelines.values())

        def place_of(timeline: SubjectTimeline, day: dt.date) -> str | None:
            return home_on(timeline, day, municipality_of)

        compared = compare(definitions.indicators, everyone, year, places, place_of, minimum_cell) \
            if year is not None else compare_latest(definitions.indicators, everyone,
                                                     trend_years(definitions, everyone), places, place_of,
                                                     minimum_cell)
    return NationalFigures(published, tuple(compared), case)
