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
  live in the municipality, year by year: each year's savings fall where the child lives
  on 1 January of that year (`home_of`: the CPR register's residence facts, else the
  municipality of the child's latest registration; after the facts end, the last known),
  whoever paid;
- **from others' payments**: of that, the outcomes another municipality paid for;
- **harvested elsewhere**: the municipal share of the savings of the outcomes this
  municipality paid for, harvested by another;
- **net**: harvested less paid. The region's and the state's shares are national rows
  (the regions are not told apart).

A figure is about the children whose payments or savings fall within its horizon; each
horizon's table is decided on its own children (`publish`).

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
PUBLISHED_COLUMNS = (*COLUMNS, "net")  # as a table shows them
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
    # column -> place -> the distinct children the horizon's figure is about (for small cells)
    subjects: Mapping[str, Mapping[str, int]]
    everyone: int  # children whose savings fall within the horizon


@dataclass(frozen=True)
class BorderCase:
    case: ExclusionCase
    horizons: tuple[BorderHorizon, ...]


def _discounted(flows: list[Fraction], horizon: int, rate: Fraction) -> Fraction:
    return sum((flows[t] / (1 + rate) ** t for t in range(1, horizon + 1)), Fraction(0))


Pair = tuple[str, str]  # (the payer's municipality, the harvesting municipality)


@dataclass(frozen=True)
class _Harvests:
    municipal: dict[Pair, list[Fraction]]  # the municipal share of the savings by year t of the case, exact
    first_year_of: dict[Pair, dict[str, int]]  # child -> the first year t its savings fall to the pair


def _harvests(data: ReportData, model: ExclusionModel, home: Mapping[str, str], home_of: HomeOf,
              first_year: int, last: int, deadweights: Mapping[str, Fraction]) -> _Harvests:
    """Each verified outcome the model counts, its savings year by year to the
    municipality the child lives in on 1 January of that year (`home_of`; the last known
    home for the years after the facts end), paid for by its contract's payer."""
    payer_of = {c.contract_id: c.payer for c in data.contracts}
    groups: dict[tuple[str, str, int, tuple[str, ...]], int] = defaultdict(int)
    first_year_of: dict[Pair, dict[str, int]] = defaultdict(dict)
    for row in data.outcomes:
        effect = model.outcomes.get(row.outcome_id)
        if row.status != "verified" or effect is None:
            continue
        payer = home.get(payer_of[row.contract_id], payer_of[row.contract_id])
        start = row.occurred_on.year - first_year + 2  # an outcome saves from the next year on
        years = range(max(start, 1), min(start + effect.effect_years, last + 1))
        homes = tuple(home_of(row.subject, dt.date(first_year + t - 1, 1, 1)) or UNKNOWN_HOME for t in years)
        groups[(payer, row.outcome_id, row.occurred_on.year, homes)] += 1
        for t, harvester in zip(years, homes, strict=True):
            first_year_of[(payer, harvester)].setdefault(row.subject, t)
    without_running = model.model_copy(update={"running_cost_yearly_minor": 0})
    municipal: dict[Pair, list[Fraction]] = {}
    for (payer, outcome_id, year, homes), count in groups.items():
        _, savings = yearly_flows(without_running, {(outcome_id, year): count}, {}, first_year, last, deadweights)
        start = year - first_year + 2
        for offset, harvester in enumerate(homes):
            t = max(start, 1) + offset
            flows = municipal.setdefault((payer, harvester), [Fraction(0)] * (last + 1))
            flows[t] += savings[t]["municipality"]
    return _Harvests(municipal, dict(first_year_of))


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
    harvests = _harvests(data, model, home, home_of, case.first_year, last,
                         {o: d.value for o, d in case.deadweights.items()})
    costs = _payer_costs(data, model, home, case.first_year, last)
    places = sorted({*costs, *(p for pair in harvests.municipal for p in pair)})
    horizons = []
    for national in case.horizons:
        n = national.horizon_years
        paid = largest_remainder(national.cost_minor, {p: _discounted(c, n, case.discount_rate)
                                                       for p, c in costs.items()}) if costs else {}
        municipal = {f"{pair[0]}{PAIR}{pair[1]}": _discounted(flows, n, case.discount_rate)
                     for pair, flows in harvests.municipal.items()}
        cells = largest_remainder(national.savings_by_level.get("municipality", 0), municipal)
        by_pair = {(key.split(PAIR)[0], key.split(PAIR)[1]): amount for key, amount in cells.items()}
        subjects, everyone = _subjects(data, home, harvests, places, case.first_year, n)
        horizons.append(BorderHorizon(n, tuple(PlaceFigures(
            place, paid.get(place, 0),
            sum(a for (_, h), a in by_pair.items() if h == place),
            sum(a for (p, h), a in by_pair.items() if h == place and p != place),
            sum(a for (p, h), a in by_pair.items() if p == place and h != place)) for place in places),
            national, subjects, everyone))
    return BorderCase(case, tuple(horizons))


def _subjects(data: ReportData, home: Mapping[str, str], harvests: _Harvests, places: list[str],
              first_year: int, horizon: int) -> tuple[dict[str, dict[str, int]], int]:
    """Per column and municipality, the distinct children a horizon's figure is about
    (paid: those whose payments fall within it; the others: those whose savings of a year
    within it fall to the cell), and every child with savings within it."""
    payer_of = {c.contract_id: c.payer for c in data.contracts}
    found: dict[str, dict[str, set[str]]] = {c: defaultdict(set) for c in COLUMNS}
    for money in data.money:
        if 1 <= money.occurred_on.year - first_year + 1 <= horizon:
            found["paid"][home.get(payer_of[money.contract_id], payer_of[money.contract_id])].add(money.subject)
    everyone: set[str] = set()
    for (payer, harvester), children in harvests.first_year_of.items():
        who = {child for child, t in children.items() if t <= horizon}
        everyone |= who
        found["harvested"][harvester] |= who
        if payer != harvester:
            found["inflow"][harvester] |= who
            found["outflow"][payer] |= who
    return {column: {p: len(found[column].get(p, ())) for p in places} for column in COLUMNS}, len(everyone)


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


def _same_cells(horizon: BorderHorizon) -> set[str]:
    """The municipalities whose harvested and from-others cells are equal (no child it
    paid for lives in it, or its own share comes to nothing)."""
    subjects = horizon.subjects
    return {f.place for f in horizon.places
            if subjects["harvested"].get(f.place, 0) == subjects["inflow"].get(f.place, 0)
            or f.harvested_minor == f.inflow_minor}


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


def _leak(horizon: BorderHorizon, hidden: Mapping[str, Mapping[str, Suppression]], total_shown: Mapping[str, bool],
          same: set[str], minimum_cell: int) -> tuple[str, str, str] | None:
    """A (reader, column, place) where a reader knowing its own row computes a cell about
    fewer than `minimum_cell` children exactly, or None."""
    places = [f.place for f in horizon.places]
    identities = _identities(places, total_shown, same)
    small = [(c, p) for c in COLUMNS for p in places if 0 < horizon.subjects[c].get(p, 0) < minimum_cell]
    for reader in places:
        unknown = sorted({_variable(c, p, same) for c in COLUMNS for p in hidden[c] if p != reader})
        pinned = pinned_cells(unknown, identities)
        for column, place in small:
            if place != reader and _variable(column, place, same) in pinned:
                return reader, column, place
    return None


def _close_leaks(horizon: BorderHorizon, hidden: dict[str, dict[str, Suppression]], total_shown: dict[str, bool],
                 same: set[str], minimum_cell: int) -> None:
    """Audit the table as every reader reads it (`pinned_cells`), and while one computes a
    small cell exactly, hide one more: the smallest non-empty cell of that column at a
    third municipality; else withhold the column's total; else hide the tied columns whole
    with their totals (which leaves each reader at least two unknowns per identity)."""
    places = [f.place for f in horizon.places]
    _hide_together(hidden, same)  # one unknown is hidden only where both its cells are
    for _ in range(len(COLUMNS) * (len(places) + 1) + 1):
        leak = _leak(horizon, hidden, total_shown, same, minimum_cell)
        if leak is None:
            return
        reader, column, place = leak
        subjects = horizon.subjects[column]
        others = sorted((subjects.get(p, 0), p) for p in places
                        if p not in (reader, place) and p not in hidden[column] and subjects.get(p, 0))
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
    if _leak(horizon, hidden, total_shown, same, minimum_cell) is not None:
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
    return tuple(_publish_horizon(horizon, case.case.currency, minimum_cell) for horizon in case.horizons)


def _publish_horizon(horizon: BorderHorizon, currency: str, minimum_cell: int) -> PublishedHorizon:
    """One horizon's table (each horizon decided on the children its own figures are about)."""
    decided = {c: group_read_by_members(horizon.subjects[c], minimum_cell) for c in COLUMNS}
    hidden = {c: found for c, (found, _) in decided.items()}
    total_shown = {c: shown for c, (_, shown) in decided.items()}
    places = [f.place for f in horizon.places]
    same = _same_cells(horizon)
    crossing = total_shown["inflow"] and total_shown["outflow"]
    if places and len(same) == len(places):
        crossing = total_shown["harvested"] = crossing and total_shown["harvested"]
    total_shown["inflow"] = total_shown["outflow"] = crossing
    _hide_together(hidden, same)
    if not crossing:
        _hide_crossing(hidden, places)
        _hide_together(hidden, same)
    _close_leaks(horizon, hidden, total_shown, same, minimum_cell)
    total_shown["net"] = total_shown["paid"] and total_shown["harvested"]
    levels_shown = total_shown["harvested"] and not (0 < horizon.everyone < minimum_cell)
    if not (total_shown["paid"] and total_shown["harvested"] and levels_shown):
        # The national business case is published beside this table (`stafet report`,
        # `stafet simulate`: cli/reporting/skandia.py): its cost is the paid total, its
        # savings less cost per level give the harvested total and the region's and the
        # state's rows. A total withheld here is read there, and with it the cell it was
        # withheld for: such a horizon is not published by municipality at all.
        hidden = {c: {p: hidden[c].get(p, Suppression.COMPLEMENTARY) for p in places} for c in COLUMNS}
        total_shown = dict.fromkeys((*COLUMNS, "net"), False)
        levels_shown = False
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
    return PublishedHorizon(horizon.horizon_years, tuple(rows), levels)
