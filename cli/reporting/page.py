"""The report's building blocks, shared by its sections (`html.py`, `html_evidence.py`):
the page's style, tables, charts, amounts, and the context every section is given."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go

from cli.reporting.business_case import Assumptions
from cli.reporting.evidence import Evidence
from cli.reporting.skandia import ExclusionModel
from shared.domain.currency import format_money
from shared.domain.indicators.experiment import Estimate
from shared.domain.indicators.model import DEFAULT_MINIMUM_CELL

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d2630; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e3e6ea; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #5b6670; font-size: 0.85rem; }
"""


def money(minor: int | None, currency: str) -> str:
    """Exact, labelled, with the currency's own minor unit (JPY 0, DKK 2, BHD 3)."""
    if minor is None:
        return "-"
    return format_money(minor, currency)


NOT_COMPARABLE = "not comparable"  # savings estimated in another currency: never netted


def figure(fig: go.Figure, height: int = 420) -> str:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, template="plotly_white")
    return str(fig.to_html(full_html=False, include_plotlyjs=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


@dataclass(frozen=True)
class ReportContext:
    """What every section is given besides the facts: the business-case assumptions,
    the smallest number of subjects a shown figure may be about, and (when measured)
    the indicators and experiments that say whether it worked."""

    assumptions: Assumptions
    minimum_cell: int = DEFAULT_MINIMUM_CELL
    evidence: Evidence | None = None
    # The price of exclusion (the Skandia model's business case); None: no such section.
    exclusion: ExclusionModel | None = None
    # Measured effects per contract outcome given directly (`stafet simulate --effect`),
    # besides those the evidence's experiments measured per indicator.
    effects: Mapping[str, Estimate] = field(default_factory=dict)
