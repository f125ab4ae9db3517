"""`make determinism`: the same ledger from the same log (docs/contracts.md, "Finality").

One recorded log (the demo's municipality by default: its admitted facts on the six
transitions partitions, watermarks part-way through each partition and after the last
fact) is replayed through the verifier's real batch core (`process_batch`, one
PostgreSQL transaction per batch) in several ways: batches of 1, 7, 500 and all of it;
the partitions read one after another, in reverse, and interleaved at random (seeded);
by one replica and by two sharing the partitions; and with a crash at a fault point (a
batch rolled back just before its outbox is written, then delivered again). Each
variant runs in a database of its own.

Printed per variant and contract: the gross instructed, the gross clawed back, the part
of that clawed back without a correcting event to name (must be 0), and whether the
variant issued the same instructions (ids, kinds and amounts) as the first (must be
yes). Exit status 1 if any variant differs or claws back without a cause.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import random
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from cli.demo import CONTRACT_FILES, DEMO_WATERMARK, demo_population
from cli.reporting.simulate import transitions_of
from cli.synthetic.population import to_json_line
from services.verifier import store
from services.verifier.batch import Arrival, process_batch
from services.verifier.streams import StreamCache
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.loader import load_contract
from shared.domain.events import ClockTick, PaymentInstruction, PaymentKind, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.platform.db import create_pool, migrate, recreate_database
from shared.platform.stack import LocalStack, free_port
from shared.platform.topics import TRANSITIONS

PARTITIONS = tuple(range(TRANSITIONS.partitions))
# Watermarks part-way through each partition's log (a fact after one of them that it
# covers is a correction), then the demo's own after the last fact.
MIDWAY_WATERMARKS = (dt.date(2012, 12, 31), dt.date(2018, 12, 31), dt.date(2023, 12, 31))
DRAIN_ROUNDS_MAX = 10_000


@dataclass(frozen=True)
class RecordedLog:
    partitions: dict[int, list[Arrival]]
    book: ContractBook
    directory: dict[str, InstitutionInfo]

    @property
    def facts(self) -> int:
        return sum(1 for log in self.partitions.values() for _, r in log if isinstance(r, Transition))


def partition_of(subject: str) -> int:
    return int(hashlib.sha256(subject.encode()).hexdigest(), 16) % len(PARTITIONS)


def recorded_log(subjects: int, seed: int, midway: Sequence[dt.date] = MIDWAY_WATERMARKS) -> RecordedLog:
    """The demo's municipality as the verifier reads it: each subject's facts on its
    partition in publishing order, every watermark on every partition."""
    institutions, generated = demo_population(subjects, seed)
    transitions, _ = transitions_of((to_json_line(e) for e in generated), InstitutionRegistry(institutions))
    facts: dict[int, list[Transition]] = defaultdict(list)
    for transition in transitions:
        facts[partition_of(transition.subject)].append(transition)
    partitions: dict[int, list[Arrival]] = {}
    for partition in PARTITIONS:
        mine = facts.get(partition, [])
        log: list[Arrival] = []
        cuts = [len(mine) * (n + 1) // (len(midway) + 1) for n in range(len(midway))]
        at = 0
        for mark, cut in zip(midway, cuts, strict=True):
            log.extend((partition, t) for t in mine[at:cut])
            log.append((partition, ClockTick(today=mark)))
            at = cut
        log.extend((partition, t) for t in mine[at:])
        log.append((partition, ClockTick(today=DEMO_WATERMARK)))
        partitions[partition] = log
    book = ContractBook.of(load_contract(path) for path in CONTRACT_FILES)
    directory = {i.id: InstitutionInfo(i.kind, i.municipality) for i in institutions}
    return RecordedLog(partitions, book, directory)


def interleave(partitions: dict[int, list[Arrival]], how: str, seed: int) -> list[Arrival]:
    """One reading order of the per-partition logs; each partition's own order is kept."""
    if how == "log order":
        return [a for p in sorted(partitions) for a in partitions[p]]
    if how == "reversed":
        return [a for p in sorted(partitions, reverse=True) for a in partitions[p]]
    chance = random.Random(seed)
    queues = {p: list(reversed(log)) for p, log in partitions.items()}
    merged: list[Arrival] = []
    while any(queues.values()):
        merged.append(queues[chance.choice([p for p, q in queues.items() if q])].pop())
    return merged


@dataclass(frozen=True)
class Variant:
    batch: int  # 0: the whole log in one batch
    order: str
    replicas: int = 1
    crash: bool = False

    @property
    def name(self) -> str:
        size = "all at once" if self.batch == 0 else f"batches of {self.batch}"
        return (f"{size}, {self.order}, {self.replicas} replica{'s' if self.replicas > 1 else ''}"
                + (", a crash" if self.crash else ""))


FULL = (Variant(1, "log order"), Variant(7, "log order"), Variant(500, "log order"), Variant(0, "log order"),
        Variant(500, "reversed"), Variant(500, "random"), Variant(7, "random"),
        Variant(500, "random", replicas=2), Variant(500, "log order", crash=True))


@dataclass(frozen=True)
class Outcome:
    instructions: frozenset[tuple[str, str, str, int]]  # (contract, payment id, kind, amount)
    reasons: dict[str, str]  # payment id -> final | correction | recheck


@contextmanager
def crash_once(at_call: int) -> Iterator[None]:
    """A crash at a fault point: the `at_call`-th batch fails just before it writes its
    outbox, so its transaction rolls back and the batch is delivered again."""
    original = store.enqueue
    calls = 0

    async def enqueue(connection: asyncpg.Connection, records: Sequence[tuple[str, str, str]]) -> None:
        nonlocal calls
        calls += 1
        if calls == at_call:
            raise ConnectionResetError("determinism: crash before the outbox is written")
        await original(connection, records)

    store.enqueue = enqueue  # type: ignore[assignment]
    try:
        yield
    finally:
        store.enqueue = original  # type: ignore[assignment]


