"""`make profile`: the verifier's batch processing in-process, timed, counted and profiled.

No Kafka: synthetic events are admitted with the pure ingest code, then fed to
`process_batch` (the verifier's one-transaction-per-batch core) in batches of 500 under
the four example contracts, against a real PostgreSQL that this script starts on a free
port in a temporary folder. It prints, per tenth of the input and in all:

- CPU seconds per 100,000 events of this process (user+sys, `os.times`), of the
  PostgreSQL backend serving it and of the whole PostgreSQL server (its processes, the
  ones that exited included), from /proc: wall time is meaningless on a shared machine;
- per batch: subjects evaluated, events folded (stream rows read), and the rows each
  store function read or wrote (counted on the connection), and which tables PostgreSQL
  read how many rows from (`pg_stat_user_tables`), so that what grows with the
  population or the store shows up as a number that grows from the first tenth to the
  last;
- with --profile, a pyinstrument profile of the first and of the last tenth.

`--subjects 5000` and `--subjects 50000` are the population pair of docs/performance.md
(the cost per event should not grow with the population); `--json F` keeps the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from pyinstrument import Profiler

from bench.measure import own_cpu_s, per_100k, process_cpu_s, process_tree_cpu_s
from cli.reporting.simulate import transitions_of
from cli.synthetic.population import generate, to_json_line
from services.verifier.batch import process_batch
from services.verifier.streams import StreamCache
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.loader import load_contract
from shared.domain.events import Transition
from shared.domain.institutions import InstitutionRegistry
from shared.platform.db import migrate, recreate_database
from shared.platform.settings import REPO_ROOT
from shared.platform.stack import LocalStack, free_port

CONTRACTS = ("mobility-bonus.yaml", "employment-pbr.yaml", "next-stage-bonus.yaml", "sib-youth-education.yaml")
BATCH = 500
TENTHS = 10
DATABASE = "stafet_profile"
_ROWS_AFFECTED = re.compile(r"(\d+)$")


class CountingConnection(asyncpg.Connection):  # type: ignore[misc]
    """Counts, per calling function (`store.load_streams`, ...), the calls and the rows
    each statement returned or changed."""

    calls: Counter[str]
    rows: Counter[str]

    def _count(self, rows: int) -> None:
        if not hasattr(self, "calls"):
            self.calls, self.rows = Counter(), Counter()
        frame = sys._getframe(2)
        while frame.f_code.co_name.startswith("<"):  # a comprehension's own frame
            assert frame.f_back is not None
            frame = frame.f_back
        module = frame.f_globals.get("__name__", "?").rpartition(".")[2]
        label = f"{module}.{frame.f_code.co_name}"
        self.calls[label] += 1
        self.rows[label] += rows

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list[Any]:
        result: list[Any] = await super().fetch(query, *args, **kwargs)
        self._count(len(result))
        return result

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        result = await super().fetchrow(query, *args, **kwargs)
        self._count(int(result is not None))
        return result

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        result = await super().fetchval(query, *args, **kwargs)
        self._count(1)
        return result

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        status: str = await super().execute(query, *args, **kwargs)
        affected = _ROWS_AFFECTED.search(status or "")
        self._count(int(affected.group(1)) if affected else 0)
        return status

    async def executemany(self, command: str, args: Any, **kwargs: Any) -> None:
        args = list(args)
        await super().executemany(command, args, **kwargs)
        self._count(len(args))


@dataclass
class Tenth:
    events: int = 0
    batches: int = 0
    subjects: int = 0
    new_events: int = 0
    cpu_s: float = 0.0
    backend_s: float = 0.0
    server_s: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    table_rows: Counter[str] = field(default_factory=Counter)
    full_collections: int = 0
    full_collection_s: float = 0.0

    def figures(self) -> dict[str, object]:
        return {"events": self.events, "batches": self.batches, "subjects_evaluated": self.subjects,
                "cpu_s_per_100k": round(per_100k(self.cpu_s, self.events), 2),
                "full_collections": self.full_collections, "full_collection_s": round(self.full_collection_s, 3),
                "backend_cpu_s_per_100k": round(per_100k(self.backend_s, self.events), 2),
                "server_cpu_s_per_100k": round(per_100k(self.server_s, self.events), 2),
                "per_batch_calls": {k: round(v / self.batches, 2) for k, v in sorted(self.calls.items())},
                "per_batch_rows": {k: round(v / self.batches, 1) for k, v in sorted(self.rows.items())},
                "per_batch_table_rows_read": {k: round(v / self.batches, 1)
                                              for k, v in sorted(self.table_rows.items()) if v}}


async def table_reads(connection: asyncpg.Connection) -> Counter[str]:
    """Rows PostgreSQL has read per table so far, by sequential scans and by index, and
    the table's and its indexes' pages it had to read from outside its shared buffers."""
    await connection.execute("SELECT pg_stat_force_next_flush()")
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    reads: Counter[str] = Counter()
    for r in await asyncpg.Connection.fetch(
            connection, "SELECT relname, seq_tup_read, idx_tup_fetch FROM pg_stat_user_tables"):
        reads[f"{r['relname']} (sequential scans)"] = int(r["seq_tup_read"] or 0)
        reads[f"{r['relname']} (index fetches)"] = int(r["idx_tup_fetch"] or 0)
    # Pages not found in PostgreSQL's shared buffers (read from the OS): a store larger
    # than its buffers costs the backend reads, whatever each statement reads.
    for r in await asyncpg.Connection.fetch(
            connection, "SELECT relname, heap_blks_read, idx_blks_read FROM pg_statio_user_tables"):
        reads[f"{r['relname']} (pages read past the buffers)"] = int(r["heap_blks_read"] or 0) + int(
            r["idx_blks_read"] or 0)
    return reads


def load(subjects: int) -> tuple[list[Transition], dict[str, InstitutionInfo], ContractBook]:
    institutions, events = generate(subjects, seed=1, municipalities=3)
    registry = InstitutionRegistry(institutions)
    transitions, _ = transitions_of((to_json_line(e) for e in events), registry)
    directory = {i.id: InstitutionInfo(i.kind, i.municipality) for i in institutions}
    book = ContractBook.of(load_contract(REPO_ROOT / "examples" / "contracts" / name) for name in CONTRACTS)
    return transitions, directory, book


async def run(url: str, postmaster: int, transitions: Sequence[Transition],
              directory: dict[str, InstitutionInfo], book: ContractBook, profile: bool
              ) -> tuple[list[Tenth], list[Profiler]]:
    connection: CountingConnection = await asyncpg.connect(url, connection_class=CountingConnection)
    # `process_batch` takes a pool; this one hands out the one counted connection.
    pool = _OneConnection(connection)
    backend = await asyncpg.Connection.fetchval(connection, "SELECT pg_backend_pid()")
    batches = [transitions[first:first + BATCH] for first in range(0, len(transitions), BATCH)]
    bounds = [len(batches) * n // TENTHS for n in range(TENTHS + 1)]
    streams = StreamCache()  # as the service keeps one
    tenths: list[Tenth] = []
    profiles: list[Profiler] = []
    collector = FullCollections()
    gc.callbacks.append(collector.observe)
    for n in range(TENTHS):
        tenth = Tenth()
        profiler = Profiler(async_mode="enabled") if profile and n in (0, TENTHS - 1) else None
        reads = await table_reads(connection)
        connection.calls, connection.rows = Counter(), Counter()
        cpu, backend_s, server_s = own_cpu_s(), process_cpu_s(backend), process_tree_cpu_s(postmaster)
        if profiler:
            profiler.start()
        for batch in batches[bounds[n]:bounds[n + 1]]:
            # A watermark after each batch, as a scheduler publishing "today" would: the
            # facts so far are in, and what they make final is decided in this batch.
            result = await process_batch(pool, book, batch, directory, [max(t.occurred_on for t in batch)],  # type: ignore[arg-type]
                                         streams=streams)
            tenth.events += len(batch)
            tenth.batches += 1
            tenth.subjects += result.subjects_evaluated
            tenth.new_events += result.new_events
        if profiler:
            profiler.stop()
            profiles.append(profiler)
        tenth.cpu_s = own_cpu_s() - cpu
        tenth.backend_s = process_cpu_s(backend) - backend_s
        tenth.server_s = process_tree_cpu_s(postmaster) - server_s
        tenth.calls, tenth.rows = connection.calls, connection.rows
        tenth.table_rows = (await table_reads(connection)) - reads
        tenths.append(tenth)
        tenth.full_collections, tenth.full_collection_s = collector.count, collector.seconds
        collector.count, collector.seconds = 0, 0.0
        print(f"tenth {n + 1}: {tenth.events:,} events, {per_100k(tenth.cpu_s, tenth.events):.1f} CPU-s/100k "
              f"(PostgreSQL backend {per_100k(tenth.backend_s, tenth.events):.1f}, "
              f"server {per_100k(tenth.server_s, tenth.events):.1f}); "
              f"{tenth.full_collections} full garbage collections, {tenth.full_collection_s:.2f}s", flush=True)
    gc.callbacks.remove(collector.observe)
    size = await asyncpg.Connection.fetchval(connection, "SELECT pg_database_size(current_database())")
    print(f"the store at the end: {size / 2**20:,.0f} MiB (the outbox included: nothing relays it here)")
    await connection.close()
    return tenths, profiles


class FullCollections:
    """How often, and for how long, Python's garbage collector went through every object
    (generation 2): its cost follows the number of live objects, this harness's input
    held in memory included, and shows as a slower tenth."""

    def __init__(self) -> None:
        self.count, self.seconds, self._started = 0, 0.0, 0.0

    def observe(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.process_time()
        else:
            self.count += 1
            self.seconds += time.process_time() - self._started


class _OneConnection:
    """The part of asyncpg.Pool that `process_batch` uses, over one connection."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    def acquire(self) -> _OneConnection:
        return self

    async def __aenter__(self) -> asyncpg.Connection:
        return self._connection

    async def __aexit__(self, *_: object) -> None:
        return None


