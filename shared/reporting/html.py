"""One static HTML report, charts included: opens offline, in any browser.

Plotly draws the charts; its JavaScript is embedded once in the page (no CDN), which
is why the file is a few megabytes.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from shared.currency import format_amounts, format_money, major_units
from shared.reporting.business_case import Assumptions, BusinessCase, business_cases
from shared.reporting.data import (
    ReportData,
    net_by_institution,
    net_by_kind,
    net_by_kind_and_outcome,
    outcomes_by_year,
    summarise,
)

TOP_INSTITUTIONS = 25
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


def _figure(fig: go.Figure, height: int = 420) -> str:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, template="plotly_white")
    return str(fig.to_html(full_html=False, include_plotlyjs=False))


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_section(data: ReportData) -> str:
    rows = []
    for s in summarise(data):
        rows.append([s.title, s.verified, s.rejected, s.capped, s.pending, money(s.paid_minor, s.currency),
                     money(s.clawed_back_minor, s.currency), money(s.settled_minor, s.currency),
                     money(s.budget_left_minor, s.currency)])
    reasons: list[list[object]] = []
    for s in summarise(data):
        reasons.extend([s.title, reason, count] for reason, count in s.rejected_by_reason.items())
    return ("<h2>Contracts</h2>"
            + _table(["contract", "verified", "rejected", "capped", "pending", "paid (net)", "clawed back",
                      "settled", "budget left"], rows)
            + "<h3>Why outcomes were rejected</h3>" + _table(["contract", "reason", "outcomes"], reasons))


def _institutions_chart(data: ReportData) -> str:
    top = net_by_institution(data)[:TOP_INSTITUTIONS]
    fig = go.Figure(go.Bar(
        x=[major_units(a, c) for _, c, a in top][::-1],
        y=[f"{data.name_of(p)} ({c})" for p, c, _ in top][::-1], orientation="h",
        marker_color=[_kind_colour(data.kind_of(p)) for p, _, _ in top][::-1],
        hovertext=[f"{data.kind_of(p)}: {money(a, c)}" for p, c, a in top][::-1]))
    fig.update_layout(title=f"Money per institution (top {len(top)}, net of clawbacks)")
    return _figure(fig, height=max(420, 22 * len(top) + 80))


KIND_COLOURS = {"daycare": "#f2a541", "primary_school": "#3d7dca", "youth_education": "#5aa469",
                "employment_actor": "#a05195", "social_enterprise": "#d45087", "investor": "#665191",
                "fund": "#2f4b7c"}


def _kind_colour(kind: str) -> str:
    return KIND_COLOURS.get(kind, "#8a949e")


def _sankey(data: ReportData) -> str:
    """One diagram per currency: flows in different currencies are not one quantity."""
    all_flows = net_by_kind_and_outcome(data)
    figures = []
    for currency in sorted({c for _, _, c in all_flows}):
        flows = {(k, o): v for (k, o, c), v in all_flows.items() if c == currency}
        kinds = sorted({k for k, _ in flows})
        outcomes = sorted({o for _, o in flows})
        labels = [k.replace("_", " ") for k in kinds] + outcomes
        fig = go.Figure(go.Sankey(
            node={"label": labels, "pad": 18,
                  "color": [_kind_colour(k) for k in kinds] + ["#9aa5b1"] * len(outcomes)},
            link={"source": [kinds.index(k) for k, _ in flows],
                  "target": [len(kinds) + outcomes.index(o) for _, o in flows],
                  "value": [major_units(v, currency) for v in flows.values()]}))
        fig.update_layout(title=f"Which institutions were paid for which later successes ({currency})")
        figures.append(_figure(fig, height=460))
    return "".join(figures)


def _over_time(data: ReportData) -> str:
    fig = go.Figure()
    for name, years in outcomes_by_year(data).items():
        fig.add_trace(go.Bar(name=name, x=list(years), y=list(years.values())))
    fig.update_layout(title="Verified outcomes per year", barmode="stack")
    return _figure(fig)


def _budget(data: ReportData) -> str:
    summaries = summarise(data)
    fig = go.Figure()
    titles = [f"{s.title} ({s.currency})" for s in summaries]
    fig.add_trace(go.Bar(name="paid (net)", x=titles, y=[major_units(s.paid_minor, s.currency) for s in summaries]))
    fig.add_trace(go.Bar(name="total cap", x=titles,
                         y=[major_units(s.cap_total_minor or 0, s.currency) for s in summaries]))
    fig.update_layout(title="Budget use against caps (contracts without a total cap show none)", barmode="group")
    return _figure(fig)


def _business_case(data: ReportData, assumptions: Assumptions) -> str:
    cases = business_cases(data, assumptions)
    rows = [[c.contract_id, money(c.paid_minor, c.currency),
             money(c.savings_minor, c.currency) if c.savings_minor is not None else NOT_COMPARABLE,
             money(c.net_minor, c.currency) if c.net_minor is not None else NOT_COMPARABLE] for c in cases]
    comparable = [c for c in cases if c.savings_minor is not None]
    fig = go.Figure()
    fig.add_trace(go.Bar(name=f"payments ({assumptions.currency})", x=[c.contract_id for c in comparable],
                         y=[major_units(c.paid_minor, c.currency) for c in comparable]))
    fig.add_trace(go.Bar(name=f"estimated savings ({assumptions.horizon_years} years, {assumptions.currency})",
                         x=[c.contract_id for c in comparable],
                         y=[major_units(c.savings_minor or 0, c.currency) for c in comparable]))
    fig.update_layout(title="Payments against estimated public savings", barmode="group")
    listed = [[outcome, f"{money(a.yearly_saving_minor, assumptions.currency)} a year", a.years,
               f"{a.deadweight:.0%}", a.source]
              for outcome, a in assumptions.outcomes.items()]
    return ("<h2>Business case</h2>" + _table(["contract", "payments", "estimated savings", "net"], rows)
            + _figure(fig)
            + f"<p class='note'>Horizon {assumptions.horizon_years} years, discounted at "
              f"{assumptions.discount_rate:.1%} a year; savings net of deadweight.</p>"
            + "<h3>Assumptions and sources</h3>"
            + _table(["outcome", "yearly saving", "years", "deadweight", "source"], listed))


def _comparison(variants: Sequence[ReportData], assumptions: Assumptions) -> str:
    kinds = sorted({k for v in variants for k in net_by_kind(v)})
    headers = ["variant", "verified outcomes", "cost", "estimated savings", "net",
               *[f"paid to {k.replace('_', ' ')}" for k in kinds]]
    rows = []
    for variant in variants:
        cost, savings, net = variant_totals(business_cases(variant, assumptions))
        verified = sum(1 for o in variant.outcomes if o.status == "verified")
        by_kind = net_by_kind(variant)
        rows.append([variant.title, verified, format_amounts(cost), savings, net,
                     *[format_amounts(by_kind.get(k, {})) for k in kinds]])
    return "<h2>Variants side by side</h2>" + _table(headers, rows)


def variant_totals(cases: Sequence[BusinessCase]) -> tuple[dict[str, int], str, str]:
    """Cost per currency, and savings and net shown only in the savings' own currency
    (a variant paying in another currency is "not comparable": never converted)."""
    cost: dict[str, int] = {}
    for case in cases:
        cost[case.currency] = cost.get(case.currency, 0) + case.paid_minor
    comparable = [c for c in cases if c.savings_minor is not None]
    if not comparable or len(comparable) < len(cases):
        return cost, NOT_COMPARABLE, NOT_COMPARABLE
    currency = comparable[0].currency
    savings = sum(c.savings_minor or 0 for c in comparable)
    return cost, money(savings, currency), money(savings - cost[currency], currency)


def render(variants: Sequence[ReportData], assumptions: Assumptions, *, title: str) -> str:
    sections = []
    if len(variants) > 1:
        sections.append(_comparison(variants, assumptions))
    for data in variants:
        heading = f"<h1>{html.escape(data.title)}</h1>" if len(variants) > 1 else ""
        sections.append(heading + f"<p class='note'>From {html.escape(data.source)}.</p>"
                        + _summary_section(data) + "<h2>Money</h2>" + _institutions_chart(data) + _sankey(data)
                        + "<h2>Outcomes over time</h2>" + _over_time(data) + "<h2>Budget</h2>" + _budget(data)
                        + _business_case(data, assumptions))
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='note'>Generated {generated}. Institutions and people are "
            "synthetic unless the data says otherwise.</p>" + "".join(sections) + "</body></html>")
