"""The report's answer to "did it work": each indicator per year against the area's and
the municipality's baselines, and each experiment's estimate with its interval.

Both come measured already (`cli/reporting/evidence.py`): the indicators with their
small cells suppressed, so a suppressed year is a gap in the line and a mark in the
table, never a number. An experiment's estimate is about every pupil of every unit in
it (hundreds), never a small cell; its units' own shares are not shown.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go

from cli.reporting.data import ReportData
from cli.reporting.evidence import Evidence, ExperimentResult
from cli.reporting.page import ReportContext, figure, note, table
from shared.domain.indicators.compute import Measurement
from shared.domain.indicators.model import Indicator

SCOPE_COLOURS = ("#3d7dca", "#d45087", "#5aa469", "#f2a541")


def indicators_section(_: ReportData, context: ReportContext) -> str:
    evidence = context.evidence
    if evidence is None or not evidence.measurements:
        return ""
    parts = ["<h2>Did it work? Indicators against their baselines</h2>",
             note(f"Each indicator per year for every scope, counted from the subjects' facts "
                  f"(docs/indicators.md). Cells about fewer than {context.minimum_cell} subjects are suppressed: "
                  "a gap in the line, a mark in the table.")]
    for indicator in evidence.definitions.indicators:
        rows = [m for m in evidence.measurements if m.indicator_id == indicator.id]
        if rows:
            parts.append(_indicator(indicator, rows, evidence))
    return "".join(parts)


def _indicator(indicator: Indicator, rows: list[Measurement], evidence: Evidence) -> str:
    scopes = [s.name for s in evidence.definitions.scopes]
    years = sorted({m.year for m in rows})
    by = {(m.scope, m.year): m for m in rows}
    fig = go.Figure()
    for n, scope in enumerate(scopes):
        colour = SCOPE_COLOURS[n % len(SCOPE_COLOURS)]
        points = [by.get((scope, year)) for year in years]
        fig.add_trace(go.Scatter(x=years, y=[float(p.percent) if p and p.percent is not None else None
                                             for p in points],
                                 mode="lines+markers", name=scope, line={"color": colour}, connectgaps=False))
        for baseline in (b for b in indicator.baselines if b.scope == scope):
            fig.add_trace(go.Scatter(x=[years[0], years[-1]], y=[float(baseline.percent)] * 2, mode="lines",
                                     name=f"{scope} baseline {baseline.label or baseline.year}: {baseline.percent} %",
                                     line={"color": colour, "dash": "dash"}))
    fig.update_layout(title=f"{indicator.title} ({indicator.better} is better)", yaxis_title="percent")
    baselines = [["baseline", *[next((f"{b.percent} % ({b.label or b.year})" for b in indicator.baselines
                                      if b.scope == scope), "-") for scope in scopes]]]
    measured = [[by[(scopes[0], year)].period if (scopes[0], year) in by else str(year),
                 *[by[(scope, year)].shown() if (scope, year) in by else "-" for scope in scopes]]
                for year in years]
    return (f"<h3>{html.escape(indicator.title)}</h3>" + figure(fig, height=360)
            + table(["period", *scopes], baselines + measured)
            + note(f"{indicator.definition} Source: {indicator.data_source or 'not stated'}."))


def experiments_section(_: ReportData, context: ReportContext) -> str:
    evidence = context.evidence
    if evidence is None or not evidence.experiments:
        return ""
    return ("<h2>Did it work? Experiments</h2>"
            + "".join(_experiment(result) for result in evidence.experiments))


def _experiment(result: ExperimentResult) -> str:
    experiment = result.experiment
    rule = experiment.assignment
    seed = f", seed {rule.seed}" if rule.seed is not None else ""
    rows = [[e.indicator_id, f"{e.effect_points:+.2f}", e.interval_text().removeprefix("95 % interval "),
             e.p_value_text().removeprefix("permutation p = "), "yes" if e.significant else "no",
             f"{e.treated_units} / {e.comparison_units}",
             f"{e.treated_follow_up_percent:.1f} %" if e.treated_follow_up_percent is not None else "-"]
            for e in result.estimates]
    fig = go.Figure(go.Scatter(
        x=[e.effect_points for e in result.estimates], y=[e.indicator_id for e in result.estimates],
        mode="markers", marker={"size": 11, "color": "#3d7dca"},
        error_x={"type": "data", "symmetric": False,
                 # No bar where the design gives no interval (the table says why).
                 "array": [e.high_points - e.effect_points if e.high_points is not None else 0
                           for e in result.estimates],
                 "arrayminus": [e.effect_points - e.low_points if e.low_points is not None else 0
                                for e in result.estimates]}))
    fig.add_vline(x=0, line_dash="dot", line_color="#8a949e")
    fig.update_layout(title="Estimated effect, percentage points, with its 95 % interval")
    left_out = f" Left out (nobody measured in a year): {', '.join(result.left_out)}." if result.left_out else ""
    return (f"<h3>{html.escape(experiment.title)}</h3>"
            + note(f"{experiment.id}: {len(experiment.units)} units, {rule.method} assignment{seed}; baseline "
                   f"{experiment.baseline_year}, follow-up {experiment.follow_up_year}; subjects from "
                   f"{result.source}.{left_out}")
            + table(["indicator", "effect (points)", "95 % interval", "permutation p", "significant",
                     "treated / comparison units", "treated, follow-up"], rows)
            + figure(fig, height=120 + 60 * len(result.estimates))
            + note("Difference in differences: the treated units' mean change from the baseline year to the "
                   "follow-up year minus the comparison units'; the interval inverts a permutation test over "
                   "the other assignments the design allows (all of them, or a sample with its Monte Carlo "
                   "error). Assumes parallel trends, an additive effect, no spill-over "
                   "(docs/indicators.md#experiments)."))
