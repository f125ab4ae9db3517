"""The broker's and the database's access control, on the real servers (docs/security.md).

The tables below are written out by hand on purpose, not derived from
`shared/platform/kafka_access.py`: they are the threat model's claims, and the test checks the
running broker against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from typer.testing import CliRunner

from cli.main import app
from services.ledger.store import apply_journal
from shared.platform.credentials import kafka_options
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.topics import ALL_TOPICS, PAYMENTS, TRANSITIONS, all_topics, in_namespace
from tests.e2e.test_ledger import payment
from tests.kafka_helpers import produce
from tests.servers import Servers

pytestmark = pytest.mark.e2e
runner = CliRunner()

TOPICS = ("institution-events", "transitions", "dead-letters", "contracts", "outcomes", "payments", "settlements",
          "ledger-checkpoints", "investments", "disputes")
MAY_WRITE = {
    "institution": {"institution-events"},
    "finance": {"settlements", "investments"},  # investments: a fund's budget, savings, a close
    "investor": {"investments"},
    "operator": {"contracts", "transitions"},  # transitions: `stafet clock`'s ticks
    "ingest": {"transitions", "dead-letters"},
    "verifier": {"outcomes", "payments", "dead-letters"},  # dead letters: unsigned transitions, contracts
    # payments: settlements forwarded onto the journal; its signed chain checkpoints
    "ledger": {"payments", "dead-letters", "ledger-checkpoints"},
    "frontdoor": {"institution-events", "disputes"},  # disputes: the portal's, and operators' decisions
    "auditor": set(),  # `stafet audit` writes nothing
}
MAY_READ = {
    "institution": set(),
    "finance": {"payments"},
    "operator": {"dead-letters", "outcomes", "ledger-checkpoints"},  # checkpoints: `stafet ledger verify`
    "ingest": {"institution-events"},
    "verifier": {"transitions", "contracts", "outcomes", "payments"},
    # disputes: kept, to hold a disputed outcome's payments out of payout runs
    "ledger": {"payments", "settlements", "ledger-checkpoints", "investments", "disputes"},
    "frontdoor": set(),
    "investor": set(),
    "auditor": {"transitions", "contracts", "payments", "ledger-checkpoints"},  # `stafet audit`
}
CONNECT_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 30.0


def topic(namespace: str, name: str) -> str:
    return f"{namespace}.{name}.v1"


# ---- the broker: authentication ---------------------------------------------------------

async def test_a_client_without_credentials_can_neither_produce_nor_consume(servers: Servers, namespace: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers.bootstrap_servers, request_timeout_ms=5_000)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
    await producer.stop()
    consumer = AIOKafkaConsumer(topic(namespace, "payments"), bootstrap_servers=servers.bootstrap_servers,
                                request_timeout_ms=5_000)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
    await consumer.stop()


async def test_a_wrong_password_is_refused(servers: Servers, namespace: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers.bootstrap_servers, request_timeout_ms=5_000,
                                **(kafka_options("institution") | {"sasl_plain_password": "a guess"}))
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
    await producer.stop()


# ---- the broker: authorization, principal by principal -------------------------------

@pytest.mark.parametrize("principal", sorted(MAY_WRITE))
async def test_each_principal_writes_exactly_the_topics_it_needs(
        servers: Servers, namespace: str, principal: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers.bootstrap_servers, enable_idempotence=True, acks="all",
                                **kafka_options(principal))
    if not MAY_WRITE[principal]:
        # WRITE on no topic at all: the broker does not even give it a producer id.
        with pytest.raises(ClusterAuthorizationFailedError):
            await producer.start()
        await producer.stop()
        return
    await producer.start()
    wrote: set[str] = set()
    try:
        for name in TOPICS:
            try:
                await producer.send_and_wait(topic(namespace, name), b'{"forged": true}', key=b"forged", partition=0)
                wrote.add(name)
            except TopicAuthorizationFailedError:
                pass
    finally:
        await producer.stop()
    assert wrote == MAY_WRITE[principal]


async def _read_one(servers: Servers, principal: str, name: str) -> str:
    """'read' if `principal` can fetch the record planted on partition 0, else 'refused'."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers.bootstrap_servers, enable_auto_commit=False,
                                auto_offset_reset="earliest", **kafka_options(principal))
    await consumer.start()
    try:
        partition = TopicPartition(name, 0)
        consumer.assign([partition])
        deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
        while asyncio.get_running_loop().time() < deadline:
            if name in consumer._client.cluster.unauthorized_topics:
                return "refused"  # the broker would not even describe it (no ACL at all)
            try:
                fetched = await consumer.getmany(partition, timeout_ms=500)
            except TopicAuthorizationFailedError:
                return "refused"  # described (an operator's DESCRIBE), not readable
            if fetched.get(partition):
                return "read"
        raise AssertionError(f"{principal} neither read nor was refused {name} in {READ_TIMEOUT_S}s")
    finally:
        await consumer.stop()


