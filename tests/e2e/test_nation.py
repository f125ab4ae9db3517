"""`stafet demo --nation` on the real servers: a small nation, its municipalities tenants
of one clearing house, each paying exactly what the pure engine computes for the
children its contract names, across borders; another tenant's finance key refused."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from cli.demo_nation import NATION_WATERMARK, nation_pipeline, print_nation
from cli.synthetic.nation import generate_nation
from cli.synthetic.population import to_json_line
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import RejectionReason
from shared.domain.decisions import decide_all
from shared.domain.events import OutcomeStatus, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.ledger.postings import budget_account
from tests.engine_replay import admitted, directory_of, expected_balances
from tests.servers import Servers

pytestmark = pytest.mark.e2e
MUNICIPALITIES, CHILDREN, SEED = 3, 60, 5


async def test_a_small_nation_pays_each_tenants_children_across_borders_as_the_pure_engine_does(
        servers: Servers, namespace: str, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    result = await nation_pipeline(servers.bootstrap_servers, database_url, namespace, tmp_path,
                                   municipalities=MUNICIPALITIES, children=CHILDREN, seed=SEED, show=False)
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
