"""Scale-out (issue 16): two ingest and two verifier replicas give the ledger one replica
gives, through a rebalance each way, and publish nothing twice.

The same institution events go through the pipeline twice, each run in its own topic
namespace and database on the session's servers: once with one replica of each service,
once with two ingest and two verifier replicas, where the second pair joins after the
first third of the input and the first pair leaves (SIGTERM) after the second third, so
partitions move between replicas mid-stream both ways. Then:

- the ledgers hold the same outstanding payments (who is paid what, by whom, for which
  outcome of which subject, dated when) and the same balances, and each chain verifies.
  Not entry for entry: even two runs of one replica differ there, because where a batch
  ends decides which provisional decisions are paid and then re-priced (a clawback and
  a new payment, whose id then counts a generation) as event time moves on, and a
  binding budget cap re-ranks claims as they arrive; what the facts call for in the end
  is the same;
- no payment id is on the payments topic twice (the relay is exclusive across replicas);
- no outcome record is published twice in a row for an outcome key (a duplicate would be
  the same decision sent again by a second relay or a redelivered batch).

Not timed: the figures are `make bench`'s (docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from cli.synthetic.population import Rates, generate, to_json_line, write_registry
from shared.domain.events import JOURNAL_RECORD, OutcomeRecorded, PaymentInstruction
from shared.domain.institutions import InstitutionRegistry
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import INSTITUTION_EVENTS, OUTCOMES, PAYMENTS, in_namespace
from tests.conftest import new_database, new_namespace
from tests.engine_replay import REGISTRY as REGISTRY_EXAMPLES
from tests.engine_replay import sealed
from tests.kafka_helpers import produce, read_all, wait_settled
from tests.ledger_helpers import chain_report, ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
CONTRACTS = [REPO_ROOT / "examples" / "contracts" / name
             for name in ("mobility-bonus.yaml", "employment-pbr.yaml", "sib-youth-education.yaml")]
SUBJECTS = 120
SETTLE_S = 180.0
PROGRESS_S = 120.0
# In order per subject, nothing retracted: a subject's payments then do not depend on
# where batches happen to start and end, so the two runs must agree entry for entry.
INSTITUTIONS, EVENTS = generate(SUBJECTS, seed=16, born_from=2000, born_to=2004,
                                rates=Rates(late_report=0.0, retraction=0.0))
REGISTRY = InstitutionRegistry(INSTITUTIONS + REGISTRY_EXAMPLES.all())
RECORDS = sealed(to_json_line(e) for e in EVENTS)


def env_for(service_env: dict[str, str], namespace: str, database_url: str, registry: Path) -> dict[str, str]:
    url = service_env["DATABASE_URL"].rpartition("/")[0] + "/" + database_url.rpartition("/")[2]
    return {**service_env, "STAFET_TOPIC_NAMESPACE": namespace, "DATABASE_URL": url,
            "INSTITUTIONS_FILE": str(registry), "CONTRACT_FILES": ",".join(map(str, CONTRACTS)),
            "BATCH_MAX_RECORDS": "50"}


async def ledger_entries(database_url: str) -> tuple[Counter[tuple[object, ...]], dict[str, int]]:
    """The outstanding payments (what each pays whom for which outcome of which subject)
    and the balances."""
    connection = await asyncpg.connect(database_url)
    try:
        outstanding = Counter(tuple(r) for r in await connection.fetch(
            "SELECT contract_id, outcome_id, subject, payer, payee, payee_role, currency, amount_minor,"
            " occurred_on FROM ledger_entries p WHERE kind = 'payment' AND NOT EXISTS"
            " (SELECT 1 FROM ledger_entries c WHERE c.reverses_payment_id = p.payment_id)"))
    finally:
        await connection.close()
    return outstanding, (await ledger_state(database_url))["balances"]  # type: ignore[return-value]


async def stored_events(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM verifier_events"))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await connection.close()


async def wait_for_events(database_url: str, at_least: int, services: list[ServiceProcess]) -> None:
    """Until the verifiers have stored `at_least` events: the stream is under way."""
    deadline = asyncio.get_running_loop().time() + PROGRESS_S
    while await stored_events(database_url) < at_least:
        assert all(s.running() for s in services), "a service stopped"
        assert asyncio.get_running_loop().time() < deadline, "no progress"
        await asyncio.sleep(0.3)


async def one_replica_each(servers: Servers, env: dict[str, str], database_url: str, logs: Path) -> None:
    services = [ServiceProcess(name, env, logs / f"{name}.log") for name in ("ingest", "verifier", "ledger")]
    for service in services:
        service.start()
    try:
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, env["STAFET_TOPIC_NAMESPACE"]).name,
                      RECORDS)
        await wait_settled(servers.bootstrap_servers, env["STAFET_TOPIC_NAMESPACE"], database_url, services, SETTLE_S)
    finally:
        for service in services:
            service.stop()


async def two_replicas_with_rebalances(servers: Servers, env: dict[str, str], database_url: str,
                                       logs: Path) -> None:
    topic = in_namespace(INSTITUTION_EVENTS, env["STAFET_TOPIC_NAMESPACE"]).name
    first = [ServiceProcess(name, env, logs / f"{name}-1.log") for name in ("ingest", "verifier")]
    second = [ServiceProcess(name, env, logs / f"{name}-2.log") for name in ("ingest", "verifier")]
    ledger = ServiceProcess("ledger", env, logs / "ledger.log")
    third = len(RECORDS) // 3
    try:
        for service in [*first, ledger]:
            service.start()
        await produce(servers.bootstrap_servers, topic, RECORDS[:third])
        await wait_for_events(database_url, third // 4, [*first, ledger])
        for service in second:  # scale out: partitions move to the new replicas
            service.start()
        await produce(servers.bootstrap_servers, topic, RECORDS[third:2 * third])
        await wait_for_events(database_url, third + third // 4, [*first, *second, ledger])
        for service in first:  # scale in, mid-stream: partitions move back
            service.stop()
        await produce(servers.bootstrap_servers, topic, RECORDS[2 * third:])
        await wait_settled(servers.bootstrap_servers, env["STAFET_TOPIC_NAMESPACE"], database_url,
                           [*second, ledger], SETTLE_S)
    finally:
        for service in [*first, *second, ledger]:
            service.stop()


async def test_two_ingest_and_two_verifier_replicas_with_rebalances_give_the_ledger_one_replica_gives(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    registry = tmp_path / "institutions.yaml"
    write_registry(registry, REGISTRY.all())
    await one_replica_each(servers, env_for(service_env, namespace, database_url, registry),
                           database_url, tmp_path / "one")
    scaled_namespace = await asyncio.to_thread(new_namespace, servers)
    scaled_database = await asyncio.to_thread(new_database, servers)
    await two_replicas_with_rebalances(servers, env_for(service_env, scaled_namespace, scaled_database, registry),
                                       scaled_database, tmp_path / "two")

    one, two = await ledger_entries(database_url), await ledger_entries(scaled_database)
    assert len(one[0]) > 20, "too few payments to prove anything"
    assert two == one
    assert (await chain_report(database_url)).ok
    assert (await chain_report(scaled_database)).ok

    payments = [JOURNAL_RECORD.validate_json(v) for _, v in
                await read_all(servers.bootstrap_servers, in_namespace(PAYMENTS, scaled_namespace).name)]
    ids = Counter(p.payment_id for p in payments if isinstance(p, PaymentInstruction))
    assert [i for i, n in ids.items() if n > 1] == [], "a payment was published twice"
    outcomes = [OutcomeRecorded.model_validate_json(v) for _, v in
                await read_all(servers.bootstrap_servers, in_namespace(OUTCOMES, scaled_namespace).name)]
    assert outcomes, "no outcomes recorded"
    last: dict[str, OutcomeRecorded] = {}
    repeated = []
    for outcome in outcomes:  # read partition by partition: a subject's records in order
        if last.get(outcome.outcome_key) == outcome:
            repeated.append(outcome.outcome_key)
        last[outcome.outcome_key] = outcome
    assert repeated == [], "an outcome record was published twice"