async def _plant(servers: Servers, name: str, count: int = 1) -> None:
    """Records on partition 0 of `name`, written as the super user (the tests' own hand)."""
    producer = AIOKafkaProducer(bootstrap_servers=servers.bootstrap_servers, **kafka_options("admin"))
    await producer.start()
    try:
        for _ in range(count):
            await producer.send_and_wait(name, b"{}", key=b"planted", partition=0)
    finally:
        await producer.stop()


@pytest.mark.parametrize("principal", sorted(MAY_READ))
async def test_each_principal_reads_exactly_the_topics_it_needs(
        servers: Servers, namespace: str, principal: str) -> None:
    for name in TOPICS:
        await _plant(servers, topic(namespace, name))
    read = {name for name in TOPICS if await _read_one(servers, principal, topic(namespace, name)) == "read"}
    assert read == MAY_READ[principal]


async def test_a_service_cannot_join_another_services_consumer_group(servers: Servers, namespace: str) -> None:
    # Ingest may read institution events in its own group only: as the verifier's group
    # it could commit offsets and make the verifier skip transitions.
    consumer = AIOKafkaConsumer(topic(namespace, "institution-events"), bootstrap_servers=servers.bootstrap_servers,
                                group_id=f"{namespace}-verifier", **kafka_options("ingest"))

    async def join_and_fetch() -> None:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
        await asyncio.wait_for(consumer.getmany(timeout_ms=5_000), CONNECT_TIMEOUT_S)

    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await join_and_fetch()
    finally:
        await consumer.stop()


async def test_the_sources_of_truth_are_kept_forever(servers: Servers, namespace: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.bootstrap_servers, **kafka_options("admin"))
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in all_topics(namespace)])
    finally:
        await admin.close()
    retention = {}
    for response in responses:
        for _, _, _, resource_name, entries in response.resources:
            values = {entry[0]: entry[1] for entry in entries}
            retention[resource_name.removeprefix(f"{namespace}.")] = (values["retention.ms"], values["retention.bytes"])
    forever = {name for name, value in retention.items() if value == ("-1", "-1")}
    # The checkpoints are the ledger's anchor outside its database: kept as long as the journal.
    # Disputes hold money and are the institutions' and operators' words: kept too.
    assert forever == {"institution-events.v1", "transitions.v1", "contracts.v1", "payments.v1",
                       "ledger-checkpoints.v1", "disputes.v1"}
    assert {spec.name.removeprefix("stafet.") for spec in ALL_TOPICS if spec.keep_forever} == forever


# ---- rebuilds refuse to run when they would lose history or race the service ----------

