"""Services outlive their broker and database: started during an outage they wait (with
backoff, logged) instead of exiting; restarted during an outage they recover once it
ends; SIGTERM finishes the batch in hand and exits by itself.

These tests stop and start servers, so they run on a stack of their own (free ports),
not on the session's shared servers.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from shared.platform.db import migrate, recreate_database
from shared.platform.kafka import ensure_topics
from shared.platform.kafka_access import grant_namespace
from shared.platform.processes import ServiceProcess
from shared.platform.stack import LocalStack
from shared.platform.topics import PAYMENTS, all_topics, in_namespace
from tests.e2e.test_ledger_crash import instruction
from tests.kafka_helpers import produce
from tests.ledger_helpers import chain_report, entry_count, ledger_state

pytestmark = pytest.mark.e2e
NAMESPACE = "resilience"
WAIT_S = 120.0


def ledger_env(stack: LocalStack) -> dict[str, str]:
    # No user in DATABASE_URL: the ledger connects as its own runtime role.
    return {"KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers, "DATABASE_URL": stack.database_url,
            "STAFET_CREDENTIALS_DIR": str(stack.credentials_dir),
            "STAFET_TOPIC_NAMESPACE": NAMESPACE, "BATCH_MAX_RECORDS": "50", "BATCH_TIMEOUT_MS": "100",
            "LOG_LEVEL": "INFO"}


async def prepare_namespace(stack: LocalStack) -> None:
    """Users, topics and ACLs on a broker that has just started (the super user's job)."""
    await asyncio.to_thread(stack.create_principals)
    await ensure_topics(stack.bootstrap_servers, all_topics(NAMESPACE), settings=stack.settings())
    await grant_namespace(stack.bootstrap_servers, NAMESPACE, settings=stack.settings())


async def fresh_database(stack: LocalStack) -> str:
    """The ledger's database emptied and migrated by the owner; the owner's URL."""
    url = await recreate_database(stack.role_url("owner", "postgres"), stack.database)
    await migrate(url)
    return url


async def wait_for_log(service: ServiceProcess, text: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while text not in (service.log_path.read_text() if service.log_path.exists() else ""):
        assert service.running(), f"{service.name} exited instead of waiting: {service.log_path.read_text()[-2000:]}"
        assert asyncio.get_running_loop().time() < deadline, f"{service.name} never logged {text!r}"
        await asyncio.sleep(0.2)


async def wait_for_entries(database_url: str, count: int, service: ServiceProcess) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while await _entries(database_url) < count:
        assert service.running(), f"{service.name} exited: {service.log_path.read_text()[-2000:]}"
        assert asyncio.get_running_loop().time() < deadline, f"{service.name} did not catch up"
        await asyncio.sleep(0.3)


async def _entries(database_url: str) -> int:
    with contextlib.suppress(Exception):  # the ledger's tables appear when it has migrated
        return await entry_count(database_url)
    return 0


async def publish_payments(stack: LocalStack, numbers: range) -> None:
    await produce(stack.bootstrap_servers, in_namespace(PAYMENTS, NAMESPACE).name,
                  [instruction(n).model_dump_json().encode() for n in numbers], keys=[None] * len(numbers))


async def test_a_ledger_started_with_the_broker_and_the_database_down_waits_then_works_once_they_are_up(
        own_stack: LocalStack, tmp_path: Path) -> None:
    ledger = ServiceProcess("ledger", ledger_env(own_stack), tmp_path / "ledger.log")
    ledger.start()
    try:
        await wait_for_log(ledger, "dependency_unreachable_retrying")
        await asyncio.to_thread(own_stack.start_kafka)
        await prepare_namespace(own_stack)
        await publish_payments(own_stack, range(200))
        await wait_for_log(ledger, '"dependency": "postgresql')
        assert ledger.running(), "the ledger exited while the database was down"
        await asyncio.to_thread(own_stack.start_postgres)
        # The migration job runs after the ledger started: the ledger waits for it too.
        database_url = own_stack.role_url("owner")
        await migrate(database_url)
        await wait_for_entries(database_url, 200, ledger)
    finally:
        ledger.stop()
    log = ledger.log_path.read_text()
    assert "dependency_reachable" in log
    assert sorted((await ledger_state(database_url))["entry_ids"]) == sorted(instruction(n).payment_id
                                                                             for n in range(200))


async def test_a_ledger_restarted_during_a_broker_outage_recovers_when_the_broker_returns(
        own_stack: LocalStack, tmp_path: Path) -> None:
    await asyncio.to_thread(own_stack.up)
    await prepare_namespace(own_stack)
    database_url = await fresh_database(own_stack)
    ledger = ServiceProcess("ledger", ledger_env(own_stack), tmp_path / "ledger.log")
    ledger.start()
    try:
        await publish_payments(own_stack, range(300))
        await wait_for_entries(database_url, 300, ledger)
        await asyncio.to_thread(own_stack.stop_kafka, kill=True)
        ledger.stop()
        ledger.start()  # restarted while the broker is down: it must wait, not exit
        await wait_for_log(ledger, "dependency_unreachable_retrying")
        await asyncio.to_thread(own_stack.start_kafka)
        await publish_payments(own_stack, range(300, 600))
        await wait_for_entries(database_url, 600, ledger)
    finally:
        ledger.stop()
    state = await ledger_state(database_url)
    assert sorted(state["entry_ids"]) == sorted(instruction(n).payment_id for n in range(600))
    assert (await chain_report(database_url)).ok


async def test_sigterm_mid_stream_finishes_the_batch_exits_by_itself_and_loses_nothing(
        own_stack: LocalStack, tmp_path: Path) -> None:
    await asyncio.to_thread(own_stack.up)
    await prepare_namespace(own_stack)
    database_url = await fresh_database(own_stack)
    await publish_payments(own_stack, range(3000))
    ledger = ServiceProcess("ledger", ledger_env(own_stack), tmp_path / "ledger.log")
    for stop_at in (500, 1500):
        ledger.start()
        await wait_for_entries(database_url, stop_at, ledger)
        ledger.stop()  # SIGTERM, then SIGKILL only if it has not exited within the grace period
        assert ledger.process is not None
        assert ledger.process.returncode == 0, f"did not exit cleanly on SIGTERM: {ledger.process.returncode}"
    ledger.start()
    try:
        await wait_for_entries(database_url, 3000, ledger)
    finally:
        ledger.stop()
    state = await ledger_state(database_url)
    assert sorted(state["entry_ids"]) == sorted(instruction(n).payment_id for n in range(3000))
    assert (await chain_report(database_url)).ok
