"""The report's section for the price of exclusion by municipality (cli/reporting/borders.py):
the published figures only, a table per horizon (one self-contained piece the report
places in its appendix)."""

from __future__ import annotations

import html

from cli.reporting.borders import HEADINGS, PUBLISHED_COLUMNS, PublishedHorizon
from cli.reporting.page import note, table


def section(published: tuple[PublishedHorizon, ...] | None, title: str, minimum_cell: int) -> str:
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
