"""The price of exclusion across borders: the municipality that paid for an outcome, and
the one that harvests its savings (docs/business-case.md, "Across borders").

A child's outcome is paid for by its contract's payer (a tenant, docs/tenancy.md); the
municipal share of the savings it brings falls where the child lives afterwards. When the
child moved, the two differ: one municipality invests, another harvests. This splits the
business case as the Skandia model makes it (`cli/reporting/skandia.py`) by municipality
as well as by level, for each horizon:

- **paid**: what each payer bears, discounted: its contracts' net outcome payments, plus
  its share of the programme's running cost (in proportion to its net outcome payments
  over the case; evenly between the contracts' payers when nobody was paid anything);
- **harvested**: the municipal share of the savings of the outcomes of the children who
  live in the municipality on the outcome's day (`home_of`: the CPR register's residence
  facts, else the municipality of the child's latest registration), whoever paid;
- **from others' payments**: of that, the outcomes another municipality paid for;
- **harvested elsewhere**: the municipal share of the savings of the outcomes this
  municipality paid for, harvested by another;
- **net**: harvested less paid. The region's and the state's shares are national rows
  (the regions are not told apart).

Exact fractions throughout, then rounded so that money is conserved: the national case
(`case_for`) is computed as before (costs rounded up, savings down, its levels split by
the largest remainder), and its totals are split again by the largest remainder, the
paid column from the national cost and the municipal share from the national savings at
that level over every (payer, harvester) pair, so the municipalities' paid add up to the
national cost, harvested to the municipal level's savings, and what leaves a municipality
to what arrives in another, exactly.

Pure: the caller reads the ledger, the verifier's decisions and the children's homes
inside the clearing house (`cli/reporting/national.py`), and publishes only through
`publish` (small cells suppressed against a tenant that knows its own row).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from cli.reporting.data import ReportData
from cli.reporting.disclosure import group_read_by_members, mark, pinned_cells
from cli.reporting.skandia import (
    Deadweight,
    ExclusionCase,
    ExclusionModel,
    HorizonCase,
    case_for,
    yearly_flows,
)
from shared.domain.contracts.solidarity import largest_remainder
from shared.domain.currency import format_money
from shared.domain.indicators.compute import Suppression

UNKNOWN_HOME = "(home unknown)"
PAIR = "\t"  # joins (payer, harvester) into one key for the largest remainder
COLUMNS = ("paid", "harvested", "inflow", "outflow")
HEADINGS = {"paid": "paid", "harvested": "harvested", "inflow": "from others' payments",
            "outflow": "harvested elsewhere", "net": "net"}
WITHHELD = "withheld (would give back a suppressed cell)"
HomeOf = Callable[[str, dt.date], str | None]  # (subject, outcome day) -> municipality


@dataclass(frozen=True)
class PlaceFigures:
    """One municipality's money for one horizon, exact (never published as such)."""

    place: str
    paid_minor: int
    harvested_minor: int
    inflow_minor: int
    outflow_minor: int

    @property
    def net_minor(self) -> int:
        return self.harvested_minor - self.paid_minor

    def of(self, column: str) -> int:
        return {"paid": self.paid_minor, "harvested": self.harvested_minor, "inflow": self.inflow_minor,
                "outflow": self.outflow_minor, "net": self.net_minor}[column]


@dataclass(frozen=True)
class BorderHorizon:
    horizon_years: int
    places: tuple[PlaceFigures, ...]
    national: HorizonCase  # the whole case: its cost and savings by level are the totals split here


@dataclass(frozen=True)
class BorderCase:
    case: ExclusionCase
    horizons: tuple[BorderHorizon, ...]
    # column -> place -> the distinct children the figure is about (for small cells)
    subjects: Mapping[str, Mapping[str, int]]
    everyone: int  # children with a verified outcome the model counts savings for


def _discounted(flows: list[Fraction], horizon: int, rate: Fraction) -> Fraction:
    return sum((flows[t] / (1 + rate) ** t for t in range(1, horizon + 1)), Fraction(0))


def _pair_outcomes(data: ReportData, model: ExclusionModel, home: Mapping[str, str], home_of: HomeOf
                   ) -> tuple[dict[tuple[str, str], dict[tuple[str, int], int]], dict[tuple[str, str], set[str]]]:
    """Verified outcomes the model counts, per (payer's home, child's home), and the
    children of each pair."""
    payer_of = {c.contract_id: c.payer for c in data.contracts}
    outcomes: dict[tuple[str, str], dict[tuple[str, int], int]] = defaultdict(dict)
    children: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in data.outcomes:
        if row.status != "verified" or row.outcome_id not in model.outcomes:
            continue
        payer = payer_of[row.contract_id]
        pair = (home.get(payer, payer), home_of(row.subject, row.occurred_on) or UNKNOWN_HOME)
        key = (row.outcome_id, row.occurred_on.year)
        outcomes[pair][key] = outcomes[pair].get(key, 0) + 1
        children[pair].add(row.subject)
    return outcomes, children


