"""Crash points aimed, not polled: each service SIGKILLs itself at a named point of its
code (shared/platform/faults.py, STAFET_FAULT_POINT), in the windows where exactly-once is at
stake, then runs again without the fault. What comes out is compared as exact sets,
once every consumer group has committed the end of its input (no waiting on sleeps).

- ingest: after publishing a batch's transitions, before remembering their ids; after
  remembering them (database committed), before the offset commit;
- verifier: after the batch's database commit, before the relay publishes; after the
  relay published, before the outbox rows are deleted; after everything, before the
  offset commit;
- ledger: after the batch's database commit, before the offset commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from shared.domain.events import JOURNAL_RECORD, PaymentInstruction, PaymentKind, Transition
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import INSTITUTION_EVENTS, OUTCOMES, PAYMENTS, TRANSITIONS, in_namespace
from tests import oracle
from tests.crash import run_until_fault
from tests.engine_replay import admitted, read_lines, sealed
from tests.kafka_helpers import next_watermark, produce, publish_watermark, read_all, wait_settled
from tests.ledger_helpers import chain_report, ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
SAMPLE = read_lines(REPO_ROOT / "examples" / "events" / "sample.jsonl")
CONTRACT = REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml"
KINDS = oracle.registry_kinds(REPO_ROOT / "examples" / "institutions.yaml")
FAULT_TIMEOUT_S = 90.0
SETTLE_TIMEOUT_S = 120.0
# Small batches, so that the aimed crash falls mid-stream: the second batch of several.
SMALL_BATCHES = {"BATCH_MAX_RECORDS": "4", "BATCH_TIMEOUT_MS": "50"}


async def crash_then_recover(servers: Servers, namespace: str, database_url: str, env: dict[str, str],
                             name: str, point: str, log: Path) -> None:
    service = ServiceProcess(name, {**env, **SMALL_BATCHES}, log)
    await run_until_fault(service, point, FAULT_TIMEOUT_S)
    service.start()
    try:
        await wait_settled(servers.bootstrap_servers, namespace, database_url, [service], SETTLE_TIMEOUT_S,
                           stages=(name,))
    finally:
        service.stop()


# -- ingest ------------------------------------------------------------------------------

@pytest.mark.parametrize("point", ["ingest.after_publish:2", "ingest.after_commit:2"])
async def test_ingest_killed_at_an_aimed_point_forwards_every_admitted_event_and_nothing_else(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path, point: str) -> None:
    await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name, sealed(SAMPLE))
    await crash_then_recover(servers, namespace, database_url, service_env, "ingest", point, tmp_path / "ingest.log")
    forwarded = [Transition.model_validate_json(v)
                 for _, v in await read_all(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name)]
    want = {t.event_id: t for t in admitted(SAMPLE)}
    assert {t.event_id for t in forwarded} == set(want)
    assert all(t == want[t.event_id] for t in forwarded), "a forwarded transition differs from its first version"
    repeats = {event_id for event_id, n in Counter(t.event_id for t in forwarded).items() if n > 1}
    if point.startswith("ingest.after_commit"):
        # The ids were remembered before the crash: the replayed batch is all duplicates.
        assert repeats == set()
    else:
        # Forwarded but not remembered: the replay forwards that batch again (at least
        # once, never lost); the verifier's unique event ids absorb the repeats.
        assert 0 < len(repeats) <= int(SMALL_BATCHES["BATCH_MAX_RECORDS"])


# -- verifier ----------------------------------------------------------------------------

def expected_payments() -> set[tuple[str, int, str]]:
    contract = oracle.load_contract_yaml(CONTRACT)
    subjects = oracle.subjects_from_lines(SAMPLE, KINDS)
    today = max(f.occurred_on for s in subjects for f in s.facts)
    return {(p.payee, p.amount_minor, p.trigger_event_id) for p in oracle.payments([contract], subjects, today)}


@pytest.mark.parametrize("point", ["verifier.before_relay:2", "verifier.relay.after_publish:2",
                                   "verifier.after_commit:2"])
async def test_the_verifier_killed_at_an_aimed_point_instructs_each_payment_exactly_once(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path, point: str) -> None:
    transitions = admitted(SAMPLE)
    topic = in_namespace(TRANSITIONS, namespace).name
    # Half the subjects, a watermark, the other half, a watermark: two rounds of decisions
    # for the relay to publish (and be killed around).
    subjects = sorted({t.subject for t in transitions})
    for half in (subjects[::2], subjects[1::2]):
        mine = [t for t in transitions if t.subject in half]
        await produce(servers.bootstrap_servers, topic, [t.model_dump_json().encode() for t in mine],
                      keys=[t.subject.encode() for t in mine])
        await publish_watermark(servers.bootstrap_servers, topic, next_watermark(namespace))
    await crash_then_recover(servers, namespace, database_url, service_env, "verifier", point,
                             tmp_path / "verifier.log")
    records = [JOURNAL_RECORD.validate_json(v)
               for _, v in await read_all(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name)]
    instructions = [r for r in records if isinstance(r, PaymentInstruction)]
    distinct = {i.payment_id: i for i in instructions}
    # What must hold: each clawback reverses one payment once, and what stays paid is
    # exactly the oracle's set (each subject's facts arrive before one watermark).
    reversed_ids = [i.reverses_payment_id for i in distinct.values() if i.kind == PaymentKind.CLAWBACK]
    assert len(reversed_ids) == len(set(reversed_ids)), "a payment was clawed back twice"
    assert all(distinct[r].kind == PaymentKind.PAYMENT for r in reversed_ids if r is not None)
    standing = [i for i in distinct.values() if i.kind == PaymentKind.PAYMENT and i.payment_id not in reversed_ids]
    assert sorted((i.payee, i.amount_minor, i.trigger_event_id or "") for i in standing) == \
        sorted(expected_payments())
    if point.startswith("verifier.relay.after_publish"):
        # Published, not deleted: the restart republishes that round (same ids), whether
        # it carried payments or outcome records (provisional ones included).
        outcomes = [v for _, v in await read_all(servers.bootstrap_servers, in_namespace(OUTCOMES, namespace).name)]
        assert len(instructions) - len(distinct) + len(outcomes) - len(set(outcomes)) > 0


# -- ledger ------------------------------------------------------------------------------

PAYMENTS_TOTAL = 60


def instruction(n: int) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=hashlib.sha256(f"fault-{n}".encode()).hexdigest()[:32], kind=PaymentKind.PAYMENT,
        contract_id="fault-test", contract_version=1, outcome_id="o",
        subject="k1:" + hashlib.sha256(str(n % 7).encode()).hexdigest(), payer="payer",
        payee=f"institution-{n % 5}", amount_minor=1 + n, currency="DKK", occurred_on=dt.date(2024, 1, 1))


async def test_the_ledger_killed_after_its_commit_before_the_offset_commit_writes_each_entry_once(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    instructions = [instruction(n) for n in range(PAYMENTS_TOTAL)]
    await produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                  [i.model_dump_json().encode() for i in instructions], keys=[None] * PAYMENTS_TOTAL)
    await crash_then_recover(servers, namespace, database_url, service_env, "ledger", "ledger.after_commit:3",
                             tmp_path / "ledger.log")
    state = await ledger_state(database_url)
    assert sorted(state["entry_ids"]) == sorted(i.payment_id for i in instructions)  # type: ignore[arg-type]
    assert state["unbalanced"] == 0
    want: dict[str, int] = {"budget:payer:fault-test": -sum(i.amount_minor for i in instructions)}
    for i in instructions:
        want[f"receivable:{i.payee}:pending"] = want.get(f"receivable:{i.payee}:pending", 0) + i.amount_minor
    assert state["balances"] == want
    report = await chain_report(database_url)
    assert report.ok, report.problem
    assert report.entries == PAYMENTS_TOTAL
