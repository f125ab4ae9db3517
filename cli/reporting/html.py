"""One static HTML report, charts included: opens offline, in any browser.

Plotly draws the charts; its JavaScript is embedded once in the page (no CDN), which
is why the file is a few megabytes.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Mapping, Sequence

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from cli.reporting.business_case import Assumptions, BusinessCase, business_cases
from cli.reporting.data import (
    ContractSummary,
    ReportData,
    everyone,
    headcount,
    net_by_institution,
    net_by_kind,
    net_by_kind_and_outcome,
    outcomes_by_year,
    subjects_by_flow,
    subjects_by_kind,
    subjects_by_payee,
    summarise,
)
from cli.reporting.disclosure import cell, group, mark, shown
from cli.reporting.evidence import Evidence, measured_by_outcome
from cli.reporting.html_evidence import experiments_section, indicators_section
from cli.reporting.page import NOT_COMPARABLE, STYLE, ReportContext, figure, money, note, table
from cli.reporting.skandia import ExclusionModel, case_for, measured_deadweights
from cli.reporting.skandia_html import section as exclusion_html
from shared.domain.currency import format_amounts, major_units
from shared.domain.indicators.compute import Suppression
from shared.domain.indicators.experiment import Estimate
from shared.domain.indicators.model import DEFAULT_MINIMUM_CELL

TOP_INSTITUTIONS = 25


def _left_out(count: int, what: str, minimum_cell: int) -> str:
    if not count:
        return ""
    return (f"<p class='note'>{count} {what} about fewer than {minimum_cell} subjects "
            f"{'is' if count == 1 else 'are'} not shown (small cells).</p>")


CONTRACT_COLUMNS = ("verified", "rejected", "capped", "pending", "paid (net)", "clawed back", "settled",
                    "budget left")


def contract_cells(s: ContractSummary, least: int) -> dict[str, str]:
    """A contract's row as shown (the report, the demo's printout): each figure, or the
    mark when it is about too few subjects; every figure when the row is."""
    if (whole := cell(s.subjects, least)) is not None:
        return dict.fromkeys(CONTRACT_COLUMNS, mark(whole))
    counts = [shown(str(n), s.subjects_by_status.get(status, 0), least) for status, n in
              (("verified", s.verified), ("rejected", s.rejected), ("capped", s.capped),
               ("pending_sustainment", s.pending))]
    if s.withheld:
        # Its money would give a suppressed cell back: no amount of it, nor the budget it left.
        return dict(zip(CONTRACT_COLUMNS, [*counts, *[mark(Suppression.REVEALS_SUPPRESSED_CELL)] * 4], strict=True))
    amounts = [shown(money(s.paid_minor, s.currency), s.money_subjects, least),
               shown(money(s.clawed_back_minor, s.currency), s.clawed_back_subjects, least),
               shown(money(s.settled_minor, s.currency), s.settled_subjects, least),
               shown(money(s.budget_left_minor, s.currency), s.money_subjects, least)]
    return dict(zip(CONTRACT_COLUMNS, [*counts, *amounts], strict=True))


def shown_institutions(data: ReportData, least: int) -> tuple[list[tuple[str, str, int]], int]:
    """Net per payee and currency, largest first, without the totals about too few
    subjects; and how many were left out."""
    subjects = subjects_by_payee(data)
    every = net_by_institution(data)
    allowed = [(p, c, a) for p, c, a in every if cell(subjects.get((p, c), 0), least) is None]
    return allowed, len(every) - len(allowed)


def _summary_section(data: ReportData, context: ReportContext) -> str:
    least = context.minimum_cell
    rows: list[list[object]] = []
    reasons: list[list[object]] = []
    for s in summarise(data):
        cells = contract_cells(s, least)
        rows.append([s.title, *cells.values()])
        if s.subjects < least:
            continue  # not even which reasons occurred
        # The reasons add up to the rejected count: when that is shown, one suppressed
        # reason would come back by subtraction (cli/reporting/disclosure.py).
        hidden = group(s.subjects_by_reason, least, total_shown=cell(s.subjects_by_status.get("rejected", 0),
                                                                     least) is None)
        reasons.extend([s.title, reason, mark(hidden[reason]) if reason in hidden else count]
                       for reason, count in s.rejected_by_reason.items())
    withheld = "".join(note(text) for text in data.withheld.values())
    return ("<h2>Contracts</h2>"
            + table(["contract", *CONTRACT_COLUMNS], rows) + withheld
            + "<h3>Why outcomes were rejected</h3>" + table(["contract", "reason", "outcomes"], reasons))


def _institutions_chart(data: ReportData, context: ReportContext) -> str:
    allowed, hidden = shown_institutions(data, context.minimum_cell)
    top = allowed[:TOP_INSTITUTIONS]
    fig = go.Figure(go.Bar(
        x=[major_units(a, c) for _, c, a in top][::-1],
        y=[f"{data.name_of(p)} ({c})" for p, c, _ in top][::-1], orientation="h",
        marker_color=[_kind_colour(data.kind_of(p)) for p, _, _ in top][::-1],
        hovertext=[f"{data.kind_of(p)}: {money(a, c)}" for p, c, a in top][::-1]))
    fig.update_layout(title=f"Money per institution (top {len(top)}, net of clawbacks)")
    return (figure(fig, height=max(420, 22 * len(top) + 80))
            + _left_out(hidden, "institution total(s)", context.minimum_cell))


KIND_COLOURS = {"daycare": "#f2a541", "primary_school": "#3d7dca", "youth_education": "#5aa469",
                "employment_actor": "#a05195", "social_enterprise": "#d45087", "investor": "#665191",
                "fund": "#2f4b7c"}


def _kind_colour(kind: str) -> str:
    return KIND_COLOURS.get(kind, "#8a949e")


def _sankey(data: ReportData, context: ReportContext) -> str:
    """One diagram per currency: flows in different currencies are not one quantity."""
    subjects = subjects_by_flow(data)
    every = net_by_kind_and_outcome(data)
    all_flows = {k: v for k, v in every.items() if cell(subjects.get(k, 0), context.minimum_cell) is None}
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
        figures.append(figure(fig, height=460))
    return "".join(figures) + _left_out(len(every) - len(all_flows), "flow(s)", context.minimum_cell)


def _money_section(data: ReportData, context: ReportContext) -> str:
    return "<h2>Money</h2>" + _institutions_chart(data, context) + _sankey(data, context)


def _over_time(data: ReportData, context: ReportContext) -> str:
    fig = go.Figure()
    hidden_bars = 0
    for name, years in outcomes_by_year(data).items():
        hidden = group({year: who for year, (_, who) in years.items()}, context.minimum_cell, total_shown=True)
        hidden_bars += len(hidden)
        kept = {year: n for year, (n, _) in years.items() if year not in hidden}
        fig.add_trace(go.Bar(name=name, x=list(kept), y=list(kept.values())))
    fig.update_layout(title="Verified outcomes per year", barmode="stack")
    return ("<h2>Outcomes over time</h2>" + figure(fig)
            + _left_out(hidden_bars, "bar(s)", context.minimum_cell))


def _budget(data: ReportData, context: ReportContext) -> str:
    every = summarise(data)
    summaries = [s for s in every if cell(s.money_subjects, context.minimum_cell) is None]
    fig = go.Figure()
    titles = [f"{s.title} ({s.currency})" for s in summaries]
    fig.add_trace(go.Bar(name="paid (net)", x=titles, y=[major_units(s.paid_minor, s.currency) for s in summaries]))
    fig.add_trace(go.Bar(name="total cap", x=titles,
                         y=[major_units(s.cap_total_minor or 0, s.currency) for s in summaries]))
    fig.update_layout(title="Budget use against caps (contracts without a total cap show none)", barmode="group")
    return ("<h2>Budget</h2>" + figure(fig)
            + _left_out(len(every) - len(summaries), "contract(s)", context.minimum_cell))


def _business_case(data: ReportData, context: ReportContext) -> str:
    assumptions = context.assumptions
    subjects = {s.contract_id: s.subjects for s in summarise(data)}
    rows: list[list[object]] = []
    shown_cases = []
    for c in business_cases(data, assumptions):
        # The savings are a price times the verified count: about as few subjects as the row.
        if (reason := cell(subjects.get(c.contract_id, 0), context.minimum_cell)) is not None:
            rows.append([c.contract_id, *[mark(reason)] * 3])
            continue
        shown_cases.append(c)
        rows.append([c.contract_id, money(c.paid_minor, c.currency),
                     money(c.savings_minor, c.currency) if c.savings_minor is not None else NOT_COMPARABLE,
                     money(c.net_minor, c.currency) if c.net_minor is not None else NOT_COMPARABLE])
    comparable = [c for c in shown_cases if c.savings_minor is not None]
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
    return ("<h2>Business case per outcome (assumed deadweight)</h2>"
            + table(["contract", "payments", "estimated savings", "net"], rows)
            + figure(fig)
            + f"<p class='note'>Horizon {assumptions.horizon_years} years, discounted at "
              f"{assumptions.discount_rate:.1%} a year; savings net of an assumed deadweight. The price of "
              "exclusion below uses the deadweight an experiment measured, where one did.</p>"
            + "<h3>Assumptions and sources</h3>"
            + table(["outcome", "yearly saving", "years", "deadweight", "source"], listed))


def _exclusion_section(data: ReportData, context: ReportContext) -> str:
    """The business case as the Skandia model makes it (cli/reporting/skandia.py),
    with every deadweight an experiment measured in place of the assumed one."""
    model = context.exclusion
    if model is None:
        return ""
    about = everyone(data)
    if (reason := cell(about, context.minimum_cell)) is not None:
        return f"<h2>{html.escape(model.title)}</h2>" + note(f"{mark(reason)}: the case is about {about} "
                                                               f"subject(s), fewer than {context.minimum_cell}.")
    measured = measured_deadweights(model, context.evidence.estimates() if context.evidence else (), data)
    measured.update(measured_by_outcome(data, context.effects))
    return exclusion_html([(data.title, case_for(data, model, measured))], model)


def comparison_rows(variants: Sequence[ReportData], context: ReportContext
                    ) -> tuple[list[str], list[list[str]]]:
    """Each variant's totals side by side (the report's table, `stafet simulate`'s
    printout), small cells suppressed."""
    least = context.minimum_cell
    kinds = sorted({k for v in variants for k in net_by_kind(v)})
    headers = ["variant", "verified outcomes", "cost", "estimated savings", "net",
               *[f"paid to {k.replace('_', ' ')}" for k in kinds]]
    rows: list[list[str]] = []
    for variant in variants:
        if (reason := cell(everyone(variant), least)) is not None:
            rows.append([variant.title, *[mark(reason)] * (len(headers) - 1)])
            continue
        cost, savings, net = variant_totals(business_cases(variant, context.assumptions))
        verified = [o for o in variant.outcomes if o.status == "verified"]
        by_kind = net_by_kind(variant)
        kind_subjects = subjects_by_kind(variant)
        paid_to = [_paid_to(by_kind.get(k, {}), {c: kind_subjects.get((k, c), 0) for c in by_kind.get(k, {})},
                            least) for k in kinds]
        rows.append([variant.title, shown(str(len(verified)), headcount({o.subject for o in verified}), least),
                     format_amounts(cost), savings, net, *paid_to])
    return headers, rows


def _comparison(variants: Sequence[ReportData], context: ReportContext) -> str:
    return "<h2>Variants side by side</h2>" + table(*comparison_rows(variants, context))


def _paid_to(amounts: dict[str, int], subjects: dict[str, int], least: int) -> str:
    hidden = [reason for c in amounts if (reason := cell(subjects[c], least)) is not None]
    return mark(hidden[0]) if hidden else format_amounts(amounts)


Section = Callable[[ReportData, ReportContext], str]
# The sections of each variant's part of the report, in order. A new section is a
# function of (data, context) added here; each applies the small-cell rule to what it shows.
SECTIONS: tuple[Section, ...] = (_summary_section, indicators_section, experiments_section, _money_section,
                                 _over_time, _budget, _business_case, _exclusion_section)


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


def render(variants: Sequence[ReportData], assumptions: Assumptions, *, title: str,
           minimum_cell: int = DEFAULT_MINIMUM_CELL, evidence: Evidence | None = None,
           exclusion: ExclusionModel | None = None, effects: Mapping[str, Estimate] | None = None,
           appendix: Sequence[str] = ()) -> str:
    """`appendix`: finished sections of other modules (e.g. cli/reporting/investors.py), in order."""
    context = ReportContext(assumptions, minimum_cell, evidence, exclusion, effects or {})
    sections = []
    if len(variants) > 1:
        sections.append(_comparison(variants, context))
    for data in variants:
        heading = f"<h1>{html.escape(data.title)}</h1>" if len(variants) > 1 else ""
        sections.append(heading + f"<p class='note'>From {html.escape(data.source)}.</p>"
                        + "".join(section(data, context) for section in SECTIONS))
    sections.extend(appendix)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='note'>Generated {generated}. Institutions and people are "
            "synthetic unless the data says otherwise. Figures about fewer than "
            f"{minimum_cell} subjects are suppressed and marked.</p>" + "".join(sections) + "</body></html>")