def _payer_costs(data: ReportData, model: ExclusionModel, home: Mapping[str, str], first_year: int,
                 last: int) -> dict[str, list[Fraction]]:
    """Each payer's yearly cost, undiscounted: its net outcome payments and its share of
    the running cost."""
    payer_of = {c.contract_id: c.payer for c in data.contracts}
    payers = sorted({home.get(c.payer, c.payer) for c in data.contracts})
    payments: dict[str, dict[int, int]] = {p: {} for p in payers}
    for money in data.money:
        payer = home.get(payer_of[money.contract_id], payer_of[money.contract_id])
        signed = money.amount_minor if money.kind == "payment" else -money.amount_minor
        payments[payer][money.occurred_on.year] = payments[payer].get(money.occurred_on.year, 0) + signed
    weights = {p: Fraction(max(0, sum(payments[p].values()))) for p in payers}
    whole = sum(weights.values(), Fraction(0))
    shares = {p: w / whole for p, w in weights.items()} if whole else {p: Fraction(1, len(payers)) for p in payers}
    without_running = model.model_copy(update={"running_cost_yearly_minor": 0})
    costs = {}
    for payer in payers:
        cost, _ = yearly_flows(without_running, {}, payments[payer], first_year, last, {})
        for t in range(1, min(model.running_cost_years, last) + 1):
            cost[t] += model.running_cost_yearly_minor * shares[payer]
        costs[payer] = cost
    return costs


def border_case(data: ReportData, model: ExclusionModel, home_of: HomeOf,
                payer_home: Mapping[str, str] | None = None,
                measured: Mapping[str, Deadweight] | None = None) -> BorderCase | None:
    """The case for `data` split by municipality: who paid, who harvests. `payer_home`
    maps a contract's payer (a tenant id) to its municipality (default: the id itself).
    None when the case cannot be made (`case_for`: another currency)."""
    case = case_for(data, model, measured)
    if case is None:
        return None
    home = dict(payer_home or {})
    last = max(model.horizons)
    deadweights = {o: d.value for o, d in case.deadweights.items()}
    outcomes, children = _pair_outcomes(data, model, home, home_of)
    without_running = model.model_copy(update={"running_cost_yearly_minor": 0})
    savings = {pair: yearly_flows(without_running, found, {}, case.first_year, last, deadweights)[1]
               for pair, found in outcomes.items()}
    costs = _payer_costs(data, model, home, case.first_year, last)
    places = sorted({*costs, *(p for pair in outcomes for p in pair)})
    horizons = []
    for national in case.horizons:
        n = national.horizon_years
        paid = largest_remainder(national.cost_minor, {p: _discounted(c, n, case.discount_rate)
                                                       for p, c in costs.items()}) if costs else {}
        municipal = {f"{pair[0]}{PAIR}{pair[1]}": _discounted([y["municipality"] for y in flows], n,
                                                              case.discount_rate)
                     for pair, flows in savings.items()}
        cells = largest_remainder(national.savings_by_level.get("municipality", 0), municipal)
        by_pair = {(key.split(PAIR)[0], key.split(PAIR)[1]): amount for key, amount in cells.items()}
        horizons.append(BorderHorizon(n, tuple(PlaceFigures(
            place, paid.get(place, 0),
            sum(a for (_, h), a in by_pair.items() if h == place),
            sum(a for (p, h), a in by_pair.items() if h == place and p != place),
            sum(a for (p, h), a in by_pair.items() if p == place and h != place)) for place in places), national))
    return BorderCase(case, tuple(horizons), _subjects(data, home, children, places),
                      len(set().union(*children.values())) if children else 0)


def _subjects(data: ReportData, home: Mapping[str, str], children: Mapping[tuple[str, str], set[str]],
              places: list[str]) -> dict[str, dict[str, int]]:
    payer_of = {c.contract_id: c.payer for c in data.contracts}
    paid: dict[str, set[str]] = defaultdict(set)
    for money in data.money:
        paid[home.get(payer_of[money.contract_id], payer_of[money.contract_id])].add(money.subject)
    found: dict[str, dict[str, set[str]]] = {c: defaultdict(set) for c in COLUMNS}
    found["paid"] = paid
    for (payer, harvester), who in children.items():
        found["harvested"][harvester] |= who
        if payer != harvester:
            found["inflow"][harvester] |= who
            found["outflow"][payer] |= who
    return {column: {p: len(found[column].get(p, ())) for p in places} for column in COLUMNS}


