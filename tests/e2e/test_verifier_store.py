"""The verifier's SQL adapter and outbox relay against real PostgreSQL: subject streams,
issued payments, decisions, caps, timers, the clock, contracts, and the relay's crash
window (outbox rows are deleted only after the broker acknowledged them)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from services.verifier import batch, relay, store
from services.verifier.budgets import cap_bounds
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.payments import BudgetRequest
from shared.domain.events import ClockTick, PaymentInstruction, PaymentKind
from shared.domain.principals import Principal, Role
from shared.domain.signing import RecordSigner
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.trust import trusted_keys
from tests.unit.builders import enrolled, left

pytestmark = pytest.mark.e2e
OTHER_SUBJECT = "k1:" + "1" * 64


async def outbox_rows(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    async with pool.acquire() as connection:
        return [(r["topic"], r["key"], r["payload"]) for r in await connection.fetch(
            "SELECT topic, key, payload FROM verifier_outbox ORDER BY sequence")]


async def enqueue(pool: asyncpg.Pool, records: list[tuple[str, str, str]]) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await store.enqueue(connection, records)


RECORDS = [("payments", f"key-{n}", f"payload-{n}") for n in range(7)]


class Broker:
    """A stand-in for the Kafka publisher: records what was sent, acknowledges (or fails)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = fail

    async def publish(self, records: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
                      ) -> list[asyncio.Future[Any]]:
        acknowledgements = []
        for topic, key, payload, _ in records:
            self.sent.append((topic, key.decode(), payload.decode()))
            acknowledgement: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            if self.fail:
                acknowledgement.set_exception(ConnectionError("broker gone before acknowledging"))
            else:
                acknowledgement.set_result(None)
            acknowledgements.append(acknowledgement)
        return acknowledgements


async def test_the_relay_publishes_the_outbox_in_order_then_empties_it(pool: asyncpg.Pool) -> None:
    await enqueue(pool, RECORDS)
    broker = Broker()
    assert await relay.relay_outbox(pool, broker.publish) == len(RECORDS)
    assert broker.sent == RECORDS
    assert await outbox_rows(pool) == []
    assert await relay.relay_outbox(pool, broker.publish) == 0


async def test_the_verifier_signs_only_the_outbox_rows_its_own_transaction_wrote(pool: asyncpg.Pool) -> None:
    """Signed at the decision: a row another transaction wrote (a database login) stays
    unsigned, and the relay forwards it so; the ledger refuses it (docs/security.md)."""
    signer = RecordSigner.development("service:verifier")
    trust = trusted_keys(Settings(stafet_env="development"))
    async with pool.acquire() as connection:
        await connection.execute("INSERT INTO verifier_outbox (topic, key, payload) VALUES ('payments', 'x', '{}')")
        async with connection.transaction():
            await store.enqueue(connection, RECORDS)
            assert await store.sign_outbox(connection, signer) == len(RECORDS)
        async with connection.transaction():
            assert await store.sign_outbox(connection, signer) == 0  # the forged row is not this transaction's
        forged, *decided = await store.unpublished(connection, 100)
    assert forged[4] == []
    assert [(topic, key, payload) for _, topic, key, payload, _ in decided] == RECORDS
    for _, topic, key, payload, headers in decided:
        assert trust.authenticate(topic, key.encode(), payload.encode(), headers) == Principal(Role.SERVICE, "verifier")


async def test_the_relay_works_in_bounded_rounds(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "RELAY_BATCH_MAX", 3)
    await enqueue(pool, RECORDS)
    broker = Broker()
    assert await relay.relay_outbox(pool, broker.publish) == len(RECORDS)
    assert broker.sent == RECORDS


async def test_outbox_rows_stay_until_the_broker_acknowledged_them_and_go_out_again_after_a_crash(
        pool: asyncpg.Pool) -> None:
    await enqueue(pool, RECORDS)
    with pytest.raises(ConnectionError):
        await relay.relay_outbox(pool, Broker(fail=True).publish)
    assert await outbox_rows(pool) == RECORDS, "rows were deleted before the broker acknowledged them"
    again = Broker()
    assert await relay.relay_outbox(pool, again.publish) == len(RECORDS)
    assert again.sent == RECORDS
    assert await outbox_rows(pool) == []


async def test_two_relays_at_once_publish_every_row_once_in_order(pool: asyncpg.Pool) -> None:
    # Two replicas' relays over the same outbox: each round holds the relay's lock.
    await enqueue(pool, RECORDS)
    first, second = Broker(), Broker()
    counts = await asyncio.gather(relay.relay_outbox(pool, first.publish), relay.relay_outbox(pool, second.publish))
    assert sorted(counts) == [0, len(RECORDS)]
    # One relay's round published everything, in order; the other found nothing left.
    assert sorted([first.sent, second.sent], key=len) == [[], RECORDS]
    assert await outbox_rows(pool) == []


