"""`stafet demo --nation` on the real servers: a small nation, its municipalities tenants
of one clearing house, each paying exactly what the pure engine computes for the
children its contract names, across borders; another tenant's finance key refused."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.demo import EXCLUSION_MODEL
from cli.demo_nation import NATION_INDICATOR, NATION_INDICATOR_YEAR, NATION_WATERMARK, nation_pipeline, print_nation
from cli.indicators import SONDERBORG
from cli.main import app
from cli.reporting.skandia import load_exclusion_model
from cli.synthetic.nation import generate_nation, nation_exclusion_model
from cli.synthetic.population import to_json_line
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import RejectionReason
from shared.domain.decisions import decide_all
from shared.domain.events import OutcomeStatus, Transition
from shared.domain.homes import home_on
from shared.domain.indicators.compute import tally_by
from shared.domain.indicators.feed import timelines_from_transitions
from shared.domain.indicators.loader import load_indicators
from shared.domain.indicators.model import Indicator
from shared.domain.institutions import InstitutionRegistry
from shared.domain.ledger.postings import budget_account
from tests.engine_replay import admitted, directory_of, expected_balances
from tests.servers import Servers

pytestmark = pytest.mark.e2e


def indicator_by_id(indicator_id: str) -> Indicator:
    found = load_indicators(SONDERBORG).by_id(indicator_id)
    assert found is not None
    return found
MUNICIPALITIES, CHILDREN, SEED = 3, 60, 5


async def test_a_small_nation_pays_each_tenants_children_across_borders_as_the_pure_engine_does(
        servers: Servers, namespace: str, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The business case with no discounting and no running cost: each tenant's "paid" is
    # then exactly what it owes in the ledger.
    model = nation_exclusion_model(load_exclusion_model(EXCLUSION_MODEL), discount_rate="0",
                                   running_cost_yearly_minor=0)
    result = await nation_pipeline(servers.bootstrap_servers, database_url, namespace, tmp_path,
                                   municipalities=MUNICIPALITIES, children=CHILDREN, seed=SEED, show=False,
                                   exclusion=model)
    nation = generate_nation(MUNICIPALITIES, CHILDREN, SEED)
    registry = InstitutionRegistry(nation.institutions)
    expected = expected_balances(list(nation.contracts), admitted([to_json_line(e) for e in nation.events], registry),
                                 today=NATION_WATERMARK, directory=directory_of(registry))
    totals = {t.tenant: t for t in result.totals}
    assert set(totals) == set(nation.municipalities)
    for town in nation.municipalities:
        owed = -expected.get(budget_account(town, f"{town}-next-stage"), 0)
        assert totals[town].owed_minor == owed, town
        assert totals[town].paid_minor == owed, town  # its own finance office paid all of it
        assert owed > 0, f"{town} pays nothing: the nation proves nothing about it"
    assert sum(t.cross_border for t in result.totals) > 0, "no child crossed a border"
    assert result.crossing is not None
    assert result.crossing.payee_municipality != result.crossing.payer
    assert result.foreign_attempt is not None
    assert result.foreign_settlement_applied is False
    print_nation(result)
    out = capsys.readouterr().out
    assert "A cross-border line: " in out
    assert "refused (dead letter foreign_tenant_settlement)" in out
    assert out.count("kommune-") >= MUNICIPALITIES
    # National figures: compared across tenants inside the clearing house, each count what
    # the pure engine decides, published only under the disclosure rule.
    streams: dict[str, list[Transition]] = defaultdict(list)
    for transition in admitted([to_json_line(e) for e in nation.events], registry):
        streams[transition.subject].append(transition)
    effects = decide_all(ContractBook.of(list(nation.contracts)).in_force(), streams, NATION_WATERMARK,
                         directory_of(registry))
    national = {row.tenant: row for row in result.national}
    assert set(national) == {*nation.municipalities, "all tenants"}
    for town in nation.municipalities:
        mine = [(subject, d) for subject, e in effects.items() for d in e.decisions
                if d.contract_id == f"{town}-next-stage" and d.reason != RejectionReason.NOT_ELIGIBLE]
        crossing = {i.subject for e in effects.values() for i in e.instructions
                    if i.payer == town and nation.municipality_of(i.payee) != town}
        assert dict(national[town].counts) == {
            "children": len({s for s, _ in mine}),
            "verified": len({s for s, d in mine if d.status == OutcomeStatus.VERIFIED}),
            "cross_border": len(crossing)}, town
        assert national[town].shown["children"] == f"{national[town].counts['children']:,}"  # 60 children: all shown
    assert national["all tenants"].counts["children"] == CHILDREN
    # The price of exclusion across borders, computed inside the clearing house: each
    # tenant paid what its ledger owes, the municipal savings add up to the national case's,
    # and what leaves one municipality arrives in another.
    assert result.figures is not None
    exact = result.figures.exact
    assert exact is not None
    thirty = exact.horizons[-1]
    assert {p.place: p.paid_minor for p in thirty.places} == {t: totals[t].owed_minor for t in nation.municipalities}
    assert sum(p.harvested_minor for p in thirty.places) == thirty.national.savings_by_level["municipality"] > 0
    assert sum(p.inflow_minor for p in thirty.places) == sum(p.outflow_minor for p in thirty.places) > 0
    assert "harvested elsewhere" in out
    # The indicator per tenant: the children living in each municipality, counted from the
    # live store as the pure fold counts them.
    timelines = timelines_from_transitions(admitted([to_json_line(e) for e in nation.events], registry))
    [comparison] = result.figures.indicators
    municipality_of = {i.id: i.municipality for i in nation.institutions}
    expected_rows = tally_by(indicator_by_id(NATION_INDICATOR), timelines, NATION_INDICATOR_YEAR,
                             lambda t, day: home_on(t, day, municipality_of))
    assert {r.tenant: r.counts for r in comparison.rows if r.tenant != "all tenants"} == {
        t: expected_rows.get(t, (0, 0)) for t in nation.municipalities}
    assert sum(d for _, d in expected_rows.values()) > 0
    # The same through `stafet national` on the live stack, with the nation's tenants and
    # institutions: the published figures, not the exact ones.
    model_file = tmp_path / "exclusion.yaml"
    model_file.write_text(yaml.safe_dump(model.model_dump(mode="json")), encoding="utf-8")
    env = {"DATABASE_URL": database_url, "TENANTS_FILE": str(tmp_path / "tenants.yaml"),
           "INSTITUTIONS_FILE": str(tmp_path / "institutions.yaml")}
    # The command runs its own event loop: off this test's.
    printed = await asyncio.to_thread(CliRunner().invoke, app, ["national", "exclusion", "--exclusion-model",
                                                                str(model_file)], env=env)
    assert printed.exit_code == 0, printed.output
    assert result.figures.exclusion is not None
    for row in result.figures.exclusion[-1].rows:
        assert any(line.strip().startswith(f"{row.place} ")
                   and row.shown["paid"] in line and row.shown["harvested"] in line
                   for line in printed.output.splitlines()), row.place
    printed = await asyncio.to_thread(CliRunner().invoke, app, ["national", "indicators", "--year",
                                                                str(NATION_INDICATOR_YEAR)], env=env)
    assert printed.exit_code == 0, printed.output
    for measured in comparison.rows:
        assert any(line.strip().startswith(f"{measured.tenant} ") and line.rstrip().endswith(measured.shown)
                   for line in printed.output.splitlines()), measured.tenant
    # And in the HTML report: with TENANTS_FILE, `stafet report` adds the same table.
    report = tmp_path / "report.html"
    printed = await asyncio.to_thread(CliRunner().invoke, app, ["report", "--out", str(report), "--exclusion-model",
                                                                str(model_file), "--indicators", str(SONDERBORG)],
                                      env=env)
    assert printed.exit_code == 0, printed.output
    page = report.read_text(encoding="utf-8")
    assert "by municipality: who paid, who harvests" in page
    for row in result.figures.exclusion[-1].rows[:-1]:
        assert f"<td>{row.place}</td><td>{row.shown['paid']}</td><td>{row.shown['harvested']}</td>" in page
    per_tenant = page[page.index("<h2>Indicators per tenant</h2>"):]
    assert all(f"<td>{town}</td>" in per_tenant for town in nation.municipalities)
