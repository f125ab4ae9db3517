"""The ledger on the real broker and database: settlement, clawbacks, dead letters,
append-only enforcement, tamper evidence and rebuild."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from cli.main import app
from services.ledger.rebuild import rebuild_ledger
from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.platform.processes import ServiceProcess
from shared.platform.topics import DEAD_LETTERS, PAYMENTS, SETTLEMENTS, in_namespace
from tests.kafka_helpers import produce, read_all, wait_settled
from tests.ledger_helpers import chain_report, entry_count, ledger_state, signed_sources
from tests.servers import Servers

pytestmark = pytest.mark.e2e
runner = CliRunner()


def pid(n: int) -> str:
    return hashlib.sha256(f"p{n}".encode()).hexdigest()[:32]


def payment(n: int, payee: str, amount: int) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=pid(n), kind=PaymentKind.PAYMENT, contract_id="pbr", contract_version=1,
        outcome_id="job", subject="k1:" + "1" * 64, payer="kommune", payee=payee,
        amount_minor=amount, currency="DKK", occurred_on=dt.date(2024, 1, n % 28 + 1))


def clawback_of(original: PaymentInstruction, n: int) -> PaymentInstruction:
    return original.model_copy(update={"payment_id": pid(n), "kind": PaymentKind.CLAWBACK,
                                       "reverses_payment_id": original.payment_id})


def paid(settlement_id: str, payment_id: str) -> Settlement:
    return Settlement(settlement_id=settlement_id, payment_id=payment_id, status=SettlementStatus.PAID,
                      settled_on=dt.date(2024, 3, 1), bank_reference=f"BANK-{settlement_id}")


def failed(settlement_id: str, payment_id: str) -> Settlement:
    return Settlement(settlement_id=settlement_id, payment_id=payment_id, status=SettlementStatus.FAILED,
                      settled_on=dt.date(2024, 3, 2), reason="account closed")


async def wait_for_entries(database_url: str, count: int, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await entry_count(database_url) < count:
        assert asyncio.get_running_loop().time() < deadline, f"fewer than {count} entries"
        await asyncio.sleep(0.2)


async def test_a_mixed_stream_settles_claws_back_and_rejects_and_rebuilds_identically(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    journal = in_namespace(PAYMENTS, namespace).name
    settlements = in_namespace(SETTLEMENTS, namespace).name
    p1, p2, p3, p4 = payment(1, "school", 10_000), payment(2, "school", 2_500), \
        payment(3, "college", 7_000), payment(4, "college", 1_000)
    c1, c3 = clawback_of(p1, 11), clawback_of(p3, 13)
    instructions = [p1, p2, p3, p4, c1, c3, p2]  # p2 twice: a redelivery
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    try:
        await produce(servers.bootstrap_servers, journal,
                      [i.model_dump_json().encode() for i in instructions])
        await wait_for_entries(database_url, 6)
        answers = [
            paid("s1", p1.payment_id),       # p1 paid, then clawed back: school owes it back
            paid("s2", p2.payment_id),
            failed("s3", p4.payment_id),     # p4 failed: voided, back to the budget
            paid("s2", p2.payment_id),       # the same settlement again: a no-op
            paid("s9", p2.payment_id),       # a second, different settlement: rejected
            paid("s7", "f" * 32),            # unknown payment: rejected
            paid("s11", c1.payment_id),      # the school paid the clawback back
        ]
        # Finance systems key settlements by payment id, so one payment's answers keep their order.
        records = [s.model_dump_json().encode() for s in answers] + [b'{"kind": "settlement"}']
        keys = [s.payment_id.encode() for s in answers] + [b"malformed"]
        await produce(servers.bootstrap_servers, settlements, records, keys=keys)
        # Settlements are forwarded onto the journal before their offsets are committed,
        # and the journal's entries written before its offsets are: when both groups have
        # committed their topics' ends, everything these records call for is done.
        await wait_settled(servers.bootstrap_servers, namespace, database_url, [ledger], 60,
                           stages=("ledger-settlements", "ledger"))
        dead = await read_all(servers.bootstrap_servers, in_namespace(DEAD_LETTERS, namespace).name)
    finally:
        ledger.stop()
    state = await ledger_state(database_url)
    assert len(state["entry_ids"]) == 10  # 6 instructions + 4 applied settlements
    assert state["unbalanced"] == 0
    balances = state["balances"]
    # Budget: four payments out, two clawbacks and one voided payment back in.
    # School: p1 paid and clawed back and paid back, p2 paid: 2,500 paid, nothing pending.
    # College: p3 clawed back before payment, p4 failed: nothing pending, nothing paid.
    assert balances == {"budget:kommune:pbr": -2_500, "receivable:school:paid": 2_500}
    reasons = sorted(json.loads(v)["reason"] for _, v in dead)
    assert reasons == ["already_settled", "schema_violation", "unknown_payment"]

    before = await chain_report(database_url)
    assert before.ok, before.problem
    report = await rebuild_ledger(database_url, servers.bootstrap_servers, journal)
    after_state = await ledger_state(database_url)
    assert report.head_hash == before.head_hash
    assert after_state["balances"] == balances
    assert sorted(after_state["entry_ids"]) == sorted(state["entry_ids"])


async def _ledger_with_entries(database_url: str) -> None:
    from services.ledger.store import apply_journal

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        records = [payment(n, "school", 100 * n) for n in range(1, 6)]
        await apply_journal(pool, records, signed_sources(records))  # type: ignore[arg-type]
    finally:
        await pool.close()


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entries SET amount_minor = 1 WHERE sequence = 2",
    "DELETE FROM ledger_lines WHERE sequence = 2",
    "TRUNCATE ledger_lines, ledger_entries",
])
async def test_changing_the_ledger_in_place_fails_in_the_database(database_url: str, statement: str) -> None:
    await _ledger_with_entries(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await connection.execute(statement)
    finally:
        await connection.close()


def test_ledger_verify_names_the_first_entry_altered_behind_its_back(database_url: str) -> None:
    asyncio.run(_ledger_with_entries(database_url))
    clean = runner.invoke(app, ["ledger", "verify", "--no-checkpoints"], env={"DATABASE_URL": database_url})
    assert clean.exit_code == 0, clean.output

    async def tamper() -> None:
        # Someone with superuser rights switches the guard off and edits a row.
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute("ALTER TABLE ledger_lines DISABLE TRIGGER USER")
            await connection.execute(
                "UPDATE ledger_lines SET debit_minor = 1, credit_minor = 0 WHERE sequence = 3 AND line = 1")
            await connection.execute(
                "UPDATE ledger_lines SET credit_minor = 1 WHERE sequence = 3 AND line = 2")
            await connection.execute("ALTER TABLE ledger_lines ENABLE TRIGGER USER")
        finally:
            await connection.close()

    asyncio.run(tamper())
    result = runner.invoke(app, ["ledger", "verify", "--no-checkpoints"], env={"DATABASE_URL": database_url})
    assert result.exit_code == 1
    assert "entry 3" in result.stderr