def report(subjects: int, transitions: int, tenths: Sequence[Tenth]) -> dict[str, Any]:
    total = Tenth()
    for tenth in tenths:
        total.events += tenth.events
        total.batches += tenth.batches
        total.subjects += tenth.subjects
        total.cpu_s += tenth.cpu_s
        total.backend_s += tenth.backend_s
        total.server_s += tenth.server_s
        total.calls += tenth.calls
        total.rows += tenth.rows
        total.table_rows += tenth.table_rows
    first, last = tenths[0], tenths[-1]
    print(f"\n{subjects:,} subjects, {transitions:,} events, batches of {BATCH}: "
          f"{per_100k(total.cpu_s, total.events):.1f} CPU-s per 100k events (this process, user+sys); "
          f"PostgreSQL backend {per_100k(total.backend_s, total.events):.1f}, "
          f"server {per_100k(total.server_s, total.events):.1f}")
    print("per tenth, this process:", ", ".join(f"{per_100k(t.cpu_s, t.events):.1f}" for t in tenths))
    print("per tenth, PostgreSQL backend:", ", ".join(f"{per_100k(t.backend_s, t.events):.1f}" for t in tenths))
    print(f"\nper batch (first tenth -> last tenth): subjects evaluated {first.subjects / first.batches:.0f} -> "
          f"{last.subjects / last.batches:.0f}")
    print(f"{'statement (caller)':<44}{'calls':>14}{'rows':>22}")
    for label in sorted(set(first.rows) | set(last.rows)):
        print(f"{label:<44}{first.calls[label] / first.batches:>6.1f} -> {last.calls[label] / last.batches:<6.1f}"
              f"{first.rows[label] / first.batches:>10.1f} -> {last.rows[label] / last.batches:<10.1f}")
    print(f"\n{'table: what PostgreSQL read per batch':<54}{'first tenth':>14}{'last tenth':>14}")
    for table in sorted(set(first.table_rows) | set(last.table_rows)):
        if first.table_rows[table] or last.table_rows[table]:
            print(f"{table:<54}{first.table_rows[table] / first.batches:>14.1f}"
                  f"{last.table_rows[table] / last.batches:>14.1f}")
    return {"subjects": subjects, "events": transitions, "batch": BATCH, "total": total.figures(),
            "tenths": [t.figures() for t in tenths]}


