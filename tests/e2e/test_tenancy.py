"""Two tenants on one stack (docs/tenancy.md): each payer's people act only on its own
contracts and payments, and a child who moved across the border is paid to institutions
in both municipalities by the payer its contract names; by a contract that pays by
residence on the trigger date, by the municipality the child lived in that day, and a
retracted move after finality is a correction.

One stack for the module: the verifier and the ledger run once with TENANTS_FILE, a
registry with a second municipality (Aabenraa) and no contract files; everything the
test checks goes through the topics, signed by the principals it names. Each tenant has
its own contracts and settlements topics and Kafka logins (docs/tenancy.md, "Topics per
tenant"), set up as `stafet dev up` sets them up from TENANTS_FILE.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError
from typer.testing import CliRunner

from cli.main import app
from services.frontdoor.portal.operator import read_overview
from services.frontdoor.portal.queries import read_statement
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.model import Contract, contract_record_key
from shared.domain.events import JOURNAL_RECORD, PaymentInstruction, Settlement, SettlementStatus
from shared.domain.institutions import InstitutionRegistry, synthetic_payee_fields
from shared.domain.tenancy import Tenancy
from shared.platform.credentials import kafka_options, without_user
from shared.platform.kafka import ensure_topics
from shared.platform.kafka_access import Kind, grant_namespace, tenant_principal, tenant_principals
from shared.platform.processes import ServiceProcess, start_services, stop_services
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.stack import local_password
from shared.platform.topics import (
    CONTRACTS,
    DEAD_LETTERS,
    PAYMENTS,
    PER_TENANT,
    SETTLEMENTS,
    TRANSITIONS,
    all_topics,
    in_namespace,
    tenant_topic,
    topic_names,
)
from shared.platform.trust import trusted_keys
from tests.conftest import new_database, new_namespace
from tests.engine_replay import admitted, directory_of, event_line, expected_balances
from tests.kafka_helpers import next_watermark, produce, publish_watermark, read_all
from tests.ledger_helpers import ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
TIMEOUT_S = 120.0
TENANTS = REPO_ROOT / "examples" / "tenants.yaml"
SONDERBORG, AABENRAA = "sonderborg-kommune", "aabenraa-kommune"
CPR_REGISTER = "cpr-register"
runner = CliRunner()


def _registry(path: Path) -> InstitutionRegistry:
    """The example registry and a second municipality: Aabenraa, a daycare and a school."""
    data = yaml.safe_load((REPO_ROOT / "examples" / "institutions.yaml").read_text(encoding="utf-8"))
    for id_, kind in ((AABENRAA, "municipality"), ("bornehuset-aabenraa", "daycare"), ("aabenraa-skole", "primary_school")):
        data["institutions"].append({"id": id_, "name": id_, "kind": kind, "municipality": "aabenraa",
                                     **synthetic_payee_fields(id_)})
    # The CPR register: the only source of `residence` facts (the moves between municipalities).
    data["institutions"].append({"id": CPR_REGISTER, "name": "CPR register (synthetic)", "kind": "cpr_register"})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return InstitutionRegistry.from_file(path)


def _contract(payer: str, municipality: str) -> Contract:
    """The next-stage bonus, paid by `payer` for the children enrolled in its municipality
    on 1 September 2017: the contract's rule for which municipality pays."""
    base = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")
    return Contract.model_validate({**base.model_dump(mode="json"), "contract_id": f"{payer}-next-stage",
                                    "payer": payer, "eligibility": {"enrolled_on": {
                                        "date": "2017-09-01", "municipality": municipality}}})


def _stay(n: str, cpr: str, institution: str, start: str, end: str | None, stage: str) -> list[bytes]:
    lines = [event_line(f"{n}-in", start, institution, cpr,
                        {"type": "enrolled", "institution": institution, "stage": stage})]
    if end is not None:
        lines.append(event_line(f"{n}-out", end, institution, cpr,
                                {"type": "left", "institution": institution, "stage": stage}))
    return lines


# Child X: a daycare in Aabenraa, then moved to Sønderborg (Alsskolen, then Nordborg
# Skole): Sønderborg's contract pays Aabenraa's daycare and Alsskolen. Child Y: a daycare
# in Sønderborg, then moved to Aabenraa's school: Aabenraa's contract pays Sønderborg's daycare.
EVENTS = [*_stay("x1", "150904-4321", "bornehuset-aabenraa", "2005-08-01", "2010-07-31", "daycare"),
          *_stay("x2", "150904-4321", "alsskolen", "2010-08-01", "2017-06-30", "primary"),
          *_stay("x3", "150904-4321", "nordborg-skole", "2017-08-15", None, "primary"),
          *_stay("y1", "020306-1238", "bornehuset-solsikken", "2007-08-01", "2012-07-31", "daycare"),
          *_stay("y2", "020306-1238", "aabenraa-skole", "2012-08-01", None, "primary")]