async def run_variant(url: str, log: RecordedLog, variant: Variant, seed: int) -> Outcome:
    await migrate(url)
    pool = await create_pool(url, max_size=variant.replicas + 1)
    try:
        arrivals = interleave(log.partitions, variant.order, seed)

        async def batch(records: list[Arrival], streams: StreamCache) -> int:
            for _ in range(2):
                try:
                    result = await process_batch(pool, log.book, [], log.directory, streams=streams,
                                                 arrivals=records, partition_ids=PARTITIONS)
                    return result.timers_still_due
                except ConnectionResetError:
                    continue  # rolled back: delivered again, as Kafka redelivers an uncommitted batch
            raise AssertionError("a batch failed twice")

        async def replica(number: int) -> None:
            streams = StreamCache()
            mine = [a for a in arrivals if a[0] % variant.replicas == number]
            size = variant.batch or len(mine) or 1
            for first in range(0, len(mine), size):
                due = await batch(mine[first:first + size], streams)
                for _ in range(DRAIN_ROUNDS_MAX):
                    if due == 0:
                        break
                    due = await batch([], streams)

        with crash_once(3) if variant.crash else _nothing():
            await asyncio.gather(*(replica(n) for n in range(variant.replicas)))
            due = await batch([], StreamCache())
            for _ in range(DRAIN_ROUNDS_MAX):
                if due == 0:
                    break
                due = await batch([], StreamCache())
        async with pool.acquire() as connection:
            rows = await connection.fetch("SELECT instruction, reason FROM verifier_payments")
    finally:
        await pool.close()
    instructions = [(PaymentInstruction.model_validate_json(r["instruction"]), r["reason"]) for r in rows]
    return Outcome(frozenset((i.contract_id, i.payment_id, i.kind.value, i.amount_minor) for i, _ in instructions),
                   {i.payment_id: reason for i, reason in instructions})


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@dataclass(frozen=True)
class Row:
    variant: str
    contract: str
    instructed_minor: int
    clawed_back_minor: int
    without_cause_minor: int
    same: bool


def rows_of(variant: Variant, outcome: Outcome, reference: Outcome, contracts: Sequence[str]) -> list[Row]:
    same = outcome.instructions == reference.instructions
    rows = []
    for contract in contracts:
        mine = [(pid, kind, amount) for c, pid, kind, amount in outcome.instructions if c == contract]
        rows.append(Row(variant.name, contract,
                        sum(a for _, k, a in mine if k == PaymentKind.PAYMENT.value),
                        sum(a for _, k, a in mine if k == PaymentKind.CLAWBACK.value),
                        sum(a for p, k, a in mine if k == PaymentKind.CLAWBACK.value
                            and outcome.reasons.get(p) != "correction"),
                        same))
    return rows


def money(minor: int) -> str:
    return f"{minor / 100:,.2f}"


HEADER = f"{'variant':<48}{'contract':<32}{'instructed':>16}{'clawed back':>15}{'without cause':>15}  same"


def print_rows(rows: Sequence[Row], out: Callable[[str], None]) -> None:
    for row in rows:
        out(f"{row.variant:<48}{row.contract[:31]:<32}{money(row.instructed_minor):>16}"
            f"{money(row.clawed_back_minor):>15}{money(row.without_cause_minor):>15}  {'yes' if row.same else 'NO'}")


async def check(admin_url: str, log: RecordedLog, variants: Sequence[Variant], seed: int,
                out: Callable[[str], None] = print, databases: str = "stafet_determinism") -> list[Row]:
    """Every variant in a database of its own (`databases`_N); the first is the reference."""
    contracts = sorted({c.contract_id for c in log.book.all()})
    rows: list[Row] = []
    reference: Outcome | None = None
    out(HEADER)
    for number, variant in enumerate(variants):
        url = await recreate_database(admin_url, f"{databases}_{number}")
        outcome = await run_variant(url, log, variant, seed)
        reference = reference or outcome
        mine = rows_of(variant, outcome, reference, contracts)
        print_rows(mine, out)
        rows.extend(mine)
    return rows


def verdict(rows: Sequence[Row]) -> tuple[bool, str]:
    same = all(r.same for r in rows)
    without = sum(r.without_cause_minor for r in rows)
    return same and without == 0, (f"same instructions: {'yes' if same else 'no'}; "
                                   f"clawed back without a correcting event: {money(without)}")


async def main(subjects: int, seed: int, variants: Sequence[Variant]) -> int:
    log = recorded_log(subjects, seed)
    print(f"the log: {log.facts:,} facts of {subjects:,} children (seed {seed}) on {len(PARTITIONS)} partitions, "
          f"watermarks {', '.join(str(d) for d in MIDWAY_WATERMARKS)} part-way and {DEMO_WATERMARK} at the end; "
          f"contracts {', '.join(sorted(c.contract_id for c in log.book.all()))}")
    with tempfile.TemporaryDirectory(prefix="stafet-determinism-") as folder:
        stack = LocalStack(Path(folder), postgres_port=free_port(), database="postgres")
        await asyncio.to_thread(stack.prepare_credentials)
        await asyncio.to_thread(stack.start_postgres)
        try:
            rows = await check(stack.role_url("owner", "postgres"), log, variants, seed)
        finally:
            stack.down()
    ok, said = verdict(rows)
    print(said)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=2000, help="children in the municipality (the demo's 2000)")
    parser.add_argument("--seed", type=int, default=7, help="the municipality's seed (the demo's 7)")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.subjects, arguments.seed, FULL)))
