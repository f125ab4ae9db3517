"""The verifier on the real broker and database, with the pure engine as the oracle."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections import defaultdict
from pathlib import Path

import asyncpg
import pytest

from cli.synthetic.population import generate, to_json_line, write_registry
from services.verifier.rebuild import compare, outstanding, rebuild_verifier
from services.verifier.store import work_left_at
from shared.domain.contracts.loader import load_contract
from shared.domain.events import PaymentInstruction, PaymentKind, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.investment.records import LEDGER_JOURNAL_RECORD
from shared.domain.ledger.postings import budget_account, pending_account
from shared.domain.principals import Principal, Role
from shared.domain.signing import BATCH_PROOF_HEADER
from shared.platform.kafka import consumer_lag
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.topics import OUTCOMES, PAYMENTS, TRANSITIONS, in_namespace
from shared.platform.trust import trusted_keys
from tests import oracle
from tests.crash import kill_at_progress
from tests.engine_replay import REGISTRY as REGISTRY_EXAMPLES
from tests.engine_replay import admitted, directory_of, event_line, expected_balances
from tests.kafka_helpers import next_watermark, produce, publish_watermark, read_all, read_records
from tests.servers import Servers

pytestmark = pytest.mark.e2e
CONTRACTS = [REPO_ROOT / "examples" / "contracts" / name
             for name in ("mobility-bonus.yaml", "employment-pbr.yaml")]
COHORT_SUBJECTS = 60
CATCH_UP_TIMEOUT_S = 120.0


INSTITUTIONS, EVENTS = generate(COHORT_SUBJECTS, seed=11, born_from=2000, born_to=2004)
RAW_EVENTS = [to_json_line(e) for e in EVENTS]
REGISTRY = InstitutionRegistry(INSTITUTIONS + REGISTRY_EXAMPLES.all())
COHORT_DIRECTORY = directory_of(REGISTRY)


@pytest.fixture
def verifier_env(service_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    registry = tmp_path / "institutions.yaml"
    write_registry(registry, REGISTRY.all())
    return {**service_env, "CONTRACT_FILES": ",".join(map(str, CONTRACTS)), "BATCH_MAX_RECORDS": "100",
            "INSTITUTIONS_FILE": str(registry)}


def cohort() -> list[Transition]:
    return admitted(RAW_EVENTS, REGISTRY)


def expected(transitions: list[Transition]) -> dict[str, int]:
    return expected_balances([load_contract(p) for p in CONTRACTS], transitions, directory=COHORT_DIRECTORY)


async def publish_transitions(servers: Servers, namespace: str, transitions: list[Transition],
                              watermark: dt.date | bool = True) -> None:
    """The transitions, then (by default) the next watermark the tests publish on every
    partition, or the one given (False: none): the operator's clock says they are in."""
    topic = in_namespace(TRANSITIONS, namespace).name
    await produce(servers.bootstrap_servers, topic, [t.model_dump_json().encode() for t in transitions],
                  keys=[t.subject.encode() for t in transitions])
    if watermark is not False:
        day = next_watermark(namespace) if watermark is True else watermark
        await publish_watermark(servers.bootstrap_servers, topic, day)


async def caught_up(servers: Servers, namespace: str, database_url: str) -> bool:
    lag = await consumer_lag(servers.bootstrap_servers, f"{namespace}-verifier",
                             in_namespace(TRANSITIONS, namespace).name)
    return lag == 0 and await work_left_at(database_url) == 0


async def wait_caught_up(servers: Servers, namespace: str, database_url: str,
                         verifier: ServiceProcess) -> None:
    deadline = asyncio.get_running_loop().time() + CATCH_UP_TIMEOUT_S
    while True:
        try:
            if await caught_up(servers, namespace, database_url):
                return
        except Exception:  # noqa: BLE001, S110 - a fresh group's coordinator may not answer yet
            pass
        assert verifier.running(), "the verifier died"
        assert asyncio.get_running_loop().time() < deadline, "the verifier did not catch up"
        await asyncio.sleep(0.5)


async def verify_all(servers: Servers, namespace: str, database_url: str, env: dict[str, str],
                     log: Path, transitions: list[Transition]) -> None:
    """Run the verifier over the transitions until it has done everything they call for."""
    verifier = ServiceProcess("verifier", env, log)
    verifier.start()
    try:
        await publish_transitions(servers, namespace, transitions)
        await wait_caught_up(servers, namespace, database_url, verifier)
    finally:
        verifier.stop()


async def published_instructions(servers: Servers, namespace: str) -> list[PaymentInstruction]:
    records = await read_all(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name)
    parsed = [LEDGER_JOURNAL_RECORD.validate_json(v) for _, v in records]
    return [r for r in parsed if isinstance(r, PaymentInstruction)]


