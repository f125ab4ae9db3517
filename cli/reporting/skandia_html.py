"""The report's section for the business case as the Skandia model makes it (one
self-contained piece: `section` returns HTML the report places where it likes).

For each variant and horizon: discounted cost, savings, net present value, payback
year, and who invests and who harvests (each level's savings less the payer's cost);
then the groups with their yearly cost, split and source, the illustrative ones marked.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from cli.reporting.skandia import LEVELS, ExclusionCase, ExclusionModel
from shared.domain.currency import format_money


def _cell(text: object) -> str:
    return f"<td>{html.escape(str(text))}</td>"


def _row(cells: Sequence[object]) -> str:
    return "<tr>" + "".join(_cell(c) for c in cells) + "</tr>"


def payback_text(case: ExclusionCase, year: int | None) -> str:
    return "not within the horizon" if year is None else f"year {year} ({case.first_year + year - 1})"


def deadweight_text(case: ExclusionCase) -> str:
    parts = []
    for outcome_id, weight in sorted(case.deadweights.items()):
        if weight.measured and weight.low is not None and weight.high is not None:
            parts.append(f"{outcome_id} {float(weight.value):.0%} measured "
                         f"[{float(weight.low):.0%}, {float(weight.high):.0%}]")
        else:
            parts.append(f"{outcome_id} {float(weight.value):.0%} assumed")
    return "; ".join(parts)


def section(cases: Sequence[tuple[str, ExclusionCase | None]], model: ExclusionModel) -> str:
    headers = ["variant", "horizon", "cost", "savings", "net present value", "payback",
               *(f"net: {level}" for level in LEVELS)]
    rows = []
    for title, case in cases:
        if case is None:
            rows.append(_row([title, "-", "not comparable", "", "", "", "", "", ""]))
            continue
        for horizon in case.horizons:
            net = horizon.net_by_level(case.payer_level)
            rows.append(_row([title, f"{horizon.horizon_years} years", format_money(horizon.cost_minor, case.currency),
                              format_money(horizon.savings_minor, case.currency),
                              format_money(horizon.npv_minor, case.currency)
                              + ("" if horizon.pays_off else " (does not pay off)"),
                              payback_text(case, horizon.payback_year),
                              *(format_money(net[level], case.currency) for level in LEVELS)]))
    groups = [_row([g.title + (" (illustrative)" if g.illustrative else ""),
                    format_money(g.yearly_cost_minor, model.currency),
                    " / ".join(f"{level} {float(g.split.get(level, 0)):.0%}" for level in LEVELS), g.source])
              for g in model.groups.values()]
    deadweights = "".join(f"<li>{html.escape(title)}: {html.escape(deadweight_text(case))}</li>"
                          for title, case in cases if case is not None)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return (f"<h2>{html.escape(model.title)}: who invests, who harvests</h2>"
            f"<p class='note'>Discounted at {float(model.discount_rate):.1%} a year; savings rounded down, "
            f"costs rounded up; the {html.escape(model.payer_level)} pays. Net per level: its savings "
            "less what it pays.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p class='note'>Deadweight (outcomes that would have happened anyway):</p><ul>{deadweights}</ul>"
            "<table><thead><tr><th>group</th><th>cost per person per year</th><th>borne by</th>"
            f"<th>source</th></tr></thead><tbody>{''.join(groups)}</tbody></table>")
