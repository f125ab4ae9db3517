"""The ledger projector killed with SIGKILL mid-stream loses nothing and duplicates nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from pathlib import Path

import pytest

from shared.domain.events import PaymentInstruction, PaymentKind
from shared.platform.processes import ServiceProcess
from shared.platform.topics import PAYMENTS, in_namespace
from tests.crash import kill_at_progress
from tests.kafka_helpers import produce, wait_settled
from tests.ledger_helpers import chain_report, entry_count, ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
PAYMENTS_TOTAL = 4000
KILLS = 3


def instruction(n: int) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=hashlib.sha256(f"payment-{n}".encode()).hexdigest()[:32],
        kind=PaymentKind.PAYMENT, contract_id="crash-test", contract_version=1,
        outcome_id="o", subject="k1:" + hashlib.sha256(str(n % 97).encode()).hexdigest(),
        payer="payer", payee=f"institution-{n % 13}", amount_minor=1 + n,
        currency="DKK", occurred_on=dt.date(2024, 1, 1),
    )


async def test_sigkilled_ledger_projector_writes_each_payment_exactly_once(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    instructions = [instruction(n) for n in range(PAYMENTS_TOTAL)]
    # Every tenth instruction is published twice, as a redelivering producer would.
    records = [i.model_dump_json().encode() for i in instructions]
    records += records[::10]
    await produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name, records,
                  keys=[None] * len(records))
    env = {**service_env, "BATCH_MAX_RECORDS": "50"}
    ledger = ServiceProcess("ledger", env, tmp_path / "ledger.log")
    chance = random.Random(7)
    kill_points = sorted(chance.sample(range(PAYMENTS_TOTAL // 10, PAYMENTS_TOTAL * 9 // 10), KILLS))
    killed_at = await kill_at_progress(ledger, lambda: entry_count(database_url), kill_points, timeout_s=60)
    assert all(n < PAYMENTS_TOTAL for n in killed_at), f"killed after the stream ended: {killed_at}"
    ledger.start()
    try:
        await wait_settled(servers.bootstrap_servers, namespace, database_url, [ledger], 90, stages=("ledger",))
    finally:
        ledger.stop()
    state = await ledger_state(database_url)
    assert len(killed_at) == KILLS
    assert sorted(state["entry_ids"]) == sorted(i.payment_id for i in instructions)
    assert state["lines"] == 2 * PAYMENTS_TOTAL
    assert state["unbalanced"] == 0
    assert sum(v for k, v in state["balances"].items() if k.startswith("receivable:")) == \
        sum(i.amount_minor for i in instructions)
    report = await chain_report(database_url)
    assert report.ok, report.problem
    assert report.entries == PAYMENTS_TOTAL
