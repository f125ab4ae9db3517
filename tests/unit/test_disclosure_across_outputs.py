"""No published figure gives a suppressed cell back (issue 30). With a published baseline
of 82.5 % and the area at 9 of 10, the indicator table suppresses the area's cell (one
pupil failed), but the indicator contract's payment, 18,750,000 øre at 2,500,000 a point,
is exactly 90.0 %. An attacker here takes every combination of the published outputs
(the indicator table, the contracts' rows, the institutions' totals, the contract's
public terms) and tries to compute each suppressed cell; it does on the raw figures
(so it can fail) and finds nothing in what the report and the demo publish."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

from cli.reporting.data import MoneyRow, OutcomeRow, ReportData, summarise
from cli.reporting.disclosure import publishable, revealing_payments
from cli.reporting.html import contract_cells, shown_institutions
from shared.domain.contracts.indicator_outcomes import AREA, Cell, cell_name, decide_indicator
from shared.domain.contracts.loader import parse_contract
from shared.domain.contracts.model import Contract, IndicatorOutcome
from shared.domain.indicators.compute import protect
from shared.platform.settings import REPO_ROOT

MINIMUM_CELL = 5
EXAMPLE = (REPO_ROOT / "examples" / "contracts" / "housing-area-indicator.yaml").read_text(encoding="utf-8")
# The case: the agreement's published baseline, no comparison population.
PUBLISHED_BASELINE = EXAMPLE.replace("    comparison: {name: rest-of-municipality}\n", "") \
    .replace("baseline: {year: 2019}", 'baseline: {year: 2019, percent: "82.5"}')
SCHOOL, DAYCARE = "kommune-000-primary-school-0", "kommune-000-daycare-0"
BONUS = parse_contract("""contract_id: per-pupil
version: 1
title: A per-pupil bonus to the same institutions
payer: sonderborg-kommune
currency: DKK
period: {start: 2019-01-01, end: 2026-12-31}
outcomes:
  - id: done
    trigger: {event: education_completed}
    price: {kind: fixed, amount_minor: 500000}
    distribution: {kind: direct, payee: {role: institution, institution: kommune-000-primary-school-0}}
""")


def scenario(contract_text: str, cells: Mapping[str, Cell]) -> tuple[Contract, ReportData]:
    contract = parse_contract(contract_text)
    (outcome,) = contract.indicator_outcomes
    decision = decide_indicator(contract, outcome, cells)
    day = dt.date(2023, 3, 31)
    pupils = [f"k1:{n:064x}" for n in range(12)]
    outcomes = [OutcomeRow(contract.contract_id, outcome.id, decision.status.value,
                           decision.reason.value if decision.reason else None, day, decision.owed_minor,
                           decision.subject),
                *(OutcomeRow("per-pupil", "done", "verified", None, day, 500000, p) for p in pupils)]
    money = [*(MoneyRow(contract.contract_id, outcome.id, p.payee, "payment", p.amount_minor, day, decision.subject)
               for p in decision.payees),
             *(MoneyRow("per-pupil", "done", SCHOOL, "payment", 500000, day, p) for p in pupils)]
    return contract, ReportData("t", (contract, BONUS), tuple(outcomes), tuple(money))


def published_outputs(contract: Contract, data: ReportData, cells: Mapping[str, Cell]) -> dict[str, object]:
    """Everything the publications show, as a reader would read it."""
    (outcome,) = contract.indicator_outcomes
    table = {name: protect(outcome.indicator.id, name, 0, "", c.numerator, c.denominator, MINIMUM_CELL)
             for name, c in cells.items()}
    rows = {s.contract_id: contract_cells(s, MINIMUM_CELL) for s in summarise(data)}
    allowed, hidden = shown_institutions(data, MINIMUM_CELL)
    return {"indicator table": table, "contract rows": rows,
            "institution totals": (allowed, hidden), "contract terms": contract}


def amount_of(text: str) -> int | None:
    """A shown money figure ("187,500.00 DKK") in minor units, or None if not a number."""
    figure = text.removesuffix(" DKK").replace(",", "")
    try:
        return int(Decimal(figure) * 100)
    except ArithmeticError:
        return None


def payments_derivable(outputs: Mapping[str, object], contract_id: str) -> set[int]:
    """The indicator contract's payment, from whatever of the outputs a reader holds."""
    found: set[int] = set()
    rows = outputs.get("contract rows")
    if isinstance(rows, dict) and contract_id in rows:
        paid = amount_of(rows[contract_id]["paid (net)"])
        if paid is not None:
            found.add(paid)
    totals = outputs.get("institution totals")
    if isinstance(rows, dict) and isinstance(totals, tuple) and totals[1] == 0:
        # Every institution's total shown: their sum less the other contracts' rows.
        others = [amount_of(r["paid (net)"]) for c, r in rows.items() if c != contract_id]
        if all(o is not None for o in others):
            found.add(sum(a for _, _, a in totals[0]) - sum(o for o in others if o is not None))
    return {f for f in found if f > 0}


