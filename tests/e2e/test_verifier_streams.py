"""The verifier's stream cache against real PostgreSQL (services/verifier/streams.py): two
writers over one store, each with a cache of its own, store exactly what one writer
without a cache stores, and a cached stream is never used once someone else appended."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from cli.reporting.simulate import transitions_of
from cli.synthetic.population import generate, to_json_line
from services.verifier import store
from services.verifier.batch import process_batch
from services.verifier.streams import StreamCache
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.loader import load_contract
from shared.domain.events import Transition
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT
from tests.conftest import new_database
from tests.servers import Servers
from tests.unit.builders import SUBJECT, enrolled, left

pytestmark = pytest.mark.e2e
CONTRACTS = ("mobility-bonus.yaml", "next-stage-bonus.yaml", "sib-youth-education.yaml")
BATCH = 37  # so that subjects' events straddle batches


def population() -> tuple[list[Transition], dict[str, InstitutionInfo], ContractBook]:
    institutions, events = generate(60, seed=5, municipalities=2)
    transitions, _ = transitions_of((to_json_line(e) for e in events), InstitutionRegistry(institutions))
    directory = {i.id: InstitutionInfo(i.kind, i.municipality) for i in institutions}
    return transitions, directory, ContractBook.of(
        load_contract(REPO_ROOT / "examples" / "contracts" / name) for name in CONTRACTS)


async def stored(pool: asyncpg.Pool) -> dict[str, list[tuple[object, ...]]]:
    async with pool.acquire() as connection:
        return {
            "outcomes": [tuple(r) for r in await connection.fetch(
                "SELECT outcome_key, status, reason, owed_minor, decision FROM verifier_outcomes ORDER BY 1")],
            "payments": [tuple(r) for r in await connection.fetch(
                "SELECT payment_id, instruction FROM verifier_payments ORDER BY 1")],
            "claims": [tuple(r) for r in await connection.fetch(
                "SELECT budget, outcome_key, granted_minor FROM verifier_budget_requests ORDER BY 1, 2")],
            "outbox": [tuple(r) for r in await connection.fetch(
                "SELECT topic, key, payload FROM verifier_outbox ORDER BY sequence")],
        }


def watermark(events: list[Transition]) -> dt.date:
    return max(t.occurred_on for t in events)


async def drain(pool: asyncpg.Pool, book: ContractBook, directory: dict[str, InstitutionInfo]) -> None:
    for _ in range(1000):
        if (await process_batch(pool, book, [], directory)).timers_still_due == 0:
            return
    raise AssertionError("never drained")


@pytest.fixture
def other_database(servers: Servers) -> str:
    return new_database(servers)


async def test_two_writers_with_caches_of_their_own_store_what_one_writer_without_a_cache_does(
        other_database: str, pool: asyncpg.Pool) -> None:
    transitions, directory, book = population()
    batches = [transitions[n:n + BATCH] for n in range(0, len(transitions), BATCH)]
    # Two replicas take turns on one store, two batches each: a subject's events that
    # straddle two batches of one replica extend its cached stream, those that straddle
    # the two replicas' turns are appended to a stream the other one cached.
    caches = (StreamCache(), StreamCache())
    for n, events in enumerate(batches):
        # A watermark after every batch (the facts so far are in): later batches' facts
        # that it covers are corrections, decided by the next one.
        await process_batch(pool, book, events, directory, [watermark(events)], streams=caches[n // 2 % 2])
    await drain(pool, book, directory)
    assert all(cache.hits > 0 for cache in caches)
    alone = await asyncpg.create_pool(other_database, min_size=1, max_size=2)
    assert alone is not None
    try:
        for events in batches:
            await process_batch(alone, book, events, directory, [watermark(events)])
        await drain(alone, book, directory)
        expected = await stored(alone)
    finally:
        await alone.close()
    assert expected["payments"]
    assert expected["claims"]
    assert await stored(pool) == expected


async def test_a_cached_stream_is_not_used_after_another_writer_appended_to_it(pool: asyncpg.Pool) -> None:
    first, second, third = (enrolled("e-1", "2010-08-01", "alsskolen"), left("e-2", "2017-06-30", "alsskolen"),
                            enrolled("e-3", "2017-08-01", "byskolen"))
    book = ContractBook.of([load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")])
    mine, theirs = StreamCache(), StreamCache()
    await process_batch(pool, book, [first], {}, streams=mine)
    assert mine.get(SUBJECT, 1) == (first,)
    await process_batch(pool, book, [second], {}, streams=theirs)  # the stream is at version 2 now
    await process_batch(pool, book, [third], {}, streams=mine)
    async with pool.acquire() as connection:
        in_store = tuple((await store.load_streams(connection, [SUBJECT]))[SUBJECT])
    # `mine` read the stream from the store (its version-1 entry was stale): it holds
    # the other writer's event, in the stored order.
    assert in_store == (first, second, third)
    assert mine.get(SUBJECT, 3) == in_store


async def test_a_batch_that_rolled_back_leaves_its_streams_out_of_the_cache(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, third = (enrolled("e-1", "2010-08-01", "alsskolen"), left("e-2", "2017-06-30", "alsskolen"),
                            enrolled("e-3", "2017-08-01", "byskolen"))
    book = ContractBook.of([load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")])
    cache = StreamCache()
    await process_batch(pool, book, [first], {}, streams=cache)

    async def broken(*_: object) -> None:
        raise ConnectionError("lost the database before the commit")

    monkeypatch.setattr(store, "enqueue", broken)
    with pytest.raises(ConnectionError):
        await process_batch(pool, book, [second], {}, streams=cache)
    monkeypatch.undo()
    # Version 2 was never committed: had the cache kept (first, second) as version 2,
    # the next event to become version 2 would be evaluated beside `second`.
    assert cache.get(SUBJECT, 2) is None
    await process_batch(pool, book, [third], {}, streams=cache)
    assert cache.get(SUBJECT, 2) == (first, third)
