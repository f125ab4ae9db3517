"""Orchestration: a stack of its own, five service processes, the load, the faults, the
drain, the checker. `make chaos SEED=n [DURATION=s] [RATE=r]`.

The load runs at a fixed rate stated as a share of the end-to-end capacity measured by
`make bench` (docs/performance.md: 3,190 events/s on this kind of 2-core machine), low
enough that what is measured is recovery, not overload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from aiokafka.errors import KafkaError

from bench.chaos import faults as faults_module
from bench.chaos.checker import Check, Topics, check_all
from bench.chaos.load import FinanceOffice, Publisher, build, write_registry_for
from bench.chaos.schedule import SERVICE_TARGETS, Fault, counts, draw
from bench.run import all_caught_up
from shared.platform.credentials import without_user
from shared.platform.db import migrate, recreate_database
from shared.platform.kafka import LagProbe, ensure_topics, wait_for_broker
from shared.platform.kafka_access import grant_namespace
from shared.platform.processes import ServiceProcess
from shared.platform.stack import KAFKA_VERSION, LocalStack, free_port
from shared.platform.topics import (
    CONTRACTS,
    DEAD_LETTERS,
    INSTITUTION_EVENTS,
    OUTCOMES,
    PAYMENTS,
    SETTLEMENTS,
    TRANSITIONS,
    all_topics,
    in_namespace,
)

NAMESPACE = "chaos"
CAPACITY_EVENTS_PER_S = 3190.0  # end to end, docs/performance.md (2026-11-23)
PROGRESS_EVERY_S = 5.0
DRAIN_TIMEOUT_S = 900.0
DRAIN_STABLE_POLLS = 3
POLL_S = 1.0


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Result:
    seed: int
    duration_s: float
    rate_per_s: float
    schedule: tuple[Fault, ...]
    check: Check
    events_published: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    unplanned_exits: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, object]:
        return {"seed": self.seed, "duration_s": self.duration_s, "rate_per_s": self.rate_per_s,
                "faults": self.faults_by_kind, "faults_total": len(self.schedule),
                "events_published": self.events_published, "figures": self.check.figures,
                "invariants": [{"ok": ok, "name": name, "detail": detail} for ok, name, detail in self.check.lines],
                "unplanned_exits": self.unplanned_exits, "wall_s": round(self.wall_s)}


def service_env(stack: LocalStack, database_url: str, registry_file: Path) -> dict[str, str]:
    # No user in DATABASE_URL: each service connects as its own runtime role.
    return {"KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers, "DATABASE_URL": without_user(database_url),
            "STAFET_CREDENTIALS_DIR": str(stack.credentials_dir),
            "STAFET_TOPIC_NAMESPACE": NAMESPACE, "INSTITUTIONS_FILE": str(registry_file),
            "BATCH_MAX_RECORDS": "500", "BATCH_TIMEOUT_MS": "100", "TICK_INTERVAL_S": "1.0",
            "LOG_LEVEL": "INFO"}


def topic(spec_name: str) -> str:
    specs = {s.name.split(".")[1]: s for s in (INSTITUTION_EVENTS, TRANSITIONS, CONTRACTS, PAYMENTS, SETTLEMENTS,
                                               OUTCOMES, DEAD_LETTERS)}
    return in_namespace(specs[spec_name], NAMESPACE).name


async def drained(probe: LagProbe, database_url: str) -> bool:
    try:
        return (await all_caught_up(probe, NAMESPACE, database_url)
                and await probe.lag(f"{NAMESPACE}-ledger-settlements", topic("settlements")) == 0)
    except (KafkaError, OSError, asyncpg.PostgresError):
        return False


async def progress_line(probe: LagProbe, database_url: str, publisher: Publisher, injector: faults_module.Injector,
                        started: float) -> str:
    try:
        connection = await asyncpg.connect(database_url, timeout=2)
        try:
            entries = await connection.fetchval("SELECT count(*) FROM ledger_entries")
            events = await connection.fetchval("SELECT count(*) FROM verifier_events")
        finally:
            await connection.close()
    except (OSError, asyncpg.PostgresError, TimeoutError):
        entries = events = "?"
    return (f"  [t+{time.monotonic() - started:5.0f}s] published {publisher.published:,}/{len(publisher.load.records):,}"
            f", verifier events {events}, ledger entries {entries}, faults done {len(injector.injected)}"
            + (f", down: {', '.join(sorted(injector.down))}" if injector.down else ""))


async def chaos(seed: int, duration_s: float, rate_per_s: float, work: Path, mean_gap_s: float) -> Result:
    # SIGTERM (e.g. `timeout`, CI cancelling) cancels the run, so the `finally` below
    # still stops the services and the servers instead of leaving them behind.
    this = asyncio.current_task()
    assert this is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    events = int(duration_s * rate_per_s)
    schedule = draw(seed, duration_s, mean_gap_s)
    result = Result(seed, duration_s, rate_per_s, schedule, Check())
    say(f"chaos seed {seed}: {duration_s:.0f}s of load at {rate_per_s:.0f} events/s "
        f"({rate_per_s / CAPACITY_EVENTS_PER_S:.1%} of the measured end-to-end capacity), "
        f"about {events:,} events, {len(schedule)} faults:")
    for fault in schedule:
        say(f"  {fault.describe()}")
    load = build(seed, events)
    stack = LocalStack(work / "stack", kafka_port=free_port(), controller_port=free_port(),
                       postgres_port=free_port(), database="postgres")
    say(f"starting Kafka {KAFKA_VERSION} and PostgreSQL in {work} ...")
    await asyncio.to_thread(stack.up)
    processes: dict[str, ServiceProcess] = {}
    # This process's own clients (load, finance, checker) use this stack's credentials.
    credentials_before = os.environ.get("STAFET_CREDENTIALS_DIR")
    os.environ["STAFET_CREDENTIALS_DIR"] = str(stack.credentials_dir)
    try:
        await wait_for_broker(stack.bootstrap_servers)
        await ensure_topics(stack.bootstrap_servers, all_topics(NAMESPACE))
        await grant_namespace(stack.bootstrap_servers, NAMESPACE)
        owner_admin_url = stack.role_url("owner", "postgres")
        database_url = await recreate_database(owner_admin_url, "chaos")
        await migrate(database_url)
        registry_file = write_registry_for(load, work / "institutions.yaml")
        env = service_env(stack, database_url, registry_file)
        topics = {name: topic(name) for name in ("institution-events", "contracts", "transitions")}
        publisher = Publisher(stack.bootstrap_servers, topics, load, rate_per_s, say)
        await publisher.contracts()
        processes = {name: ServiceProcess(name.split("-")[0], env, work / "logs" / f"{name}.log")
                     for name in SERVICE_TARGETS}
        for process in processes.values():
            process.start()
        targets: dict[str, faults_module.Target] = {n: faults_module.ServiceTarget(p) for n, p in processes.items()}
        targets["kafka"] = faults_module.KafkaTarget(stack)
        targets["postgres"] = faults_module.PostgresTarget(stack)
        injector = faults_module.Injector(targets, say)
        finance = FinanceOffice(stack.bootstrap_servers, topic("payments"), topic("settlements"), seed, say)
        await _run_under_faults(result, load, publisher, injector, finance, database_url, stack)
        say("stopping the services (SIGTERM) ...")
        for process in processes.values():
            await asyncio.to_thread(process.stop)
        result.events_published = len(load.records)
        result.faults_by_kind = counts(tuple(injector.injected))
        result.unplanned_exits = injector.unplanned_exits
        result.check.add(not injector.unplanned_exits, "no service exited on its own",
                         f"{len(injector.injected)} faults injected and undone"
                         + (f"; EXITED {', '.join(injector.unplanned_exits)}" if injector.unplanned_exits else ""))
        terms = injector.terms()
        unclean = [f"{name} (exit {code})" for name, code, started in terms if started and code != 0]
        early = [name for name, _, started in terms if not started]
        result.check.add(not unclean, "SIGTERM: the batch in hand finished and the process exited in time",
                         f"{len(terms) - len(early)} SIGTERMs to running services, each exit 0 within the grace "
                         f"period" + (f"; {len(early)} to services still starting (nothing in hand)" if early else "")
                         + (f"; UNCLEAN {', '.join(unclean)}" if unclean else ""))
        say("checking the invariants ...")
        await check_all(result.check, load, registry_file, finance.sent, stack.bootstrap_servers,
                        Topics(topic("transitions"), topic("dead-letters"), topic("payments"), topic("outcomes")),
                        database_url, owner_admin_url, env)
    finally:
        for process in processes.values():
            process.kill()
        await asyncio.to_thread(stack.down)
        if credentials_before is None:
            os.environ.pop("STAFET_CREDENTIALS_DIR", None)
        else:
            os.environ["STAFET_CREDENTIALS_DIR"] = credentials_before
    return result


async def _run_under_faults(result: Result, load: object, publisher: Publisher, injector: faults_module.Injector,
                            finance: FinanceOffice, database_url: str, stack: LocalStack) -> None:
    stop = asyncio.Event()
    started = time.monotonic()
    supervisor = asyncio.create_task(injector.supervise(stop))
    office = asyncio.create_task(finance.run(stop))
    async with LagProbe(stack.bootstrap_servers) as probe:
        reporter = asyncio.create_task(_report(probe, database_url, publisher, injector, started, stop))
        try:
            await asyncio.gather(publisher.run(), injector.run(result.schedule, started))
            # Every fact is in once ingest has forwarded it: then the operator's clock.
            await _ingested(probe)
            for day in publisher.load.ticks:
                await publisher.tick(day)
            say(f"load done and every fault undone at t+{time.monotonic() - started:.0f}s; draining ...")
            await _drain(probe, database_url, finance, injector)
            say(f"drained at t+{time.monotonic() - started:.0f}s")
        finally:
            stop.set()
            for task in (supervisor, office, reporter):
                await task


async def _report(probe: LagProbe, database_url: str, publisher: Publisher, injector: faults_module.Injector,
                  started: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        say(await progress_line(probe, database_url, publisher, injector, started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROGRESS_EVERY_S)


async def _ingested(probe: LagProbe) -> None:
    """Wait until ingest has consumed every institution event (and so forwarded it)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        try:
            if await probe.lag(f"{NAMESPACE}-ingest", topic("institution-events")) == 0:
                return
        except (KafkaError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"ingest did not catch up in {DRAIN_TIMEOUT_S:.0f}s")
        await asyncio.sleep(POLL_S)


