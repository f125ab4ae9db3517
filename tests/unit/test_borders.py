"""The price of exclusion across borders (cli/reporting/borders.py): the municipality that
paid for an outcome and the one that harvests its savings, money conserved, and published
only so that no tenant, knowing its own row, gets a small cell back."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from cli.reporting.borders import (
    COLUMNS,
    WITHHELD,
    BorderCase,
    BorderHorizon,
    PlaceFigures,
    border_case,
    publish,
)
from cli.reporting.data import MoneyRow, OutcomeRow, ReportData
from cli.reporting.simulate import simulate, transitions_of
from cli.reporting.skandia import ExclusionCase, ExclusionModel, HorizonCase, case_for, load_exclusion_model
from cli.synthetic.nation import generate_nation, nation_exclusion_model
from cli.synthetic.population import to_json_line, write_registry
from shared.domain.contracts.model import Contract
from shared.domain.homes import home_on
from shared.domain.indicators.feed import timelines_from_transitions
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT
from tests.unit.disclosure_algebra import Equation, determined

D = dt.date
# One group costing 1,000.00 a year per person, borne 50/20/30 by municipality, region
# and state; an outcome moves a person out of it for 2 years, none would have come anyway;
# no discounting, horizons 1 and 3 years from 2020.
MODEL: dict[str, Any] = {
    "discount_rate": "0", "horizons": [1, 3],
    "groups": {"excluded": {"title": "Excluded", "yearly_cost_minor": 100_000,
                            "split": {"municipality": "0.5", "region": "0.2", "state": "0.3"},
                            "source": "test", "illustrative": True}},
    "outcomes": {"moved-on": {"group": "excluded", "effect_years": 2, "deadweight": "0", "source": "test"}},
}


def contract(payer: str) -> Contract:
    return Contract.model_validate({
        "contract_id": f"{payer}-bonus", "version": 1, "kind": "other", "payer": payer, "currency": "DKK",
        "title": payer, "period": {"start": "2020-01-01", "end": "2099-12-31"},
        "outcomes": [{"id": "moved-on", "trigger": {"event": "enrolled"},
                      "price": {"kind": "fixed", "amount_minor": 10_000},
                      "distribution": {"kind": "direct", "payee": {"role": "previous_institution"}}}]})


def data(children: list[tuple[str, str, int, int]], payers: tuple[str, ...]) -> ReportData:
    """children: (subject, payer, amount paid in minor units, outcome year)."""
    return ReportData("test", tuple(contract(p) for p in payers),
                      tuple(OutcomeRow(f"{payer}-bonus", "moved-on", "verified", None, D(year, 6, 1), amount, subject)
                            for subject, payer, amount, year in children),
                      tuple(MoneyRow(f"{payer}-bonus", "moved-on", "inst", "payment", amount, D(year, 6, 1), subject)
                            for subject, payer, amount, year in children))


def test_the_municipality_that_paid_and_the_one_that_harvests_are_told_apart() -> None:
    # a pays for two children: s1 moved to b before its outcome, s2 stayed; b pays nothing.
    homes = {"s1": "b", "s2": "a"}
    found = border_case(data([("s1", "a", 10_000, 2020), ("s2", "a", 10_000, 2020)], ("a", "b")),
                        ExclusionModel.model_validate(MODEL), lambda subject, _: homes[subject])
    assert found is not None
    one, three = found.horizons
    by = {p.place: p for p in three.places}
    # Over 3 years (2020-2022): each outcome saves 100,000 a year in 2021 and 2022, half of
    # it the municipality's: 100,000 per child where it lives.
    assert (by["a"].paid_minor, by["a"].harvested_minor, by["a"].inflow_minor, by["a"].outflow_minor) == \
        (20_000, 100_000, 0, 100_000)
    assert (by["b"].paid_minor, by["b"].harvested_minor, by["b"].inflow_minor, by["b"].outflow_minor) == \
        (0, 100_000, 100_000, 0)
    assert (by["a"].net_minor, by["b"].net_minor) == (80_000, 100_000)
    assert dict(three.national.savings_by_level) == {"municipality": 200_000, "region": 80_000, "state": 120_000}
    # Over 1 year nothing is saved yet: a paid, nobody harvested.
    assert [(p.place, p.paid_minor, p.harvested_minor) for p in one.places] == [("a", 20_000, 0), ("b", 0, 0)]
    assert three.subjects == {"paid": {"a": 2, "b": 0}, "harvested": {"a": 1, "b": 1},
                              "inflow": {"a": 0, "b": 1}, "outflow": {"a": 1, "b": 0}}
    # Each horizon's figures are about the children within it: nobody harvested in year 1.
    assert one.subjects["harvested"] == {"a": 0, "b": 0}
    assert one.subjects["paid"] == {"a": 2, "b": 0}


def test_the_savings_follow_the_child_when_it_moves_again_after_its_outcome() -> None:
    # s1's outcome in 2020 saves in 2021 and 2022: it lives in a on 1 January 2021 and in b
    # from 2022 on; a paid for it.
    found = border_case(data([("s1", "a", 10_000, 2020)], ("a", "b")), ExclusionModel.model_validate(MODEL),
                        lambda _, day: "a" if day < D(2022, 1, 1) else "b")
    assert found is not None
    by = {p.place: p for p in found.horizons[1].places}
    assert (by["a"].harvested_minor, by["b"].harvested_minor, by["b"].inflow_minor, by["a"].outflow_minor) == \
        (50_000, 50_000, 50_000, 50_000)
    assert found.horizons[1].subjects["harvested"] == {"a": 1, "b": 1}


def test_the_running_cost_is_shared_by_what_each_payer_pays_and_a_tenant_id_maps_to_its_municipality() -> None:
    model = ExclusionModel.model_validate({**MODEL, "running_cost_yearly_minor": 30_000, "running_cost_years": 1})
    found = border_case(data([("s1", "ta", 10_000, 2020), ("s2", "tb", 20_000, 2020)], ("ta", "tb")),
                        model, lambda subject, _: "a", payer_home={"ta": "a", "tb": "b"})
    assert found is not None
    by = {p.place: p for p in found.horizons[1].places}
    assert (by["a"].paid_minor, by["b"].paid_minor) == (20_000, 40_000)  # 10,000 + 1/3 and 20,000 + 2/3
    assert (by["a"].harvested_minor, by["b"].harvested_minor, by["a"].inflow_minor, by["b"].outflow_minor) == \
        (200_000, 0, 100_000, 100_000)


PLACES = ("a", "b", "c", "d")


@st.composite
def nations(draw: st.DrawFn) -> tuple[ReportData, dict[str, tuple[str | None, int, str | None]], ExclusionModel]:
    count = draw(st.integers(0, 25))
    children = [(f"s{n}", draw(st.sampled_from(PLACES[:3])), draw(st.integers(0, 10_000_000)),
                 draw(st.integers(2019, 2026))) for n in range(count)]
    # Where each child lives: one place until a year, another from it (a move, or none).
    homes = {s: (draw(st.sampled_from((*PLACES, None))), draw(st.integers(2019, 2032)),
                 draw(st.sampled_from((*PLACES, None)))) for s, *_ in children}
    model = ExclusionModel.model_validate({
        **MODEL, "discount_rate": draw(st.sampled_from(("0", "0.035", "0.1"))),
        "running_cost_yearly_minor": draw(st.integers(0, 1_000_000)), "running_cost_years": draw(st.integers(0, 3)),
        "groups": {"excluded": {**MODEL["groups"]["excluded"], "yearly_cost_minor": draw(st.integers(0, 9_999_999)),
                                "split": {"municipality": "0.37", "region": "0.21", "state": "0.42"}}},
        "outcomes": {"moved-on": {**MODEL["outcomes"]["moved-on"], "effect_years": draw(st.integers(1, 9)),
                                  "deadweight": draw(st.sampled_from(("0", "0.333", "0.5")))}}})
    report = data(children, PLACES[:3])
    # Some payments clawed back later, in part or whole (a payer's net can reach nothing).
    clawbacks = tuple(MoneyRow(m.contract_id, m.outcome_id, m.payee, "clawback",
                               draw(st.integers(0, m.amount_minor)), D(m.occurred_on.year + draw(st.integers(0, 3)),
                                                                      12, 1), m.subject)
                      for m in report.money if draw(st.booleans()))
    return replace(report, money=report.money + clawbacks), homes, model


@settings(max_examples=150, deadline=None)
@given(nations())
def test_money_is_conserved_across_borders(
        nation: tuple[ReportData, dict[str, tuple[str | None, int, str | None]], ExclusionModel]) -> None:
    report, homes, model = nation
    found = border_case(report, model, lambda subject, day: homes[subject][0] if day.year < homes[subject][1]
                        else homes[subject][2])
    national = case_for(report, model)
    assert found is not None
    assert national is not None
    assert [h.national for h in found.horizons] == list(national.horizons)  # the national case, unchanged
    for horizon in found.horizons:
        places = horizon.places
        assert sum(p.paid_minor for p in places) == horizon.national.cost_minor
        assert sum(p.harvested_minor for p in places) == horizon.national.savings_by_level["municipality"]
        assert sum(p.inflow_minor for p in places) == sum(p.outflow_minor for p in places)
        assert all(0 <= p.inflow_minor <= p.harvested_minor for p in places)
        assert sum(p.net_minor for p in places) + sum(
            horizon.national.savings_by_level[level] for level in ("region", "state")) == horizon.national.npv_minor
    # With every child at home, nothing crosses a border.
    at_home = border_case(report, model, lambda subject, _: next(
        r.contract_id.removesuffix("-bonus") for r in report.outcomes if r.subject == subject))
    assert at_home is not None
    assert all(p.inflow_minor == p.outflow_minor == 0 for h in at_home.horizons for p in h.places)


def _case(subjects: dict[str, dict[str, int]]) -> BorderCase:
    """A case with arbitrary children per cell (the money is irrelevant to what is hidden)."""
    national = HorizonCase(4, 0, 0, {"municipality": 0, "region": 0, "state": 0}, None)
    places = tuple(PlaceFigures(p, 1, 2, 3, 4) for p in PLACES)
    everyone = max((sum(c.values()) for c in subjects.values()), default=0)
    return BorderCase(ExclusionCase("t", "DKK", 2020, 0, "municipality", {}, {}, (national,)),  # type: ignore[arg-type]
                      (BorderHorizon(4, places, national, subjects, everyone),))


def _given_back(subjects: dict[str, dict[str, int]], minimum_cell: int, *, beside_the_case: bool = False
                ) -> set[tuple[str, str, str]]:
    """Every small cell some reader, knowing its own row, computes exactly from the table;
    `beside_the_case`: also from the national business case printed beside it, whose cost
    and savings give the paid and the harvested totals, shown in the table or not."""
    published = publish(_case(subjects), minimum_cell)[0]
    rows = {r.place: r.shown for r in published.rows}
    total = rows.pop("all municipalities")
    hidden = [(c, p) for p in PLACES for c in COLUMNS if rows[p][c].startswith("suppressed")]
    found = set()
    for reader in PLACES:
        unknown = [cell for cell in hidden if cell[1] != reader]
        equations: list[Equation] = [{(c, p): 1 for p in PLACES} for c in COLUMNS
                                     if total[c] != WITHHELD or (beside_the_case and c in ("paid", "harvested"))]
        # Identities every reader knows: what leaves a municipality arrives in another; the
        # region's and the state's rows follow from the municipal savings by the split.
        equations.append({**{("inflow", p): 1 for p in PLACES}, **{("outflow", p): -1 for p in PLACES}})
        # A municipality that keeps none of what it paid for harvests only what others paid.
        equations += [{("harvested", p): 1, ("inflow", p): -1} for p in PLACES
                      if subjects["harvested"][p] == subjects["inflow"][p]]
        if published.levels["region"] != WITHHELD:
            equations.append({("harvested", p): 1 for p in PLACES})
        for column, place in determined(unknown, equations):
            if 0 < subjects[column][place] < minimum_cell:
                found.add((reader, column, place))
    return found


def _children(draw: st.DrawFn) -> dict[str, dict[str, int]]:
    """Children per cell as a real table has them: harvested = from others + kept."""
    counts = st.integers(0, 12)
    inflow = {p: draw(counts) for p in PLACES}
    kept = {p: draw(st.sampled_from((0, 0, 1, 3, 7))) for p in PLACES}
    return {"paid": {p: draw(counts) for p in PLACES}, "harvested": {p: inflow[p] + kept[p] for p in PLACES},
            "inflow": inflow, "outflow": {p: draw(counts) for p in PLACES}}


@settings(max_examples=400, deadline=None)
@given(st.composite(_children)(), st.integers(1, 6))
def test_no_tenant_knowing_its_own_row_gets_a_small_cell_back(subjects: dict[str, dict[str, int]],
                                                              minimum_cell: int) -> None:
    assert _given_back(subjects, minimum_cell) == set()
    rows = {r.place: r.shown for r in publish(_case(subjects), minimum_cell)[0].rows}
    for column in COLUMNS:
        for place in PLACES:
            if 0 < subjects[column][place] < minimum_cell:
                assert rows[place][column].startswith("suppressed"), (column, place)


def test_the_cross_border_total_is_withheld_when_either_side_must_withhold_it() -> None:
    # Inflow: one small cell among few non-empty ones, its total withheld; outflow alone
    # would show its total, which is the same number: it is withheld too.
    subjects = {"paid": dict.fromkeys(PLACES, 10), "harvested": dict.fromkeys(PLACES, 10),
                "inflow": {"a": 2, "b": 9, "c": 0, "d": 0}, "outflow": {"a": 0, "b": 0, "c": 6, "d": 5}}
    published = publish(_case(subjects), 5)[0]
    total = published.rows[-1].shown
    assert (total["inflow"], total["outflow"]) == (WITHHELD, WITHHELD)
    assert total["paid"] != WITHHELD
    assert published.levels["state"] != WITHHELD
    assert _given_back(subjects, 5) == set()
    # Without the coupling the outflow total would give a's 2 back to b (11 - its own 9);
    # even withheld, "what arrives is what leaves" leaves b one unknown (a's inflow, the
    # outflow being shown): both columns are hidden whole.
    assert [r.shown[c] for r in published.rows[:4] for c in ("inflow", "outflow")] == [
        "suppressed (too_few_subjects)", *["suppressed (complementary)"] * 7]
    assert [r.shown["paid"] for r in published.rows[:4]] == ["0.01 DKK"] * 4  # 1 minor unit each


def test_stafet_simulate_by_municipality_prints_who_paid_and_who_harvests(tmp_path: Path) -> None:
    nation = generate_nation(4, 400, 1)
    events, registry_file = tmp_path / "events.jsonl", tmp_path / "institutions.yaml"
    events.write_bytes(b"".join(to_json_line(e) + b"\n" for e in nation.events))
    write_registry(registry_file, nation.institutions)
    contract_file, model_file = tmp_path / "kommune-000.yaml", tmp_path / "exclusion.yaml"
    contract_file.write_text(yaml.safe_dump(nation.contracts[0].model_dump(mode="json")), encoding="utf-8")
    model = nation_exclusion_model(load_exclusion_model(REPO_ROOT / "examples" / "price-of-exclusion.yaml"))
    model_file.write_text(yaml.safe_dump(model.model_dump(mode="json")), encoding="utf-8")
    result = CliRunner().invoke(app, [
        "simulate", "--events", str(events), "--institutions", str(registry_file), "--contract", str(contract_file),
        "--exclusion-model", str(model_file), "--report", str(tmp_path / "report.html"), "--by-municipality"])
    assert result.exit_code == 0, result.output
    # The same figures as the pure split of the same replay, published.
    registry = InstitutionRegistry(nation.institutions)
    transitions, _ = transitions_of((to_json_line(e) for e in nation.events), registry)
    replay = simulate(nation.contracts[0].title, [nation.contracts[0]], transitions, registry)
    timelines = {t.subject: t for t in timelines_from_transitions(transitions)}
    municipality_of = {i.id: i.municipality for i in nation.institutions}
    found = border_case(replay, model, lambda s, day: home_on(timelines[s], day, municipality_of))
    assert found is not None
    thirty = {p.place: p for p in found.horizons[-1].places}
    # kommune-000 paid for its children; some of them live elsewhere after their outcome.
    assert thirty["kommune-000"].outflow_minor > 0
    assert thirty["kommune-001"].paid_minor == 0
    published = {r.place: r.shown for r in publish(found, 5)[-1].rows}
    out = result.output
    assert "by municipality" in out
    assert "harvested elsewhere" in out
    for place in ("kommune-000", "kommune-001", "all municipalities"):
        assert any(line.strip().startswith(f"{place} ") and published[place]["harvested"] in line
                   for line in out.splitlines()), place
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "by municipality: who paid, who harvests" in report
    assert f"<td>kommune-000</td><td>{published['kommune-000']['paid']}</td>" in report