class Stack:
    def __init__(self, servers: Servers, namespace: str, database_url: str, registry: InstitutionRegistry,
                 env: dict[str, str], services: dict[str, ServiceProcess]) -> None:
        self.servers, self.namespace, self.database_url = servers, namespace, database_url
        self.registry, self.env, self.services = registry, env, services

    def topic(self, template: object) -> str:
        return in_namespace(template, self.namespace).name  # type: ignore[arg-type]

    def own(self, template: object, tenant: str) -> str:
        """`template`'s topic of one tenant in this stack's namespace."""
        return tenant_topic(in_namespace(template, self.namespace), tenant).name  # type: ignore[arg-type]


def _until_logged(services: dict[str, ServiceProcess], event: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = set(services)
    while waiting and time.monotonic() < deadline:
        waiting = {name for name in waiting if not services[name].log_path.exists()
                   or f'"{event}"' not in services[name].log_path.read_text(encoding="utf-8", errors="replace")}
        time.sleep(0.2)
    assert not waiting, f"{', '.join(sorted(waiting))} did not log {event}"


def _tenant_access(servers: Servers, namespace: str) -> None:
    """Each tenant's topics and Kafka logins with their ACLs, as `stafet dev up` makes them
    from TENANTS_FILE (their passwords in the stack's credentials folder)."""
    tenants = Tenancy.from_file(TENANTS).ids()
    passwords = {login: local_password(servers.credentials_dir, "kafka", login) for login in tenant_principals(tenants)}

    async def create() -> None:
        await ensure_topics(servers.bootstrap_servers, tuple(tenant_topic(in_namespace(spec, namespace), tenant)
                                                             for tenant in tenants for spec in PER_TENANT))
        await grant_namespace(servers.bootstrap_servers, namespace, principals={}, tenants=tenants,
                              tenant_passwords=passwords)

    asyncio.run(create())


@pytest.fixture(scope="module")
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("tenancy")
    registry = _registry(directory / "institutions.yaml")
    namespace, database_url = new_namespace(servers), new_database(servers)
    env = {"KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers, "DATABASE_URL": without_user(database_url),
           "STAFET_CREDENTIALS_DIR": str(servers.credentials_dir), "STAFET_TOPIC_NAMESPACE": namespace,
           "BATCH_MAX_RECORDS": "200", "BATCH_TIMEOUT_MS": "100", "LOG_LEVEL": "INFO", "CONTRACT_FILES": "",
           "TICK_INTERVAL_S": "0.5", "TENANTS_FILE": str(TENANTS), "INSTITUTIONS_FILE": str(directory / "institutions.yaml")}
    services = start_services(env, directory, ("verifier", "ledger"))
    try:
        # Started before the tenants' topics exist (as just after a tenant is added): each
        # service waits for them, then reads them.
        _until_logged(services, "waiting_for_topics")
        _tenant_access(servers, namespace)
        yield Stack(servers, namespace, database_url, registry, env, services)
    finally:
        stop_services(services)


async def _until(probe: object, timeout_s: float = TIMEOUT_S) -> object:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await probe()  # type: ignore[operator]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)


async def _dead_reasons(stack: Stack) -> Counter[str]:
    return Counter(str(json.loads(v)["reason"]) for _, v in await read_all(
        stack.servers.bootstrap_servers, stack.topic(DEAD_LETTERS)))


async def _instructions(stack: Stack) -> list[PaymentInstruction]:
    return [r for _, v in await read_all(stack.servers.bootstrap_servers, stack.topic(PAYMENTS))
            if isinstance(r := JOURNAL_RECORD.validate_json(v), PaymentInstruction)]


async def _fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def _contract_out(stack: Stack, contract: Contract, signer: str, topic: str | None = None) -> None:
    """Onto its payer's own topic (as `stafet contract apply` publishes it), as that
    tenant's operators' Kafka login, unless another topic is named."""
    await produce(stack.servers.bootstrap_servers, topic or stack.own(CONTRACTS, contract.payer),
                  [contract.model_dump_json().encode()], keys=[contract_record_key(contract, signer)], signed_as=signer)


async def _contracts_held(stack: Stack, count: int) -> bool:
    return len(await _fetch(stack.database_url, "SELECT 1 FROM verifier_contracts")) >= count


async def test_each_payers_people_act_only_on_its_own_and_a_child_across_the_border_is_paid_in_both(
        stack: Stack, tmp_path: Path) -> None:
    bootstrap = stack.servers.bootstrap_servers
    ours, theirs = _contract(SONDERBORG, "sonderborg"), _contract(AABENRAA, "aabenraa")
    # Each tenant's contract signer publishes its own contract, on its own topic.
    await _contract_out(stack, ours, "operator:sonderborg-contracts")
    await _contract_out(stack, theirs, "operator:aabenraa-ops")
    assert await _until(lambda: _contracts_held(stack, 2)), "the verifier did not take both contracts"
    # Aabenraa's operators' Kafka login cannot write Sønderborg's contracts topic at all: not
    # a dearer version, and not a record under the genuine version's key, which compaction
    # would keep instead of the genuine one (the broker keeps the latest record per key).
    genuine_key = contract_record_key(ours, "operator:sonderborg-contracts")
    dearer = ours.model_copy(update={"version": 2, "effective_from": dt.date(2000, 1, 2)})
    raw = dearer.model_dump_json().encode().replace(b'"amount_minor":', b'"amount_minor":10')
    for key, value in ((b"dearer", raw), (genuine_key, raw)):
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(bootstrap, stack.own(CONTRACTS, SONDERBORG), [value], keys=[key],
                          signed_as="operator:aabenraa-ops", principal="tenant-aabenraa-kommune-operator")
    # On its own topic it may write, and the record under the genuine key is refused there and
    # compacted apart from Sønderborg's (a topic of its own). Refused too: Sønderborg's own
    # operator who is not its contract signer; a new version moving Aabenraa's contract to
    # Sønderborg's money; a contract of a payer that is no tenant (the clearing house's login,
    # the shared topic); a clock tick from a tenant's operator.
    await produce(bootstrap, stack.own(CONTRACTS, AABENRAA), [raw], keys=[genuine_key],
                  signed_as="operator:aabenraa-ops")
    await _contract_out(stack, dearer, "operator:sonderborg-ops")
    moved = theirs.model_copy(update={"version": 2, "payer": SONDERBORG, "effective_from": dt.date(2000, 1, 2)})
    await _contract_out(stack, moved, "operator:sonderborg-contracts")
    await _contract_out(stack, _contract("nowhere-kommune", "nowhere"), "operator:dev", stack.topic(CONTRACTS))
    await asyncio.sleep(2)  # the verifier reads contracts from the start of their topics, with no group
    transitions = admitted(EVENTS, stack.registry)
    assert len(transitions) == len(EVENTS)
    await produce(bootstrap, stack.topic(TRANSITIONS), [t.model_dump_json().encode() for t in transitions],
                  keys=[t.subject.encode() for t in transitions])
    await produce(bootstrap, stack.topic(TRANSITIONS), [b'{"kind":"clock_tick","today":"2200-01-01"}'],
                  keys=[b"clock"], signed_as="operator:aabenraa-ops")
    await publish_watermark(bootstrap, stack.topic(TRANSITIONS), next_watermark(stack.namespace))

    expected = expected_balances([ours, theirs], transitions, directory=directory_of(stack.registry))
    state = await _until(lambda: _balances_are(stack, expected))
    assert state, f"the ledger did not reach {expected}"
    instructions = await _instructions(stack)
    paid = {(i.payer, i.payee): i for i in instructions}
    # Across the border, both ways, each paid by the payer its contract names.
    assert set(paid) == {(SONDERBORG, "bornehuset-aabenraa"), (SONDERBORG, "alsskolen"),
                         (AABENRAA, "bornehuset-solsikken")}, sorted(paid)
    assert all(i.contract_id == f"{i.payer}-next-stage" and i.amount_minor == 500_000 for i in instructions)

    # Aabenraa's daycare sees Sønderborg's line in its statement, Sønderborg as payer.
    code, out = await _stafet(stack, "ledger", "statement", "--institution", "bornehuset-aabenraa", "--format", "csv")
    assert code == 0, out
    lines = [line.split(",") for line in out.strip().splitlines()]
    assert lines[0][-1] == "payer", out
    assert [row[-1] for row in lines[1:]] == [SONDERBORG], out
    # And in its portal statement (read as the front door reads it): Sønderborg pays.
    pool = await asyncpg.create_pool(stack.servers.role_url("frontdoor", stack.database_url.rpartition("/")[2]),
                                     min_size=1, max_size=1)
    try:
        portal, _ = await read_statement(pool, "bornehuset-aabenraa")
        # A tenant's operator's overview in the portal: its own contracts' money only.
        overviews = {payer: {c.contract_id for c in (await read_overview(pool, payer)).contracts}
                     for payer in (None, SONDERBORG, AABENRAA)}
    finally:
        await pool.close()
    assert [(line.payer, line.amount_minor) for line in portal.lines] == [(SONDERBORG, 500_000)]
    assert overviews == {None: {ours.contract_id, theirs.contract_id}, SONDERBORG: {ours.contract_id},
                         AABENRAA: {theirs.contract_id}}, overviews

    # Aabenraa's finance key may not settle (nor return) Sønderborg's payment; Sønderborg's may.
    crossing = paid[(SONDERBORG, "bornehuset-aabenraa")]
    answers = [("foreign-paid", SettlementStatus.PAID, "finance:aabenraa-finance"),
               ("own-paid", SettlementStatus.PAID, "finance:sonderborg-finance"),
               ("foreign-return", SettlementStatus.RETURNED, "finance:aabenraa-finance"),
               ("dev-return", SettlementStatus.RETURNED, "finance:dev")]
    # Each on its finance office's own settlements topic (finance:dev, the clearing house's,
    # on the shared one); Aabenraa's login cannot write Sønderborg's at all.
    own = {"finance:aabenraa-finance": AABENRAA, "finance:sonderborg-finance": SONDERBORG}
    for settlement_id, status, signer in answers:
        extra = {"bank_reference": settlement_id} if status == SettlementStatus.PAID else {"reason": "AC04"}
        answer = Settlement(settlement_id=settlement_id, payment_id=crossing.payment_id, status=status,
                            settled_on=dt.date(2026, 12, 1), **extra)  # type: ignore[arg-type]
        topic = stack.own(SETTLEMENTS, own[signer]) if signer in own else stack.topic(SETTLEMENTS)
        await produce(bootstrap, topic, [answer.model_dump_json().encode()],
                      keys=[crossing.payment_id.encode()], signed_as=signer)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(bootstrap, stack.own(SETTLEMENTS, SONDERBORG), [b"{}"], keys=[crossing.payment_id.encode()],
                      signed_as="finance:aabenraa-finance", principal="tenant-aabenraa-kommune-finance")
    reasons = await _until(lambda: _reasons_reach(stack, "foreign_tenant_settlement", 3))
    assert reasons == Counter({"foreign_tenant_contract": 2, "contract_payer_changed": 1, "unknown_payer_tenant": 1,
                               "unauthenticated_transition": 1, "foreign_tenant_settlement": 3}), reasons
    settled = await _fetch(stack.database_url, "SELECT settlement_id, kind FROM ledger_entries"
                           " WHERE kind IN ('settled', 'returned', 'failed')")
    assert [(r["settlement_id"], r["kind"]) for r in settled] == [("own-paid", "settled")]
    final = await ledger_state(stack.database_url)
    after = {k: v for k, v in expected.items() if k != "receivable:bornehuset-aabenraa:pending"}
    assert final["balances"] == {**after, "receivable:bornehuset-aabenraa:paid": 500_000}

    # Sønderborg's contracts topic holds only what its own login wrote; a reader afresh
    # (`stafet audit`, a new verifier) takes every tenant's version from its topic, in
    # broker order, and refuses the rest.
    held = {key for key, _ in await read_all(bootstrap, stack.own(CONTRACTS, SONDERBORG))}
    assert held == {genuine_key, contract_record_key(dearer, "operator:sonderborg-ops"),
                    contract_record_key(moved, "operator:sonderborg-contracts")}
    from cli.audit import _signed_contracts
    topics = topic_names(in_namespace(CONTRACTS, stack.namespace), (SONDERBORG, AABENRAA))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TENANTS_FILE", str(TENANTS))
        contracts, refused = await _signed_contracts(bootstrap, topics, trusted_keys(Settings(tenants_file=TENANTS)))
    assert contracts == [ours, theirs]
    assert refused == 4

    # A payout run pays from one payer's account: with both owed, name the payer; each
    # tenant's run holds only its payments.
    code, out = await _stafet(stack, "finance", "payout", "--from", "2000-01-01", "--to", "2099-12-31", "--format", "csv",
                        "--out", str(tmp_path / "all.csv"), "--journal-topic", stack.topic(PAYMENTS))
    assert code == 2, out
    assert f"payments of several payers are owed ({AABENRAA}, {SONDERBORG})" in out, out
    code, out = await _stafet(stack, "finance", "payout", "--from", "2000-01-01", "--to", "2099-12-31", "--format", "csv",
                        "--payer", AABENRAA, "--out", str(tmp_path / "aabenraa.csv"),
                        "--journal-topic", stack.topic(PAYMENTS))
    assert code == 0, out
    lines = await _fetch(stack.database_url, "SELECT payer, payee FROM payout_lines")
    assert [(r["payer"], r["payee"]) for r in lines] == [(AABENRAA, "bornehuset-solsikken")]
    code, out = await _stafet(stack, "finance", "payout", "--from", "2000-01-01", "--to", "2099-12-31", "--format", "csv",
                        "--payer", AABENRAA, "--profile", "danske-bank", "--out", str(tmp_path / "x.csv"))
    assert code == 2, out
    assert "not a payout profile of aabenraa-kommune (nordea)" in out, out


async def _balances_are(stack: Stack, expected: dict[str, int]) -> bool:
    return (await ledger_state(stack.database_url))["balances"] == expected


async def _reasons_reach(stack: Stack, reason: str, count: int) -> Counter[str] | None:
    found = await _dead_reasons(stack)
    return found if found[reason] >= count else None


async def _stafet(stack: Stack, *args: str) -> tuple[int, str]:
    """A command as a person runs it (stdout and stderr together), with this stack's settings;
    in a thread, as it runs its own event loop."""
    result = await asyncio.to_thread(runner.invoke, app, list(args), env={k: v for k, v in stack.env.items()
                                                  if k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL",
                                                           "STAFET_CREDENTIALS_DIR", "TENANTS_FILE",
                                                           "INSTITUTIONS_FILE")})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


