"""Two verifier replicas and a new contract version: the replica that learns the version
after the other one stored it still re-evaluates the subjects it decided meanwhile.

Found by `make chaos SEED=1`: each replica reads the contracts topic on its own, only the
replica that stored a version first swept every subject, and the other replica went on
deciding batches (and the sweep's due timers) with its old book; the subjects it decided
then stayed decided under the old version. The "other replica" here is played by this
test, which stores the version and sweeps exactly as a replica does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from cli.synthetic.population import write_registry
from services.verifier import store
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.model import Contract
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import CONTRACTS, in_namespace
from tests.e2e.test_verifier import (
    COHORT_DIRECTORY,
    REGISTRY,
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
V1 = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")
SETTLE_S = 90.0


def second_version() -> Contract:
    data = V1.model_dump()
    data.update(version=2, effective_from=dt.date(2012, 1, 1))
    for outcome in data["outcomes"]:
        outcome["price"]["amount_minor"] = 750_000
    return Contract.model_validate(data)


async def test_a_replica_that_learns_a_version_another_replica_stored_re_evaluates_its_subjects(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    registry = tmp_path / "institutions.yaml"
    write_registry(registry, REGISTRY.all())
    env = {**service_env, "INSTITUTIONS_FILE": str(registry), "BATCH_MAX_RECORDS": "100"}
    transitions = cohort()
    v2 = second_version()
    want = expected_balances([V1, v2], transitions, directory=COHORT_DIRECTORY)
    assert want != expected_balances([V1], transitions, directory=COHORT_DIRECTORY), "v2 must change money"
    verifier = ServiceProcess("verifier", env, tmp_path / "verifier.log")
    verifier.start()
    try:
        await publish_transitions(servers, namespace, transitions)
        await wait_caught_up(servers, namespace, database_url, verifier)
        # The other replica stores v2 and sweeps; this replica drains the sweep with v1 only.
        connection = await asyncpg.connect(database_url)
        try:
            async with connection.transaction():
                assert await store.save_contract(connection, v2)
        finally:
            await connection.close()
        await wait_caught_up(servers, namespace, database_url, verifier)
        # Now this replica reads v2 from the contracts topic, after the other one stored it.
        await produce(servers.bootstrap_servers, in_namespace(CONTRACTS, namespace).name,
                      [v2.model_dump_json().encode()], keys=[b"next-stage-bonus@2"])
        deadline = asyncio.get_running_loop().time() + SETTLE_S
        while (got := net_balances(await published_instructions(servers, namespace))) != want:
            assert verifier.running(), "the verifier died"
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(1.0)
    finally:
        verifier.stop()
    assert got == want