async def test_each_partition_keeps_its_own_watermark_and_event_time_is_the_least_of_them(
        pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        await store.advance_watermarks(connection, {0: dt.date(2024, 3, 1), 1: dt.date(2024, 1, 1)})
        # Partition 1's replica reads an older watermark than it had: it stays.
        await store.advance_watermarks(connection, {1: dt.date(2023, 6, 1)})
        marks = await store.watermarks(connection)
    assert (marks[0], marks[1]) == (dt.date(2024, 3, 1), dt.date(2024, 1, 1))
    # No partition's facts move another's time: event time is the least watermark, and a
    # partition that has none yet holds it at the start.
    assert store.global_watermark(marks, (0, 1)) == dt.date(2024, 1, 1)
    assert store.global_watermark(marks, (0, 1, 2)) == store.EPOCH


async def test_work_left_counts_the_outbox_due_timers_and_a_frontier_behind_the_watermark(
        pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        assert await store.work_left(connection) == 0
        await store.enqueue(connection, RECORDS[:2])
        await store.note_watermark(connection, dt.date(2024, 1, 10))
        await store.set_timers(connection, [("s1", dt.date(2024, 1, 10)), ("s2", dt.date(2024, 1, 11))])
        assert await store.work_left(connection) == 4  # two records, one timer due, the frontier behind
        await store.set_frontier(connection, dt.date(2024, 1, 10), dt.date(2024, 1, 10))
        assert await store.work_left(connection) == 3
        await store.mark_published(connection, [s for s, *_ in await store.unpublished(connection, 1)])
        assert await store.work_left(connection) == 2


async def test_two_replicas_moving_the_last_watermarks_at_once_move_the_frontier(pool: asyncpg.Pool) -> None:
    """Found by `make chaos SEED=2`: replica A reads partition 0's last watermark while
    replica B reads partition 1's. Each, reading the other's partition as it was, saw no
    global watermark move; both committed, and the frontier stayed behind with nothing
    left to move it (outcomes stayed provisional). A batch that moves a watermark holds
    the frontier alone, and the second reads the first's watermark once it has it."""
    before, after = dt.date(2024, 1, 1), dt.date(2024, 6, 30)
    async with pool.acquire() as connection:
        await store.advance_watermarks(connection, {0: before, 1: before})
        await store.set_frontier(connection, before, before)
    async with pool.acquire() as a, pool.acquire() as b:
        first = a.transaction()
        await first.start()
        moved_by_a, _ = await batch.move_frontier(a, [(0, ClockTick(today=after))], [], (0, 1))
        assert moved_by_a.now == before  # partition 1 still holds event time back

        async def replica_b() -> batch.Frontier:
            async with b.transaction():
                frontier, _ = await batch.move_frontier(b, [(1, ClockTick(today=after))], [], (0, 1))
                return frontier

        second = asyncio.create_task(replica_b())
        await asyncio.sleep(0.5)  # B is at the frontier lock (or, without it, done already)
        await first.commit()
        moved_by_b = await second
    assert moved_by_b.now == after
    async with pool.acquire() as connection:
        assert await store.frontier(connection) == (after, after)
        assert await store.work_left(connection) == 0


async def test_events_are_stored_once_per_event_id_with_a_version_per_subject(pool: asyncpg.Pool) -> None:
    first, second = enrolled("e-1", "2010-08-01", "alsskolen"), left("e-2", "2017-06-30", "alsskolen")
    other = enrolled("e-3", "2011-08-01", "alsskolen").model_copy(update={"subject": OTHER_SUBJECT})
    async with pool.acquire() as connection:
        subjects, new = await store.append_events(connection, [first, first, other])
        assert (subjects, new) == ({first.subject, OTHER_SUBJECT}, 2)
        subjects, new = await store.append_events(connection, [first, second])
        assert (subjects, new) == ({first.subject}, 1)
        assert await store.append_events(connection, [second]) == (set(), 0)
        streams = await store.load_streams(connection, [first.subject, OTHER_SUBJECT])
        versions = [r["version"] for r in await connection.fetch(
            "SELECT version FROM verifier_events WHERE subject = $1 ORDER BY version", first.subject)]
    assert streams == {first.subject: [first, second], OTHER_SUBJECT: [other]}
    assert versions == [1, 2]


def instruction(n: int, subject: str, contract: str = "c") -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=f"{n:032x}", kind=PaymentKind.PAYMENT, contract_id=contract, contract_version=1,
        outcome_id="o", subject=subject, payer="payer", payee="school", amount_minor=100 + n,
        currency="DKK", occurred_on=dt.date(2024, 1, 1))


async def test_issued_payments_come_back_per_subject_and_contract(pool: asyncpg.Pool) -> None:
    subject = enrolled("e", "2010-08-01", "x").subject
    issued = [instruction(1, subject), instruction(2, subject, "d"), instruction(3, OTHER_SUBJECT)]
    async with pool.acquire() as connection:
        await store.record_payments(connection, issued)
        assert await store.issued_payments(connection, [subject]) == {
            (subject, "c"): [issued[0]], (subject, "d"): [issued[1]]}
        with pytest.raises(asyncpg.UniqueViolationError):  # a payment id is issued once, ever
            await store.record_payments(connection, issued[:1])


async def test_a_decision_saved_again_replaces_the_earlier_one(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        decision = '{"contract_version": 2}'
        await store.save_decisions(connection, [("k", "s", "c", "verified", None, 500, decision)])
        await store.save_decisions(connection, [("k", "s", "c", "rejected", "evidence_withdrawn", 0, decision)])
        assert await store.stored_decisions(connection, ["s"]) == {"k": ("rejected", "evidence_withdrawn", 0, 2)}


async def test_a_subjects_budget_requests_are_replaced_as_a_whole(pool: asyncpg.Pool) -> None:
    def request(key: str, subject: str, amount: int) -> BudgetRequest:
        return BudgetRequest("c", key, subject, dt.date(2024, 1, 1), amount, 1000, None)

    async with pool.acquire() as connection, connection.transaction():
        assert await store.budget_claims(connection, ["c"]) == []
        await store.replace_budget_requests(connection, ["s", "t"], [request("k1", "s", 500), request("k2", "t", 300)])
        await store.replace_budget_requests(connection, ["s"], [request("k3", "s", 200)])
        loaded = [c.request for c in await store.budget_claims(connection, ["c"])]
    assert sorted(loaded, key=lambda r: r.outcome_key) == [request("k2", "t", 300), request("k3", "s", 200)]


async def test_claims_stored_before_grants_were_are_granted_over_every_claim_once(pool: asyncpg.Pool) -> None:
    def request(key: str, subject: str, amount: int, day: int) -> BudgetRequest:
        return BudgetRequest("c", key, subject, dt.date(2024, 1, day), amount, 1000, None)

    async with pool.acquire() as connection, connection.transaction():
        # As sql/009 leaves an upgraded installation's claims: no grant stored.
        await store.replace_budget_requests(connection, ["s", "t"], [request("k1", "s", 600, 2), request("k2", "t", 600, 3)])
        assert await store.ungranted(connection, "c")
        regranted = await batch.regrant(connection, "c", cap_bounds([(1000, None)]), [], [request("k0", "u", 300, 1)])
        assert (regranted.grants, regranted.others, regranted.moved) == ({"k0": 300}, {"k1": 600, "k2": 100}, {"t"})
        await store.replace_budget_requests(connection, ["u"], [request("k0", "u", 300, 1)], regranted.grants)
        await store.set_grants(connection, "c", regranted.others)
        await store.recount_days(connection, "c")
        assert not await store.ungranted(connection, "c")
        days = await store.budget_days(connection, "c")
    assert (days.requested, days.granted) == ([300, 600, 600], [300, 600, 100])


async def test_a_watermark_never_goes_back_and_due_timers_are_taken_oldest_first_within_the_limit(
        pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        await store.advance_watermarks(connection, {0: dt.date(2024, 3, 1)})
        await store.advance_watermarks(connection, {0: dt.date(2024, 1, 1)})
        assert (await store.watermarks(connection))[0] == dt.date(2024, 3, 1)
        await store.set_timers(connection, [("b", dt.date(2024, 1, 2)), ("a", dt.date(2024, 1, 3)),
                                            ("c", dt.date(2024, 1, 1)), ("d", dt.date(2024, 5, 1))])
        assert await store.timers_due(connection, dt.date(2024, 3, 1)) == 3
        assert await store.take_due_timers(connection, dt.date(2024, 3, 1), 2) == {"c", "b"}
        assert await store.take_due_timers(connection, dt.date(2024, 3, 1), 10) == {"a"}
        assert await store.timers_due(connection, dt.date(2024, 3, 1)) == 0


async def test_a_new_contract_version_is_stored_once_and_schedules_every_known_subject(pool: asyncpg.Pool) -> None:
    contract = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")
    async with pool.acquire() as connection:
        await store.append_events(connection, [enrolled("e-1", "2010-08-01", "alsskolen")])
        assert await store.save_contract(connection, contract) is True
        assert await store.save_contract(connection, contract) is False
        assert await store.load_contracts(connection) == [contract]
        assert await store.take_due_timers(connection, dt.date(1900, 1, 1), 10) == \
            {enrolled("e", "2010-08-01", "x").subject}