async def main(subjects: int, profile: bool, out: Path | None) -> None:
    transitions, directory, book = load(subjects)
    # The input stays in memory for the whole run, which a service's does not: keep it out
    # of the garbage collector's full collections, whose cost follows the live objects
    # (without this, a full collection took 0.13 s at 5,000 subjects, more with more).
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="stafet-profile-verifier-") as folder:
        stack = LocalStack(Path(folder), postgres_port=free_port(), database="postgres")
        await asyncio.to_thread(stack.prepare_credentials)
        await asyncio.to_thread(stack.start_postgres)
        try:
            url = await recreate_database(stack.role_url("owner", "postgres"), DATABASE)
            await migrate(url)
            postmaster = int((Path(folder) / "postgres" / "postmaster.pid").read_text().split()[0])
            started = time.perf_counter()
            tenths, profiles = await run(url, postmaster, transitions, directory, book, profile)
            seconds = time.perf_counter() - started
        finally:
            stack.down()
    figures = report(subjects, len(transitions), tenths)
    print(f"wall {seconds:.0f}s, load average (1 min) at the end {os.getloadavg()[0]:.1f}"
          f"{' (profiled: slower than unprofiled)' if profile else ''}")
    for name, profiler in zip(("first tenth", "last tenth"), profiles, strict=False):
        print(f"\n==== profile: {name}")
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    if out is not None:
        out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=5000)
    parser.add_argument("--profile", action="store_true",
                        help="pyinstrument profiles of the first and the last tenth (slower)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.subjects, arguments.profile, arguments.json))