def recovered(outputs: Mapping[str, object]) -> dict[str, Fraction]:
    """Suppressed cells whose value the outputs give to within a tenth of a point."""
    terms = outputs.get("contract terms")
    table = outputs.get("indicator table")
    if not isinstance(terms, Contract) or not isinstance(table, dict):
        return {}
    outcome: IndicatorOutcome = terms.indicator_outcomes[0]
    if outcome.baseline.percent is None:
        return {}  # a change against measured years: one equation, two unknowns
    found = {}
    for paid in payments_derivable(outputs, terms.contract_id):
        # Rounded down: the improvement lies in [paid, paid + 1) / price per point.
        low = Fraction(paid, outcome.price_per_point_minor)
        high = Fraction(paid + 1, outcome.price_per_point_minor)
        name = cell_name(AREA, outcome.year)
        if high - low <= Fraction(1, 10) and table[name].suppressed is not None:
            found[name] = Fraction(outcome.baseline.percent) + low
    return found


def every_combination(outputs: Mapping[str, object]) -> list[dict[str, object]]:
    names = sorted(outputs)
    return [{n: outputs[n] for n in chosen} for size in range(1, len(names) + 1)
            for chosen in itertools.combinations(names, size)]


CELLS = {"area:2022": Cell(9, 10)}


def test_the_raw_figures_give_the_suppressed_cell_back_so_the_attacker_works() -> None:
    contract, data = scenario(PUBLISHED_BASELINE, CELLS)
    assert sum(m.amount_minor for m in data.money if m.contract_id == contract.contract_id) == 18_750_000
    outputs = published_outputs(contract, data, CELLS)
    assert outputs["indicator table"]["area:2022"].suppressed is not None  # type: ignore[index]
    assert any(recovered(c) == {"area:2022": Fraction(90)} for c in every_combination(outputs))


def test_no_combination_of_the_published_outputs_gives_a_suppressed_cell_back() -> None:
    contract, raw = scenario(PUBLISHED_BASELINE, CELLS)
    withheld = revealing_payments([contract], {(contract.contract_id, "exam-improvement"): CELLS}, MINIMUM_CELL)
    assert [(w.cell, w.reason.value) for w in withheld] == [("area:2022", "too_few_outside_numerator")]
    data = publishable(raw, withheld)
    outputs = published_outputs(contract, data, CELLS)
    assert [recovered(c) for c in every_combination(outputs) if recovered(c)] == []
    # What is shown instead: the mark, the reason, and the other contract's money intact.
    row = outputs["contract rows"][contract.contract_id]  # type: ignore[index]
    assert row["paid (net)"] == "suppressed (reveals_suppressed_cell)"
    assert row["budget left"] == "suppressed (reveals_suppressed_cell)"
    assert "area:2022" in data.withheld[contract.contract_id]
    assert sum(m.amount_minor for m in data.money) == 12 * 500_000


def test_a_payment_on_cells_the_table_shows_is_published_unchanged() -> None:
    cells = {"area:2022": Cell(18, 20 + 5)}  # 72 %: 18 in, 7 out, 25 in all
    text = PUBLISHED_BASELINE.replace('percent: "82.5"', 'percent: "60"')
    contract, raw = scenario(text, cells)
    withheld = revealing_payments([contract], {(contract.contract_id, "exam-improvement"): cells}, MINIMUM_CELL)
    assert withheld == ()
    assert publishable(raw, withheld) == raw
