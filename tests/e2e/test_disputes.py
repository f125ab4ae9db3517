"""Disputes on the real broker and database: the ledger keeps what the front door signed
on the disputes topic, and a payout run holds a disputed outcome's payments until an
operator decides (DOMAIN.md, "Finality": a dispute holds the outcome's payments).

The ledger runs as a process; `stafet finance payout` as the finance office runs it; the
portal's reads as the front door's own database role.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from services.frontdoor.portal.disputes import PostgresDisputeDesk
from shared.domain.contracts.payments import clawback_id
from shared.domain.disputes import DisputeOpened, DisputeResolved, DisputeState, Resolution, dispute_id, resolution_id
from shared.domain.events import PaymentInstruction, PaymentKind
from shared.platform.processes import ServiceProcess
from shared.platform.topics import DEAD_LETTERS, DISPUTES, PAYMENTS, in_namespace
from tests.e2e.test_finance import payment, scalar, stafet, wait_for_entries
from tests.kafka_helpers import produce, read_all
from tests.servers import Servers

pytestmark = pytest.mark.e2e
WAIT_S = 60.0
T = TypeVar("T")


def with_trigger(instruction: PaymentInstruction, trigger: str) -> PaymentInstruction:
    return instruction.model_copy(update={"trigger_event_id": trigger})


def outcome_key_of(instruction: PaymentInstruction) -> str:
    return f"{instruction.contract_id}|{instruction.outcome_id}|{instruction.subject}|{instruction.trigger_event_id}"


async def wait_for_state(database_url: str, dispute: str, state: DisputeState) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while await scalar(database_url, "SELECT state FROM ledger_dispute_states WHERE dispute_id = $1",
                       dispute) != state.value:
        assert asyncio.get_running_loop().time() < deadline, f"dispute {dispute} never {state.value}"
        await asyncio.sleep(0.2)


async def paid_out(env: dict[str, str], journal: str, database_url: str, out: Path) -> list[str]:
    """`stafet finance payout` for February 2024 as the finance office runs it; every payment
    id in a payout run so far."""
    code, _out, err = await stafet(env, "finance", "payout", "--from", "2024-02-01", "--to", "2024-02-20",
                                   "--execution-date", "2024-03-01", "--journal-topic", journal,
                                   "--out", str(out), "--format", "csv")
    assert code == 0, err
    found = await scalar(database_url, "SELECT array_agg(payment_id ORDER BY payment_id) FROM payout_lines")
    return list(found or [])  # type: ignore[call-overload]


async def frontdoor_reads(servers: Servers, database_url: str,
                          read: Callable[[PostgresDisputeDesk], Awaitable[T]]) -> T:
    pool = await asyncpg.create_pool(servers.role_url("frontdoor", database_url.rpartition("/")[2]),
                                     min_size=1, max_size=1)
    assert pool is not None

    async def never(record: object) -> None:
        raise AssertionError("nothing is published here")

    try:
        return await read(PostgresDisputeDesk(pool, never))
    finally:
        await pool.close()


async def test_a_disputed_outcome_is_paid_only_once_the_dispute_is_decided(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    journal, disputes = in_namespace(PAYMENTS, namespace).name, in_namespace(DISPUTES, namespace).name
    env = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    disputed, undisputed = with_trigger(payment(31, "alsskolen", 10_000, 3), "t-31"), with_trigger(
        payment(32, "alsskolen", 7_000, 4), "t-32")
    key = outcome_key_of(disputed)
    opened = DisputeOpened(dispute_id=dispute_id(key, "alsskolen"), outcome_key=key, contract_id=disputed.contract_id,
                           outcome_id=disputed.outcome_id, institution="alsskolen", reason="wrong_dates",
                           note="the stay ended on 31 July", opened_by="alsskolen", opened_on=dt.date(2024, 2, 1),
                           window_closes_on=dt.date(2024, 2, 10))
    # Signed by someone else than the front door: refused, holds nothing.
    forged = opened.model_copy(update={"outcome_key": outcome_key_of(undisputed),
                                       "dispute_id": dispute_id(outcome_key_of(undisputed), "alsskolen")})
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    try:
        await produce(servers.bootstrap_servers, journal, [p.model_dump_json().encode() for p in (disputed, undisputed)])
        await produce(servers.bootstrap_servers, disputes, [forged.model_dump_json().encode()],
                      signed_as="institution:alsskolen", principal="frontdoor")
        await produce(servers.bootstrap_servers, disputes, [opened.model_dump_json().encode()] * 2)  # and a redelivery
        await wait_for_entries(database_url, 2)
        await wait_for_state(database_url, opened.dispute_id, DisputeState.OPEN)
        assert await scalar(database_url, "SELECT count(*) FROM ledger_disputes") == 1

        def payout(name: str) -> Awaitable[list[str]]:
            return paid_out(env, journal, database_url, tmp_path / name)

        assert await payout("first.csv") == [undisputed.payment_id]  # the disputed one is held
        # The operator's queue holds it, as the front door's role reads it.
        queued = await frontdoor_reads(servers, database_url, lambda desk: desk.open_disputes())
        assert [(d.dispute_id, d.state) for d in queued] == [(opened.dispute_id, DisputeState.OPEN)]
        # A tenant's operator's queue is chosen in the query (before its bound): its contracts only.
        own = await frontdoor_reads(servers, database_url, lambda desk: desk.open_disputes([disputed.contract_id]))
        assert [d.dispute_id for d in own] == [opened.dispute_id]
        assert await frontdoor_reads(servers, database_url, lambda desk: desk.open_disputes(["another-payers"])) == []
        found = await frontdoor_reads(servers, database_url, lambda desk: desk.dispute_with_evidence(opened.dispute_id))
        assert found is not None
        assert (found[0].note, found[1].facts) == ("the stay ended on 31 July", ())  # no facts in this test's store

        rejected = DisputeResolved(
            resolution_id=resolution_id(opened.dispute_id, Resolution.REJECTED, "the stay ended on 30 June", None),
            dispute_id=opened.dispute_id, resolution=Resolution.REJECTED, note="the stay ended on 30 June",
            resolved_by="operator", resolved_on=dt.date(2024, 2, 12))
        # A decision on a dispute never opened, and a second decision on a decided one: refused.
        stray = DisputeResolved(resolution_id="a" * 32, dispute_id="b" * 32, resolution=Resolution.REJECTED,
                                note="no such dispute", resolved_by="operator", resolved_on=dt.date(2024, 2, 12))
        second = rejected.model_copy(update={"resolution_id": "c" * 32, "resolution": Resolution.UPHELD,
                                             "correcting_reported_by": "alsskolen", "correcting_event_id": "x-1"})
        await produce(servers.bootstrap_servers, disputes,
                      [r.model_dump_json().encode() for r in (rejected, stray, second)])
        await wait_for_state(database_url, opened.dispute_id, DisputeState.REJECTED)
        assert await payout("second.csv") == sorted([disputed.payment_id, undisputed.payment_id])

        # The institution reads its dispute and the operator's reason, as the front door's role.
        [seen] = await frontdoor_reads(servers, database_url,
                                       lambda desk: desk.disputes_of_payment("alsskolen", disputed.payment_id))
        assert (seen.state, seen.reason, seen.note, seen.decision_note) == (
            DisputeState.REJECTED, "wrong_dates", "the stay ended on 31 July", "the stay ended on 30 June")
        assert await frontdoor_reads(servers, database_url,
                                     lambda desk: desk.disputes_of_payment("jobvejen", disputed.payment_id)) == []
        assert await frontdoor_reads(servers, database_url, lambda desk: desk.open_disputes()) == []
        dead_letters = in_namespace(DEAD_LETTERS, namespace).name
        deadline = asyncio.get_running_loop().time() + WAIT_S
        wanted = {b"unauthenticated_dispute", b"unknown_dispute", b"dispute_closed"}
        while wanted - {r for r in wanted for _, value in await read_all(servers.bootstrap_servers, dead_letters)
                        if r in value}:
            assert asyncio.get_running_loop().time() < deadline, "the refused dispute records were not dead-lettered"
            await asyncio.sleep(0.5)
        assert await scalar(database_url, "SELECT count(*) FROM ledger_disputes") == 2  # opened, rejected
    finally:
        ledger.stop()


async def test_an_upheld_dispute_holds_the_money_until_the_correction_it_names_is_in_the_ledger(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    """The operator upholds naming the correcting event; the verifier's adjustment (derived
    from that event) reaches the ledger later, through its outbox and the journal. A run in
    between pays nothing of the outcome; the next, once the adjustment is in, pays it."""
    journal, disputes = in_namespace(PAYMENTS, namespace).name, in_namespace(DISPUTES, namespace).name
    env = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    disputed = with_trigger(payment(41, "alsskolen", 10_000, 3), "t-41")
    key = outcome_key_of(disputed)
    opened = DisputeOpened(dispute_id=dispute_id(key, "alsskolen"), outcome_key=key, contract_id=disputed.contract_id,
                           outcome_id=disputed.outcome_id, institution="alsskolen", reason="wrong_dates",
                           opened_by="alsskolen", opened_on=dt.date(2024, 2, 1), window_closes_on=dt.date(2024, 2, 10))
    upheld = DisputeResolved(
        resolution_id=resolution_id(opened.dispute_id, Resolution.UPHELD, "", ("alsskolen", "fix-41")),
        dispute_id=opened.dispute_id, resolution=Resolution.UPHELD, resolved_by="operator",
        resolved_on=dt.date(2024, 2, 12), correcting_reported_by="alsskolen", correcting_event_id="fix-41")
    # The verifier's adjustment: 2,000 of the payment clawed back, its id derived from the
    # correcting event as reconcile derives it (the line's second instruction).
    adjustment = disputed.model_copy(update={
        "payment_id": clawback_id(disputed.payment_id, "fix-41", 1), "kind": PaymentKind.CLAWBACK,
        "reverses_payment_id": disputed.payment_id, "amount_minor": 2_000})
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    try:
        await produce(servers.bootstrap_servers, journal, [disputed.model_dump_json().encode()])
        await produce(servers.bootstrap_servers, disputes, [r.model_dump_json().encode() for r in (opened, upheld)])
        await wait_for_entries(database_url, 1)
        await wait_for_state(database_url, opened.dispute_id, DisputeState.UPHELD)

        def payout(name: str) -> Awaitable[list[str]]:
            return paid_out(env, journal, database_url, tmp_path / name)

        assert await payout("early.csv") == []  # upheld, but the correction's money is not in yet
        await produce(servers.bootstrap_servers, journal, [adjustment.model_dump_json().encode()])
        await wait_for_entries(database_url, 2)
        assert await payout("after.csv") == [disputed.payment_id]
        assert await scalar(database_url, "SELECT sum(amount_minor) FROM payout_lines") == 10_000
    finally:
        ledger.stop()


async def test_a_dispute_kept_after_its_outcome_went_out_in_a_payout_run_is_flagged_for_the_operator(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    """The front door checked the window against the verifier's frontier; the ledger reads the
    disputes topic in a group of its own, so the payment was final and in a run first. The
    dispute is kept (it holds what is not paid yet) and the operator's queue names the run."""
    journal, disputes = in_namespace(PAYMENTS, namespace).name, in_namespace(DISPUTES, namespace).name
    env = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    paid = with_trigger(payment(51, "alsskolen", 10_000, 3), "t-51")
    key = outcome_key_of(paid)
    opened = DisputeOpened(dispute_id=dispute_id(key, "alsskolen"), outcome_key=key, contract_id=paid.contract_id,
                           outcome_id=paid.outcome_id, institution="alsskolen", reason="wrong_dates",
                           opened_by="alsskolen", opened_on=dt.date(2024, 2, 1), window_closes_on=dt.date(2024, 2, 10))
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    try:
        await produce(servers.bootstrap_servers, journal, [paid.model_dump_json().encode()])
        await wait_for_entries(database_url, 1)
        code, _out, err = await stafet(env, "finance", "payout", "--from", "2024-02-01", "--to", "2024-02-20",
                                      "--execution-date", "2024-03-01", "--journal-topic", journal,
                                      "--out", str(tmp_path / "run.csv"), "--format", "csv")
        assert code == 0, err
        run = await scalar(database_url, "SELECT export_id FROM payout_lines WHERE payment_id = $1", paid.payment_id)
        assert run is not None
        await produce(servers.bootstrap_servers, disputes, [opened.model_dump_json().encode()])
        await wait_for_state(database_url, opened.dispute_id, DisputeState.OPEN)
        queued = await frontdoor_reads(servers, database_url, lambda desk: desk.open_disputes())
        assert [(d.dispute_id, d.in_payout_run) for d in queued] == [(opened.dispute_id, run)]
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while "already_in_payout_run" not in (tmp_path / "ledger.log").read_text():
            assert asyncio.get_running_loop().time() < deadline, "the late dispute was not logged with its reason"
            await asyncio.sleep(0.2)
    finally:
        ledger.stop()