def _stafet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # A process of its own: topic names depend on STAFET_TOPIC_NAMESPACE at import.
    return subprocess.run([sys.executable, "-c", "from cli.main import main; main()", *args],
                          cwd=REPO_ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


async def _until_group_active(servers: Servers, group: str, timeout_s: float = 90.0) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.bootstrap_servers, **kafka_options("admin"))
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            with contextlib.suppress(KafkaError):  # a coordinator still loading
                described = await admin.describe_consumer_groups([group])
                if any(g[2] == "Stable" and g[5] for r in described for g in r.groups):
                    return
            assert asyncio.get_running_loop().time() < deadline, f"{group} never became active"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def test_ledger_rebuild_refuses_while_the_ledger_runs_and_asks_for_yes(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    asyncio.run(produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                        [payment(n, "school", 100 * n).model_dump_json().encode() for n in range(1, 4)]))
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    try:
        asyncio.run(_until_group_active(servers, f"{namespace}-ledger"))
        refused = _one_error_line(_stafet(service_env, "ledger", "rebuild", "--yes"))
        assert f"consumer group {namespace}-ledger has 1 active member(s)" in refused
    finally:
        ledger.stop()
    # Stopped: now only the confirmation is missing, and with it the rebuild runs.
    assert "--yes" in _one_error_line(_stafet(service_env, "ledger", "rebuild"))
    done = _stafet(service_env, "ledger", "rebuild", "--yes")
    assert done.returncode == 0, done.stderr
    assert "rebuilt: 3 journal records, 3 entries" in done.stdout


@pytest.mark.parametrize(("service", "spec"), [("ledger", PAYMENTS), ("verifier", TRANSITIONS)])
def test_a_rebuild_refuses_a_log_that_no_longer_starts_at_offset_0(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        service: str, spec: object) -> None:
    name = in_namespace(spec, namespace).name  # type: ignore[arg-type]

    async def cut() -> None:
        await _plant(servers, name, 3)
        admin = AIOKafkaAdminClient(bootstrap_servers=servers.bootstrap_servers, **kafka_options("admin"))
        await admin.start()
        try:
            # What a broker's retention would do to a topic that is not kept forever.
            await admin.delete_records({TopicPartition(name, 0): RecordsToDelete(before_offset=1)},
                                       timeout_ms=10_000)
        finally:
            await admin.close()

    asyncio.run(cut())
    refused = _one_error_line(_stafet(service_env, service, "rebuild", "--yes"))
    assert f"{name} no longer starts at offset 0 (partition 0 starts at offset 1)" in refused


# ---- PostgreSQL: least privilege -----------------------------------------------------------

def _database(url: str) -> str:
    return url.rpartition("/")[2]


async def _ledger_written_by_its_own_role(servers: Servers, database_url: str) -> str:
    """Entries appended by the ledger's runtime role itself (what it must be able to do)."""
    url = servers.role_url("ledger", _database(database_url))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        await apply_journal(pool, [payment(n, "school", 100 * n) for n in range(1, 4)])
    finally:
        await pool.close()
    return url


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entries SET amount_minor = 1 WHERE sequence = 2",
    "UPDATE ledger_lines SET debit_minor = 1 WHERE sequence = 2",
    "DELETE FROM ledger_entries WHERE sequence = 2",
    "DELETE FROM ledger_lines WHERE sequence = 2",
    "TRUNCATE ledger_lines, ledger_entries",
    "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only",
    "ALTER TABLE ledger_lines DISABLE TRIGGER USER",
    "ALTER TABLE ledger_entries ADD COLUMN note text",
    "DROP TABLE ledger_lines",
    "DROP FUNCTION ledger_forbid_change() CASCADE",
    "CREATE TABLE shadow (sequence bigint)",
    "SET session_replication_role = replica",  # would skip every trigger
])
async def test_the_ledgers_runtime_role_cannot_change_or_unguard_history(
        servers: Servers, database_url: str, statement: str) -> None:
    url = await _ledger_written_by_its_own_role(servers, database_url)
    connection = await asyncpg.connect(url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)
        assert await connection.fetchval("SELECT count(*) FROM ledger_entries") == 3
    finally:
        await connection.close()