def net_balances(instructions: list[PaymentInstruction]) -> dict[str, int]:
    """Balances the ledger would hold: each distinct instruction once."""
    distinct = {i.payment_id: i for i in instructions}
    balances: dict[str, int] = defaultdict(int)
    for i in distinct.values():
        sign = 1 if i.kind == PaymentKind.PAYMENT else -1
        balances[budget_account(i.payer, i.contract_id)] -= sign * i.amount_minor
        balances[pending_account(i.payee, i.payee_role)] += sign * i.amount_minor
    return {k: v for k, v in balances.items() if v != 0}


async def test_a_cohort_under_the_mobility_bonus_is_paid_exactly_what_the_pure_engine_computes(
        servers: Servers, namespace: str, database_url: str, verifier_env: dict[str, str],
        tmp_path: Path) -> None:
    transitions = cohort()
    expected_net = expected(transitions)
    assert len(expected_net) > 5, "the cohort must earn money, or this test proves nothing"
    await verify_all(servers, namespace, database_url, verifier_env, tmp_path / "verifier.log", transitions)
    published = await published_instructions(servers, namespace)
    assert net_balances(published) == expected_net
    # And, independently of the engine, the mobility bonus (the part the oracle models)
    # to the øre per payee: tests/oracle.py works per day from DOMAIN.md.
    kinds = {i.id: i.kind for i in REGISTRY.all()}
    independent = oracle.expected_balances([CONTRACTS[0]], RAW_EVENTS, kinds,
                                           today=max(t.occurred_on for t in transitions))
    mobility = net_balances([i for i in published if i.contract_id == "mobility-bonus"])
    assert mobility == independent
    # The relay signs each round's records as batches (shared/domain/signing.py): every record
    # on both output topics still verifies on its own as the verifier's, and a round of
    # several records shares one signature.
    trust = trusted_keys(Settings())
    signed = [(topic, record) for topic in (in_namespace(PAYMENTS, namespace).name, in_namespace(OUTCOMES, namespace).name)
              for record in await read_records(servers.bootstrap_servers, topic)]
    assert all(trust.authenticate(topic, r.key, r.value or b"", r.headers) == Principal(Role.SERVICE, "verifier")
               for topic, r in signed)
    assert any(BATCH_PROOF_HEADER in dict(r.headers) for _, r in signed)