async def _drain(probe: LagProbe, database_url: str, finance: FinanceOffice,
                 injector: faults_module.Injector) -> None:
    """Wait until every consumer has caught up, the verifier has no work left, and the
    finance office has answered every instruction; stable for a few polls."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    stable = 0
    while stable < DRAIN_STABLE_POLLS:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the system did not drain in {DRAIN_TIMEOUT_S:.0f}s")
        caught_up = await drained(probe, database_url)
        answered = 0
        if caught_up:
            try:
                answered = await finance.pass_once()
            except (KafkaError, OSError, TimeoutError):
                answered = 1
        stable = stable + 1 if caught_up and answered == 0 else 0
        await asyncio.sleep(POLL_S)


def report(result: Result) -> None:
    say(f"\nseed {result.seed}: faults injected by kind: "
        + ", ".join(f"{k} {v}" for k, v in result.faults_by_kind.items()))
    figures = result.check.figures
    say(f"events in {result.events_published:,} (distinct admitted {figures.get('events_admitted', 0):,}), "
        f"payments out {figures.get('instructions_on_topic', 0):,} instructions "
        f"({figures.get('payments_outstanding', 0):,} outstanding), "
        f"settlements sent {figures.get('settlements_sent', 0):,}")
    for line in result.check.render():
        say(line)
    if result.check.ok:
        say(f"all {len(result.check.lines)} invariants held (seed {result.seed}, {result.wall_s:.0f}s)")
    else:
        say(f"FAILED: replay with `make chaos SEED={result.seed} DURATION={result.duration_s:g} "
            f"RATE={result.rate_per_s:g}`")


def run(seed: int, duration_s: float, rate_per_s: float, mean_gap_s: float, keep: Path | None = None) -> Result:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"stafet-chaos-{seed}-") as directory:
        work = keep or Path(directory)
        result = asyncio.run(chaos(seed, duration_s, rate_per_s, work, mean_gap_s))
    result.wall_s = time.monotonic() - started
    report(result)
    return result


def main(
    seed: Annotated[int, typer.Option(help="Draws the schedule and the load; replay a failure with its seed")] = 1,
    duration: Annotated[float, typer.Option(help="Seconds of load (faults are injected during it)")] = 180.0,
    rate: Annotated[float, typer.Option(help="Events per second (fixed)")] = 100.0,
    mean_gap: Annotated[float, typer.Option(help="Mean seconds between faults")] = 6.0,
    keep: Annotated[Path | None, typer.Option(help="Keep logs and state here instead of a temporary folder")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON here")] = None,
) -> None:
    """A fault schedule drawn from SEED against the real stack under load, then the checker."""
    # aiokafka logs every refused connection while the broker is down on purpose.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    result = run(seed, duration, rate, mean_gap, keep)
    if json_out is not None:
        json_out.write_text(json.dumps(result.summary(), indent=2))
    sys.exit(0 if result.check.ok else 1)


def cli() -> None:
    typer.run(main)