# ---- Kafka: each tenant's logins write exactly its own topics -----------------------------

async def test_each_tenants_logins_write_exactly_their_own_topics_and_read_none(servers: Servers) -> None:
    """On the broker, in a namespace of its own (nothing reads what is planted): every topic
    of the namespace, the shared ones and both tenants', tried by each tenant's login."""
    namespace = await asyncio.to_thread(new_namespace, servers)
    await asyncio.to_thread(_tenant_access, servers, namespace)
    topics = [t.name for t in all_topics(namespace, (SONDERBORG, AABENRAA))]
    for tenant in (SONDERBORG, AABENRAA):
        for kind, own in ((Kind.OPERATOR, {f"{namespace}.contracts.{tenant}.v1"}),
                          (Kind.FINANCE, {f"{namespace}.settlements.{tenant}.v1", f"{namespace}.investments.v1"})):
            login = tenant_principal(kind, tenant)
            producer = AIOKafkaProducer(bootstrap_servers=servers.bootstrap_servers, enable_idempotence=True,
                                        acks="all", **kafka_options(login))
            await producer.start()
            wrote = set()
            try:
                for topic in topics:
                    try:
                        await producer.send_and_wait(topic, b'{"forged": true}', key=b"forged", partition=0)
                        wrote.add(topic)
                    except TopicAuthorizationFailedError:
                        pass
            finally:
                await producer.stop()
            assert wrote == own, login
            consumer = AIOKafkaConsumer(bootstrap_servers=servers.bootstrap_servers, enable_auto_commit=False,
                                        auto_offset_reset="earliest", **kafka_options(login))
            await consumer.start()
            try:
                (topic,) = sorted(own - {f"{namespace}.investments.v1"})
                consumer.assign([TopicPartition(topic, 0)])
                with pytest.raises(TopicAuthorizationFailedError):
                    await consumer.getmany(TopicPartition(topic, 0), timeout_ms=5_000)
            finally:
                await consumer.stop()


