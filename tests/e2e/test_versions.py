"""A second contract version applied to a live verifier mid-stream: the ledger ends up
exactly where the pure engine puts it with the final book (no outcome paid twice, the
repriced ones moved by the difference, the total cap one budget across versions)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from shared.domain.contracts.loader import load_contract, parse_contract
from shared.domain.contracts.model import Contract
from shared.domain.ledger.postings import budget_account
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import CONTRACTS, in_namespace
from tests.e2e.test_verifier import (
    CATCH_UP_TIMEOUT_S,
    COHORT_DIRECTORY,
    cohort,
    net_balances,
    publish_transitions,
    published_instructions,
    wait_caught_up,
)
from tests.engine_replay import expected_balances
from tests.kafka_helpers import produce
from tests.servers import Servers

pytestmark = pytest.mark.e2e
EXAMPLES = REPO_ROOT / "examples" / "contracts"
SIB_CAP_MINOR = 30_000_000  # five completions at DKK 60,000: the cohort completes more


def sib(version: int, price_minor: int, effective_from: str | None = None) -> str:
    text = (EXAMPLES / "sib-youth-education.yaml").read_text(encoding="utf-8")
    text = text.replace("version: 1", f"version: {version}").replace(
        "amount_minor: 6000000", f"amount_minor: {price_minor}").replace(
        "total_minor: 240000000", f"total_minor: {SIB_CAP_MINOR}")
    return text + (f"effective_from: {effective_from}\n" if effective_from else "")


def mobility_v2() -> Contract:
    text = (EXAMPLES / "mobility-bonus.yaml").read_text(encoding="utf-8")
    return parse_contract(text.replace("version: 1", "version: 2").replace("amount_minor: 4000000", "amount_minor: 4400000")
                          + "effective_from: 2021-01-01\n")


async def applied(database_url: str, contract: Contract) -> bool:
    connection = await asyncpg.connect(database_url)
    try:
        return bool(await connection.fetchval(
            "SELECT count(*) FROM verifier_contracts WHERE contract_id = $1 AND version = $2",
            contract.contract_id, contract.version))
    finally:
        await connection.close()


async def test_a_second_version_applied_mid_stream_pays_what_the_final_book_says_and_nothing_twice(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    from cli.synthetic.population import write_registry
    from tests.e2e.test_verifier import REGISTRY

    registry = tmp_path / "institutions.yaml"
    write_registry(registry, REGISTRY.all())
    v1_file = tmp_path / "sib-v1.yaml"
    v1_file.write_text(sib(1, 6_000_000), encoding="utf-8")
    env = {**service_env, "CONTRACT_FILES": f"{v1_file},{EXAMPLES / 'mobility-bonus.yaml'}",
           "BATCH_MAX_RECORDS": "20", "INSTITUTIONS_FILE": str(registry)}
    v2s = [parse_contract(sib(2, 7_000_000, "2021-06-01")), mobility_v2()]
    book = [load_contract(v1_file), load_contract(EXAMPLES / "mobility-bonus.yaml"), *v2s]
    transitions = sorted(cohort(), key=lambda t: t.occurred_on)
    half = len(transitions) // 2
    verifier = ServiceProcess("verifier", env, tmp_path / "verifier.log")
    verifier.start()
    try:
        await publish_transitions(servers, namespace, transitions[:half])
        await wait_caught_up(servers, namespace, database_url, verifier)
        await produce(servers.bootstrap_servers, in_namespace(CONTRACTS, namespace).name,
                      [c.model_dump_json().encode() for c in v2s],
                      keys=[f"{c.contract_id}@{c.version}".encode() for c in v2s])
        deadline = asyncio.get_running_loop().time() + CATCH_UP_TIMEOUT_S
        while not all([await applied(database_url, c) for c in v2s]):
            assert asyncio.get_running_loop().time() < deadline, "v2 was never applied"
            await asyncio.sleep(0.5)
        await publish_transitions(servers, namespace, transitions[half:])
        await wait_caught_up(servers, namespace, database_url, verifier)
    finally:
        verifier.stop()
    published = await published_instructions(servers, namespace)
    assert len({i.payment_id for i in published}) == len(published), "an instruction was published twice"
    expected = expected_balances(book, transitions, directory=COHORT_DIRECTORY)
    assert net_balances(published) == expected
    sib_spent = -expected[budget_account("sonderborg-kommune", "sib-youth-education")]
    assert sib_spent == SIB_CAP_MINOR, "the cap must bind, or this test proves nothing about it"
    assert any(i.contract_version == 2 for i in published)