@pytest.mark.parametrize(("role", "statement"), [
    ("ingest", "SELECT count(*) FROM ledger_entries"),
    ("ingest", "SELECT count(*) FROM verifier_events"),
    ("verifier", "INSERT INTO ledger_chain_head VALUES (true, 0, repeat('0', 64))"),
    ("verifier", "SELECT count(*) FROM ingest_seen_events"),
    ("ledger", "SELECT count(*) FROM verifier_events"),
    ("ledger", "UPDATE ledger_chain_head SET only_row = true"),
    # Which run holds which payment, to flag a dispute kept too late; not whom a run pays.
    ("ledger", "SELECT payee_iban FROM payout_lines"),
    ("ledger", "SELECT content FROM payout_exports"),
    ("operator", "UPDATE ledger_chain_head SET sequence = 0"),
    ("operator", "INSERT INTO verifier_contracts VALUES ('x', 1, '{}')"),
    ("operator", "SELECT count(*) FROM ingest_seen_events"),
    ("operator", "INSERT INTO payout_exports VALUES ('x', 'csv', '2024-01-01', '2024-01-02', '2024-01-03', now())"),
    ("finance", "UPDATE ledger_chain_head SET sequence = 0"),
    ("finance", "INSERT INTO ledger_entries (sequence) VALUES (99)"),
    ("finance", "UPDATE payout_lines SET amount_minor = 1"),
    ("finance", "SELECT count(*) FROM verifier_outcomes"),
    ("frontdoor", "SELECT count(*) FROM ingest_seen_events"),
    # The portal reads an institution's entries (not their lines) and the verifier's decisions; it writes neither.
    ("frontdoor", "SELECT count(*) FROM ledger_lines"),
    ("frontdoor", "INSERT INTO ledger_entries (sequence) VALUES (99)"),
    ("frontdoor", "UPDATE verifier_outcomes SET status = 'verified'"),
    ("frontdoor", "SELECT count(*) FROM verifier_subjects"),
])
async def test_each_runtime_role_reaches_only_what_it_needs(
        servers: Servers, database_url: str, role: str, statement: str) -> None:
    connection = await asyncpg.connect(servers.role_url(role, _database(database_url)))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)
    finally:
        await connection.close()


async def test_postgres_over_tcp_takes_only_a_roles_scram_password(servers: Servers, database_url: str) -> None:
    name = _database(database_url)
    wrong = servers.role_url("ledger", name).replace("stafet_ledger:", "stafet_ledger:x", 1)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)
    # The superuser has no password: over TCP it cannot log in at all.
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(servers.database_url(name).replace("://", "://postgres:postgres@", 1))
    connection = await asyncpg.connect(servers.role_url("ledger", name))
    try:
        assert await connection.fetchval("SHOW password_encryption") == "scram-sha-256"
        assert not await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await connection.close()


# ---- an operator adds a principal to a running installation ------------------------------

def test_an_operator_adds_an_institution_system_that_may_write_events_only(
        servers: Servers, namespace: str, tmp_path: Path) -> None:
    password = tmp_path / "aarhus-schools.password"
    password.write_text("a-long-enough-secret-for-aarhus\n")
    name = f"institution-{namespace}"
    added = runner.invoke(app, ["access", "user", name, "--kind", "institution", "--password-file", str(password),
                                "--namespace", namespace], env={"KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers})
    assert added.exit_code == 0, added.output
    assert f"user {name} (institution): password set, 1 ACL(s) in namespace {namespace}" in added.output
    # The institution's own process, configured as production configures it.
    settings = Settings(kafka_username=name, kafka_password_file=password, stafet_env="production")

    async def write_as_the_new_user() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=servers.bootstrap_servers, **kafka_options("ignored", settings))
        await producer.start()
        try:
            await producer.send_and_wait(topic(namespace, "institution-events"), b"{}", key=b"k")
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(topic(namespace, "payments"), b"{}", key=b"k")
        finally:
            await producer.stop()

    asyncio.run(write_as_the_new_user())


def test_adding_a_user_with_a_weak_password_or_unknown_kind_is_refused(tmp_path: Path) -> None:
    weak = tmp_path / "weak.password"
    weak.write_text("short")
    refused = runner.invoke(app, ["access", "user", "x", "--kind", "institution", "--password-file", str(weak)])
    assert refused.exit_code == 2
    assert "shorter than 16 characters" in refused.stderr
    unknown = runner.invoke(app, ["access", "user", "x", "--kind", "bank", "--password-file", str(weak)])
    assert unknown.exit_code == 2
    assert "--kind 'bank' is not one of" in unknown.stderr
