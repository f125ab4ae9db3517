"""The report's sections for the national figures (docs/tenancy.md, "National figures"):
the price of exclusion by municipality (cli/reporting/borders.py), a table per horizon,
and the indicators per tenant (cli/reporting/national_indicators.py). Published figures
only; self-contained pieces the report places in its appendix."""

from __future__ import annotations

import html

from cli.reporting.borders import HEADINGS, PUBLISHED_COLUMNS, PublishedHorizon
from cli.reporting.national_indicators import IndicatorComparison
from cli.reporting.page import note, table


def exclusion_section(published: tuple[PublishedHorizon, ...] | None, title: str, minimum_cell: int) -> str:
    heading = f"<h2>{html.escape(title)}, by municipality: who paid, who harvests</h2>"
    if published is None:
        return heading + note("Not comparable: a contract pays in another currency than the model counts in.")
    parts = [heading, note(
        "Paid: what the contracts' payer paid for outcomes and its share of the running cost. Harvested: the "
        "municipal share of the savings, where each child lives, year by year (the CPR register's residence, "
        "else its latest registration), whoever paid; of which from others' payments; harvested elsewhere: "
        "the savings of what this municipality paid for, falling in another. Discounted. Figures about fewer "
        f"than {minimum_cell} children are suppressed, with complements, so that no municipality knowing its "
        "own row can compute another's.")]
    for horizon in published:
        rows = [[row.place, *(row.shown[c] for c in PUBLISHED_COLUMNS)] for row in horizon.rows]
        rows += [[f"{level} (all)", "", horizon.levels[level], "", "", ""] for level in ("region", "state")]
        parts.append(f"<h3>Over {horizon.horizon_years} years</h3>"
                     + table(["municipality", *(HEADINGS[c] for c in PUBLISHED_COLUMNS)], rows))
    return "".join(parts)


def indicators_section(compared: tuple[IndicatorComparison, ...], minimum_cell: int) -> str:
    """A row per tenant, a column per indicator (each for its latest year with a population)."""
    if not compared:
        return ""
    tenants = [row.tenant for row in compared[0].rows]
    rows = [[tenant, *(c.rows[n].shown for c in compared)] for n, tenant in enumerate(tenants)]
    return ("<h2>Indicators per tenant</h2>" + note(
        "The subjects living in each tenant municipality on the period's reference day (the CPR register's "
        f"residence, else their latest registration). Figures about fewer than {minimum_cell} are suppressed, "
        "with complements, so that no municipality knowing its own row can compute another's.")
        + table(["tenant", *(f"{c.indicator_id} {c.period}" for c in compared)], rows))
