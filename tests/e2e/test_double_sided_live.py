"""A double-sided PbR cohort through the live services: the new facts (benefit periods,
the municipality's referrals, a company's growth named by its CVR pseudonym) are
admitted by ingest, decided by the verifier, and the ledger holds what the pure engine
says to the øre, including the company side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.synthetic.double_sided import cohort_events
from shared.domain.contracts.loader import load_contract
from shared.domain.programmes.double_sided import load_programme
from shared.platform.processes import start_services, stop_services
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import INSTITUTION_EVENTS, in_namespace
from tests.e2e.test_pipeline import settled_state
from tests.engine_replay import REGISTRY, admitted, expected_balances, sealed
from tests.kafka_helpers import produce
from tests.servers import Servers

pytestmark = pytest.mark.e2e
CONTRACTS = [REPO_ROOT / "examples" / "contracts" / f"double-sided-pbr-{side}.yaml"
             for side in ("citizens", "companies")]


async def test_a_double_sided_cohort_reaches_the_ledger_as_the_engine_decides_it(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    programme = load_programme(REPO_ROOT / "examples" / "programmes" / "double-sided-pbr.yaml")
    contracts = [load_contract(path) for path in CONTRACTS]
    raw = [json.dumps(e).encode() for e in cohort_events(programme, contracts[0], REGISTRY, seed=2)]
    transitions = admitted(raw)
    assert len(transitions) == len(raw), "every fact of the cohort must pass admission"
    expected = expected_balances(contracts, transitions)
    # Both sides must be paid, or this test proves nothing about the company side.
    assert expected.get("receivable:jobvejen:pending", 0) > 0
    assert any(expected.get(f"receivable:{c}:pending", 0) > 0 for c in ("alsvaerket", "nordals-genbrug"))
    services = start_services({**service_env, "CONTRACT_FILES": ",".join(str(p) for p in CONTRACTS)}, tmp_path)
    try:
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name, sealed(raw))
        state = await settled_state(servers, namespace, database_url, services)
    finally:
        stop_services(services)
    assert state["balances"] == expected
    assert state["unbalanced"] == 0