# ---- row-level security: each tenant's database role reads its own rows ------------------

def _as(stack: Stack, role: str, password: str) -> str:
    base = stack.servers.database_url(stack.database_url.rpartition("/")[2])
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{role}:{password}@{rest}"


READABLE = """
SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p') AND has_table_privilege(c.oid, 'SELECT')
"""


async def test_each_tenants_database_role_reads_only_its_own_rows_on_every_table_it_can_read(
        stack: Stack, tmp_path: Path) -> None:
    """After the test above (it leaves both tenants' contracts, children, payments and a
    payout run in this module's database)."""
    from shared.platform.tenants import TENANT_TABLES

    owner = stack.database_url
    assert await _fetch(owner, "SELECT 1 FROM payout_lines"), "run after the test above: nothing to hide yet"
    env = {**stack.env, "DATABASE_URL": owner}
    result = await asyncio.to_thread(runner.invoke, app, ["db", "tenants", "--password-dir", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    roles = {SONDERBORG: "stafet_tenant_sonderborg_kommune", AABENRAA: "stafet_tenant_aabenraa_kommune"}
    assert all(f"{role}: reads as {tenant}" in result.stdout for tenant, role in roles.items()), result.stdout
    # X went to school in Sønderborg (Alsskolen), Y in Aabenraa.
    school = {t.reported_by: t.subject for t in admitted(EVENTS, stack.registry)}
    child_of = {SONDERBORG: school["alsskolen"], AABENRAA: school["aabenraa-skole"]}
    assert child_of[SONDERBORG] != child_of[AABENRAA]
    everything = {table: await _fetch(owner, f"SELECT * FROM {table}") for table in TENANT_TABLES}
    assert all(everything[t] for t in ("ledger_entries", "verifier_events", "verifier_subjects", "payout_lines"))
    for tenant, role in roles.items():
        url = _as(stack, role, (tmp_path / role).read_text().strip())
        readable = {r["relname"]: r["relrowsecurity"] for r in await _fetch(url, READABLE)}
        # Every table it can read has row-level security (but the two public catalogues).
        assert set(readable) - {"schema_migrations", "tenant_db_roles"} == set(TENANT_TABLES), readable
        assert all(readable[t] for t in TENANT_TABLES), readable
        seen = {table: await _fetch(url, f"SELECT * FROM {table}") for table in TENANT_TABLES}
        assert {r["payer"] for r in seen["ledger_entries"]} == {tenant}
        assert len(seen["ledger_entries"]) == len([r for r in everything["ledger_entries"] if r["payer"] == tenant])
        own = {r["sequence"] for r in seen["ledger_entries"]}
        assert {r["sequence"] for r in seen["ledger_lines"]} == own
        assert {r["sequence"] for r in seen["ledger_entry_sources"]} <= own
        assert {json.loads(r["contract"])["payer"] for r in seen["verifier_contracts"]} == {tenant}
        assert {r["contract_id"] for r in seen["verifier_outcomes"]} == {f"{tenant}-next-stage"}
        assert {r["subject"] for r in seen["verifier_outcomes"]} == {child_of[tenant]}
        assert len({r["subject"] for r in everything["verifier_outcomes"]}) == 2  # each contract judged both
        assert {r["contract_id"] for r in seen["verifier_payments"]} == {f"{tenant}-next-stage"}
        # Children only as far as its contracts concern them: the child it pays for, with
        # its whole chain across the border, and not the other municipality's child.
        assert {r["subject"] for r in seen["verifier_subjects"]} == {child_of[tenant]}
        assert {r["subject"] for r in seen["verifier_events"]} == {child_of[tenant]}
        assert len(seen["verifier_events"]) == len([r for r in everything["verifier_events"]
                                                    if r["subject"] == child_of[tenant]])
        runs = {r["payer"] for r in seen["payout_lines"]}
        assert runs == ({tenant} if tenant == AABENRAA else set())
        assert len(seen["payout_exports"]) == len(seen["payout_run_states"]) // 2 == (1 if tenant == AABENRAA else 0)
        # No way around it from the connection: no other role to become, nothing to write.
        connection = await asyncpg.connect(url)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute("SET ROLE stafet_operator")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute("INSERT INTO tenant_db_roles VALUES ('x', 'y')")
            await connection.execute("SET app.tenant = 'sonderborg-kommune'")
            assert {r["payer"] for r in await connection.fetch("SELECT payer FROM ledger_entries")} == {tenant}
        finally:
            await connection.close()
        # The stafet commands read through the same role: its balances are its own.
        code, out = await _stafet_as(stack, url, "ledger", "balances")
        assert code == 0, out
        assert f"({tenant}-next-stage)" in out, out
        other = AABENRAA if tenant == SONDERBORG else SONDERBORG
        assert f"({other}-next-stage)" not in out, out
        # Its reports too: money by state and the HTML report hold its own contract only.
        code, out = await _stafet_as(stack, url, "ledger", "provisional")
        assert code == 0, out
        assert f"{tenant}-next-stage" in out, out
        assert f"{other}-next-stage" not in out, out
        report = tmp_path / f"{tenant}.html"
        code, out = await _stafet_as(stack, url, "report", "--out", str(report))
        assert code == 0, out
        html = report.read_text(encoding="utf-8")
        assert f"{tenant}-next-stage" in html
        assert f"{other}-next-stage" not in html
    # The clearing house's read roles read every tenant's rows, as before.
    for national in ("operator", "finance"):
        url = stack.servers.role_url(national, stack.database_url.rpartition("/")[2])
        assert {r["payer"] for r in await _fetch(url, "SELECT payer FROM ledger_entries")} == {SONDERBORG, AABENRAA}


async def _stafet_as(stack: Stack, url: str, *args: str) -> tuple[int, str]:
    env = {"DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": stack.servers.bootstrap_servers,
           "STAFET_CREDENTIALS_DIR": str(stack.servers.credentials_dir), "INSTITUTIONS_FILE": stack.env["INSTITUTIONS_FILE"]}
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


# ---- which municipality pays: the residence on each outcome's trigger date ------------

def _by_residence(payer: str, municipality: str) -> Contract:
    """The next-stage bonus, paid by `payer` for the children who lived in its municipality
    on each enrolment's own date (`resident_on: {at: trigger}`, docs/contracts.md)."""
    base = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")
    return Contract.model_validate({**base.model_dump(mode="json"), "contract_id": f"{payer}-by-residence",
                                    "payer": payer, "eligibility": {"resident_on": {
                                        "at": "trigger", "municipality": municipality}}})


def _move(event_id: str, cpr: str, on: str, municipality: str) -> bytes:
    return event_line(event_id, on, CPR_REGISTER, cpr, {"type": "residence", "municipality": municipality})


# Child Z: lived in Aabenraa (its daycare there from 2018), moved to Sønderborg on
# 2022-06-15, enrolled at Alsskolen on 2022-08-01: Sønderborg pays Aabenraa's daycare.
# Child W: lived in Sønderborg (Solsikken), moved to Aabenraa on 2022-08-01, the day it
# enrolled at Aabenraa's school: a move on the trigger day counts, Aabenraa pays. No stay
# on 2017-09-01, so the enrolment contracts above (if they ran) pay neither.
Z, W = "010316-4327", "120516-4235"
MOVERS = [_move("z-born", Z, "2016-03-01", "aabenraa"),
          *_stay("z1", Z, "bornehuset-aabenraa", "2018-01-02", "2022-07-31", "daycare"),
          _move("z-move", Z, "2022-06-15", "sonderborg"),
          *_stay("z2", Z, "alsskolen", "2022-08-01", None, "primary"),
          _move("w-born", W, "2016-05-12", "sonderborg"),
          *_stay("w1", W, "bornehuset-solsikken", "2018-01-02", "2022-07-31", "daycare"),
          _move("w-move", W, "2022-08-01", "aabenraa"),
          *_stay("w2", W, "aabenraa-skole", "2022-08-01", None, "primary")]
RETRACTED = event_line("z-move-retracted", "2023-01-15", CPR_REGISTER, Z,
                       {"type": "retraction", "retracts_event_id": "z-move", "reason": "registered in error"})


async def _residence_lines(stack: Stack) -> list[tuple[str, str, str, int]]:
    return sorted((i.payer, i.payee, i.kind.value, i.amount_minor) for i in await _instructions(stack)
                  if i.contract_id.endswith("-by-residence"))


async def _causes(stack: Stack) -> list[tuple[str, str, str, str, str | None]]:
    """Why each residence contract's instruction was issued (contract, payee, kind, reason,
    correcting event), as the verifier keeps it."""
    rows = await _fetch(stack.database_url, "SELECT contract_id, instruction, reason, cause_event_id"
                        " FROM verifier_payments WHERE contract_id LIKE '%-by-residence'")
    return sorted((r["contract_id"], json.loads(r["instruction"])["payee"], json.loads(r["instruction"])["kind"],
                   r["reason"], r["cause_event_id"]) for r in rows)


async def test_a_child_who_moved_is_paid_for_by_the_municipality_it_lived_in_on_the_trigger_date(
        stack: Stack) -> None:
    bootstrap = stack.servers.bootstrap_servers
    ours, theirs = _by_residence(SONDERBORG, "sonderborg"), _by_residence(AABENRAA, "aabenraa")
    await _contract_out(stack, ours, "operator:sonderborg-contracts")
    await _contract_out(stack, theirs, "operator:aabenraa-ops")
    await asyncio.sleep(2)  # the verifier reads contracts from the start of their topic, with no group
    transitions = admitted(MOVERS, stack.registry)
    assert len(transitions) == len(MOVERS)  # the register's moves are admitted facts
    await produce(bootstrap, stack.topic(TRANSITIONS), [t.model_dump_json().encode() for t in transitions],
                  keys=[t.subject.encode() for t in transitions])
    await publish_watermark(bootstrap, stack.topic(TRANSITIONS), next_watermark(stack.namespace))

    # What the pure engine decides on the same facts, and what the rule means here.
    expected = expected_balances([ours, theirs], transitions, directory=directory_of(stack.registry))
    assert expected == {f"budget:{SONDERBORG}:{ours.contract_id}": -500_000,
                        f"budget:{AABENRAA}:{theirs.contract_id}": -500_000,
                        "receivable:bornehuset-aabenraa:pending": 500_000,
                        "receivable:bornehuset-solsikken:pending": 500_000}, expected
    paid = [(SONDERBORG, "bornehuset-aabenraa", "payment", 500_000),
            (AABENRAA, "bornehuset-solsikken", "payment", 500_000)]
    lines = await _until(lambda: _lines_are(stack, paid))
    assert lines, f"the verifier did not instruct {paid}: {await _residence_lines(stack)}"
    # Each paid once ("final"; or, after the watermark the test above published, as a fact
    # known late: a correction named after the enrolment itself).
    before = await _causes(stack)
    assert [row[:3] for row in before] == [(theirs.contract_id, "bornehuset-solsikken", "payment"),
                                           (ours.contract_id, "bornehuset-aabenraa", "payment")], before
    assert {row[3:] for row in before} <= {("final", None), ("correction", "w2-in"), ("correction", "z2-in")}, before

    # After the payment is final, the CPR register retracts Z's move: Z lived in Aabenraa
    # on its school day after all. Sønderborg's payment is clawed back and Aabenraa pays,
    # both named after the retraction.
    [retraction] = admitted([RETRACTED], stack.registry)
    await produce(bootstrap, stack.topic(TRANSITIONS), [retraction.model_dump_json().encode()],
                  keys=[retraction.subject.encode()])
    await publish_watermark(bootstrap, stack.topic(TRANSITIONS), next_watermark(stack.namespace))
    corrected = sorted([*paid, (SONDERBORG, "bornehuset-aabenraa", "clawback", 500_000),
                        (AABENRAA, "bornehuset-aabenraa", "payment", 500_000)])
    lines = await _until(lambda: _lines_are(stack, corrected))
    assert lines, f"the verifier did not correct to {corrected}: {await _residence_lines(stack)}"
    after = await _causes(stack)
    assert set(before) <= set(after)
    assert sorted(set(after) - set(before)) == [
        (theirs.contract_id, "bornehuset-aabenraa", "payment", "correction", "z-move-retracted"),
        (ours.contract_id, "bornehuset-aabenraa", "clawback", "correction", "z-move-retracted")], after
    # The ledger follows: Sønderborg's residence budget nets to nothing, Aabenraa pays both.
    state = await _until(lambda: _residence_balances(stack, {f"budget:{AABENRAA}:{theirs.contract_id}": -1_000_000}))
    assert state, await ledger_state(stack.database_url)


async def _lines_are(stack: Stack, lines: list[tuple[str, str, str, int]]) -> bool:
    return await _residence_lines(stack) == sorted(lines)


async def _residence_balances(stack: Stack, expected: dict[str, int]) -> bool:
    balances = (await ledger_state(stack.database_url))["balances"]
    assert isinstance(balances, dict)
    return {k: v for k, v in balances.items() if k.endswith("-by-residence") and v} == expected


async def test_a_fresh_verifier_takes_every_tenants_contract_versions_from_their_topics_before_it_reads_live(
        stack: Stack, tmp_path: Path) -> None:
    """After the tests above (their contracts on both tenants' topics, refused versions
    beside them): a verifier with an empty database holds, when it starts (before it reads
    any topic live), exactly the versions the running one holds."""
    held = {r["contract"] for r in await _fetch(stack.database_url, "SELECT contract FROM verifier_contracts")}
    assert len(held) >= 2, "run after the tests above: no contract on the tenants' topics yet"
    fresh = await asyncio.to_thread(new_database, stack.servers)
    services = start_services({**stack.env, "DATABASE_URL": without_user(fresh)}, tmp_path, ("verifier",))
    try:
        started = await _until(lambda: _logged_event(services["verifier"], "verifier_starting"))
    finally:
        stop_services(services)
    assert isinstance(started, dict), "the fresh verifier did not start"
    expected = sorted(f"{c['contract_id']}@v{c['version']}" for c in map(json.loads, held))
    assert sorted(started["contracts"]) == expected
    assert {r["contract"] for r in await _fetch(fresh, "SELECT contract FROM verifier_contracts")} == held


async def _logged_event(service: ServiceProcess, event: str) -> dict[str, object] | None:
    if not service.log_path.exists():
        return None
    for line in service.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            found = json.loads(line)
            if found.get("event") == event:
                return found  # type: ignore[no-any-return]
    return None