def _hide_crossing(hidden: dict[str, dict[str, Suppression]], places: list[str]) -> None:
    """With the cross-border totals withheld, every reader still knows that what arrives
    equals what leaves (one equation over both columns): a reader left with exactly one
    hidden cell of either column besides its own row would get it back. Then both columns
    are hidden whole (with two places or more, each reader has at least two unknowns in
    that one equation, and no single one follows)."""
    hidden_cells = [(c, p) for c in ("inflow", "outflow") for p in hidden[c]]
    if any(sum(1 for _, p in hidden_cells if p != reader) == 1 for reader in places):
        for column in ("inflow", "outflow"):
            for place in places:
                hidden[column].setdefault(place, Suppression.COMPLEMENTARY)


def _same_cells(case: BorderCase) -> set[str]:
    """The municipalities whose harvested and from-others cells are equal (no child it
    paid for lives in it, or its own share is nothing over some horizon)."""
    kept_children = {p: case.subjects["harvested"].get(p, 0) - case.subjects["inflow"].get(p, 0)
                     for p in case.subjects["harvested"]}
    same = {p for p, n in kept_children.items() if n == 0}
    for horizon in case.horizons:
        same |= {f.place for f in horizon.places if f.harvested_minor == f.inflow_minor}
    return same


LINKED = ("harvested", "inflow", "outflow")  # the columns the identities tie together


def _variable(column: str, place: str, same: set[str]) -> tuple[str, str]:
    """A cell as a reader's unknown: a municipality's harvested and from-others cells are
    one where they are equal."""
    return ("harvested", place) if column == "inflow" and place in same else (column, place)


def _identities(places: list[str], total_shown: Mapping[str, bool], same: set[str]) -> list[dict[object, int]]:
    """What every reader knows holds: each shown total, and what arrives = what leaves."""
    found: list[dict[object, int]] = []
    for column in COLUMNS:
        if total_shown[column]:
            equation: dict[object, int] = defaultdict(int)
            for place in places:
                equation[_variable(column, place, same)] += 1
            found.append(equation)
    crossing: dict[object, int] = defaultdict(int)
    for place in places:
        crossing[_variable("inflow", place, same)] += 1
        crossing[_variable("outflow", place, same)] -= 1
    found.append(crossing)
    return found


def _leak(case: BorderCase, hidden: Mapping[str, Mapping[str, Suppression]], total_shown: Mapping[str, bool],
          same: set[str], minimum_cell: int) -> tuple[str, str, str] | None:
    """A (reader, column, place) where a reader knowing its own row computes a cell about
    fewer than `minimum_cell` children exactly, or None."""
    places = [f.place for f in case.horizons[0].places] if case.horizons else []
    identities = _identities(places, total_shown, same)
    small = [(c, p) for c in COLUMNS for p in places if 0 < case.subjects[c].get(p, 0) < minimum_cell]
    for reader in places:
        unknown = sorted({_variable(c, p, same) for c in COLUMNS for p in hidden[c] if p != reader})
        pinned = pinned_cells(unknown, identities)
        for column, place in small:
            if place != reader and _variable(column, place, same) in pinned:
                return reader, column, place
    return None


def _close_leaks(case: BorderCase, hidden: dict[str, dict[str, Suppression]], total_shown: dict[str, bool],
                 same: set[str], minimum_cell: int) -> None:
    """Audit the table as every reader reads it (`pinned_cells`), and while one computes a
    small cell exactly, hide one more: the smallest non-empty cell of that column at a
    third municipality; else withhold the column's total; else hide the tied columns whole
    with their totals (which leaves each reader at least two unknowns per identity)."""
    places = [f.place for f in case.horizons[0].places] if case.horizons else []
    _hide_together(hidden, same)  # one unknown is hidden only where both its cells are
    for _ in range(len(COLUMNS) * (len(places) + 1) + 1):
        leak = _leak(case, hidden, total_shown, same, minimum_cell)
        if leak is None:
            return
        reader, column, place = leak
        others = sorted((case.subjects[column].get(p, 0), p) for p in places
                        if p not in (reader, place) and p not in hidden[column] and case.subjects[column].get(p, 0))
        if others:
            hidden[column][others[0][1]] = Suppression.COMPLEMENTARY
        elif total_shown[column]:
            tied = ("inflow", "outflow", "harvested") if len(same) == len(places) else \
                ("inflow", "outflow") if column in ("inflow", "outflow") else (column,)
            for each in tied:
                total_shown[each] = False
        else:
            for each in LINKED:
                total_shown[each] = False
                for p in places:
                    hidden[each].setdefault(p, Suppression.COMPLEMENTARY)
        _hide_together(hidden, same)
    if _leak(case, hidden, total_shown, same, minimum_cell) is not None:
        raise RuntimeError("the national table still gives a small cell back: a defect in borders.publish")