async def stored_events(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM verifier_events"))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await connection.close()


async def test_killing_the_verifier_three_times_mid_stream_changes_no_payment(
        servers: Servers, namespace: str, database_url: str, verifier_env: dict[str, str],
        tmp_path: Path) -> None:
    transitions = cohort()
    expected_net = expected(transitions)
    total = len({t.event_id for t in transitions})
    env = {**verifier_env, "BATCH_MAX_RECORDS": "5"}
    verifier = ServiceProcess("verifier", env, tmp_path / "verifier.log")
    await publish_transitions(servers, namespace, transitions)
    chance = random.Random(5)
    kill_points = sorted(chance.sample(range(total // 10, total * 9 // 10), 3))
    killed_at = await kill_at_progress(verifier, lambda: stored_events(database_url), kill_points,
                                       timeout_s=CATCH_UP_TIMEOUT_S)
    assert all(n < total for n in killed_at), f"killed after the stream ended: {killed_at} of {total}"
    verifier.start()
    try:
        await wait_caught_up(servers, namespace, database_url, verifier)
    finally:
        verifier.stop()
    published = await published_instructions(servers, namespace)
    assert net_balances(published) == expected_net
    connection = await asyncpg.connect(database_url)
    try:
        issued = await connection.fetchval("SELECT count(*) FROM verifier_payments")
    finally:
        await connection.close()
    # Every instruction the verifier decided is on the topic, and nothing else is.
    assert len({i.payment_id for i in published}) == issued


async def test_duplicated_and_reordered_events_change_nothing(
        servers: Servers, namespace: str, database_url: str, verifier_env: dict[str, str],
        tmp_path: Path) -> None:
    transitions = cohort()
    expected_net = expected(transitions)
    noisy = transitions + transitions[::3]
    random.Random(3).shuffle(noisy)
    await verify_all(servers, namespace, database_url, verifier_env, tmp_path / "verifier.log", noisy)
    assert net_balances(await published_instructions(servers, namespace)) == expected_net


CPR = "150904-4321"


def fact(event_id: str, on: str, by: str, body: dict[str, object]) -> Transition:
    return admitted([event_line(event_id, on, by, CPR, body)])[0]


async def test_retracting_a_paid_outcomes_trigger_claws_it_back_to_zero(
        servers: Servers, namespace: str, database_url: str, verifier_env: dict[str, str],
        tmp_path: Path) -> None:
    chain = [
        fact("r-1", "2010-08-01", "alsskolen", {"type": "enrolled", "institution": "alsskolen"}),
        fact("r-2", "2020-06-26", "alsskolen", {"type": "left", "institution": "alsskolen"}),
        fact("r-3", "2020-06-20", "exam-authority",
             {"type": "exam_result", "grades": {"danish": 7.0, "maths": 7.0}}),
    ]
    verifier = ServiceProcess("verifier", verifier_env, tmp_path / "verifier.log")
    verifier.start()
    try:
        await publish_transitions(servers, namespace, chain)
        await wait_caught_up(servers, namespace, database_url, verifier)
        paid = await published_instructions(servers, namespace)
        assert net_balances(paid).get("receivable:alsskolen:pending", 0) > 0
        await publish_transitions(servers, namespace, [fact(
            "r-4", "2020-09-01", "exam-authority", {"type": "retraction", "retracts_event_id": "r-3"})])
        await wait_caught_up(servers, namespace, database_url, verifier)
    finally:
        verifier.stop()
    instructions = await published_instructions(servers, namespace)
    clawbacks = [i for i in instructions if i.kind == PaymentKind.CLAWBACK]
    assert clawbacks
    assert {c.reverses_payment_id for c in clawbacks} == {p.payment_id for p in paid}
    assert "receivable:alsskolen:pending" not in net_balances(instructions)
    outcomes = [json.loads(v) for _, v in await read_all(servers.bootstrap_servers,
                                                         in_namespace(OUTCOMES, namespace).name)]
    assert any(o["reason"] == "evidence_withdrawn" for o in outcomes)


async def test_a_sustained_job_is_paid_only_after_its_period_on_the_clock_and_never_if_it_ends_first(
        servers: Servers, namespace: str, database_url: str, verifier_env: dict[str, str],
        tmp_path: Path) -> None:
    stays = admitted([
        event_line("j-1", "2023-01-02", "jobvejen", CPR, {"type": "enrolled", "institution": "jobvejen"}),
        event_line("j-2", "2023-03-01", "income-register", CPR,
                   {"type": "employment_started", "employer": "alsvaerket"}),
        event_line("k-1", "2023-01-02", "jobvejen", "020303-4999", {"type": "enrolled", "institution": "jobvejen"}),
        event_line("k-2", "2023-03-01", "income-register", "020303-4999",
                   {"type": "employment_started", "employer": "alsvaerket"}),
        event_line("k-3", "2023-04-15", "income-register", "020303-4999",
                   {"type": "employment_ended", "employer": "alsvaerket"}),
    ])
    stays_subject = stays[0].subject
    verifier = ServiceProcess("verifier", verifier_env, tmp_path / "verifier.log")
    verifier.start()
    topic = in_namespace(TRANSITIONS, namespace).name

    async def outcome_ids(subject: str) -> set[str]:
        return {i.outcome_id for i in await published_instructions(servers, namespace)
                if i.subject == subject and i.kind == PaymentKind.PAYMENT}

    try:
        # The job started on 2023-03-01 is final after its 15 days' review.
        await publish_transitions(servers, namespace, stays, watermark=dt.date(2023, 3, 20))
        await wait_caught_up(servers, namespace, database_url, verifier)
        assert await outcome_ids(stays_subject) == {"job-started"}
        await publish_watermark(servers.bootstrap_servers, topic, dt.date(2023, 5, 30))
        await wait_caught_up(servers, namespace, database_url, verifier)
        assert await outcome_ids(stays_subject) == {"job-started"}  # day 90 of 91
        await publish_watermark(servers.bootstrap_servers, topic, dt.date(2023, 12, 31))
        await wait_caught_up(servers, namespace, database_url, verifier)
    finally:
        verifier.stop()
    assert await outcome_ids(stays_subject) == {"job-started", "job-sustained-13-weeks", "job-sustained-26-weeks"}
    assert await outcome_ids(stays[2].subject) == {"job-started"}


async def test_a_rebuild_from_the_topic_reproduces_outcomes_and_payment_ids(
        servers: Servers, namespace: str, database_url: str, verifier_env: dict[str, str],
        tmp_path: Path) -> None:
    transitions = cohort()
    await verify_all(servers, namespace, database_url, verifier_env, tmp_path / "verifier.log", transitions)
    live = outstanding(await published_instructions(servers, namespace))
    report = await rebuild_verifier(database_url, servers.bootstrap_servers,
                                    in_namespace(TRANSITIONS, namespace).name, COHORT_DIRECTORY)
    assert report.records == len(transitions) + TRANSITIONS.partitions  # and a watermark on each
    result = await compare(database_url, servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                           in_namespace(OUTCOMES, namespace).name)
    assert result.same, result
    assert result.outstanding_rebuilt == len(live) > 0