def _hide_together(hidden: dict[str, dict[str, Suppression]], same: set[str]) -> None:
    for place in same:
        if place in hidden["harvested"] or place in hidden["inflow"]:
            hidden["harvested"].setdefault(place, Suppression.COMPLEMENTARY)
            hidden["inflow"].setdefault(place, Suppression.COMPLEMENTARY)


@dataclass(frozen=True)
class PublishedRow:
    place: str
    shown: Mapping[str, str]  # column (and "net") -> the figure, or its suppression mark


@dataclass(frozen=True)
class PublishedHorizon:
    horizon_years: int
    rows: tuple[PublishedRow, ...]  # per municipality, then "all municipalities"
    levels: Mapping[str, str]  # region, state: their share of the savings, or why not shown


def publish(case: BorderCase, minimum_cell: int) -> tuple[PublishedHorizon, ...]:
    """What may leave the clearing house: each column a group read by its members (a
    tenant knows its own row), so a column with a hidden cell hides at least three or
    withholds its total (`group_read_by_members`). Then the identities a reader knows:

    - what arrives from others and what leaves for others add up to the same national
      total, so that total is shown only when both columns allow it, and where even then
      a reader would be left with one unknown cell of the two, both are hidden whole
      (`_hide_crossing`);
    - where a municipality keeps none of the savings it paid for (it paid for no child
      living in it, e.g. it paid nothing), its harvested equals what it got from others'
      payments: the two cells are one, hidden together (`_same_cells`), and where that
      holds for every municipality the harvested total is the cross-border total;
    - the region's and the state's rows follow from the municipal savings by the groups'
      splits, so they are shown only with the harvested total.

    Those are first cuts; `_close_leaks` then audits the table as each reader reads it
    (exact linear algebra over the shown totals and the identities, its own row known) and
    hides more until no cell about fewer than `minimum_cell` children can be computed.
    Net is shown where both paid and harvested are."""
    decided = {c: group_read_by_members(case.subjects[c], minimum_cell) for c in COLUMNS}
    hidden = {c: found for c, (found, _) in decided.items()}
    total_shown = {c: shown for c, (_, shown) in decided.items()}
    places = [f.place for f in case.horizons[0].places] if case.horizons else []
    same = _same_cells(case)
    crossing = total_shown["inflow"] and total_shown["outflow"]
    if places and len(same) == len(places):
        crossing = total_shown["harvested"] = crossing and total_shown["harvested"]
    total_shown["inflow"] = total_shown["outflow"] = crossing
    _hide_together(hidden, same)
    if not crossing:
        _hide_crossing(hidden, places)
        _hide_together(hidden, same)
    _close_leaks(case, hidden, total_shown, same, minimum_cell)
    total_shown["net"] = total_shown["paid"] and total_shown["harvested"]
    levels_shown = total_shown["harvested"] and not (0 < case.everyone < minimum_cell)
    currency = case.case.currency
    published = []
    for horizon in case.horizons:
        rows = []
        for figures in horizon.places:
            shown = {c: mark(hidden[c][figures.place]) if figures.place in hidden[c] else
                     format_money(figures.of(c), currency) for c in COLUMNS}
            both = figures.place not in hidden["paid"] and figures.place not in hidden["harvested"]
            shown["net"] = format_money(figures.net_minor, currency) if both else "suppressed"
            rows.append(PublishedRow(figures.place, shown))
        totals = {c: sum(f.of(c) for f in horizon.places) for c in (*COLUMNS, "net")}
        rows.append(PublishedRow("all municipalities", {
            c: format_money(totals[c], currency) if total_shown[c] else WITHHELD for c in (*COLUMNS, "net")}))
        levels = {level: format_money(horizon.national.savings_by_level.get(level, 0), currency)
                  if levels_shown else WITHHELD for level in ("region", "state")}
        published.append(PublishedHorizon(horizon.horizon_years, tuple(rows), levels))
    return tuple(published)
