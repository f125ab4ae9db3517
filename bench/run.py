"""`make bench`: honest throughput and latency figures on the real local stack.

Every figure is measured in the same run as the raw limit (a minimal aiokafka
consume-then-produce passthrough of the same events on the same broker) and reported
with its ratio to that limit. Results go to bench/results/<timestamp>.json and a table
on stdout. Nothing here is a test: timings never become assertions.

Stages, each on its own topic namespace and database:
  raw        passthrough of the institution events (what any Python Kafka pipeline reaches)
  ingest     the ingest service alone on a pre-filled institution-events topic
  verifier   the verifier alone on the transitions ingest produced
  ledger     the ledger alone on the payments the verifier produced
  end2end    all three running; from the first event published to the last ledger entry
  latency    a fixed publishing rate through all three; publish -> ledger commit percentiles
  rebuild    ledger rebuild (payments/s) and verifier rebuild (events/s), in-process
  frontdoor  institution systems POSTing JSON Lines batches to the HTTP front door
             (bench/frontdoor.py): events accepted per second, on the broker and remembered
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from bench.frontdoor import front_door_load
from services.ledger.rebuild import rebuild_ledger
from services.verifier.rebuild import rebuild_verifier
from services.verifier.store import work_left_at
from shared.cli.publish import Sealer
from shared.contracts.evaluation import InstitutionInfo
from shared.credentials import kafka_options, without_user
from shared.db import migrate, recreate_database
from shared.kafka import LagProbe, ensure_topics, make_producer
from shared.kafka_access import grant_namespace
from shared.processes import ServiceProcess
from shared.sealing import development_private_key
from shared.settings import REPO_ROOT
from shared.signing import RecordSigner
from shared.stack import KAFKA_VERSION, LocalStack, free_port
from shared.synthetic import generate, to_json_line, write_registry
from shared.topics import INSTITUTION_EVENTS, PAYMENTS, TRANSITIONS, all_topics, in_namespace
from shared.trust import development_writer

RESULTS = REPO_ROOT / "bench" / "results"
CONTRACTS = ("mobility-bonus.yaml", "employment-pbr.yaml", "sib-youth-education.yaml", "next-stage-bonus.yaml")
POLL_S = 0.5  # how often a stage's progress is checked (over kept-open connections)
STAGE_TIMEOUT_S = 3600.0


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Bench:
    stack: LocalStack
    work: Path
    registry_file: Path
    events: list[tuple[bytes, bytes]]  # (key, value)
    batch: int
    results: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)
    started: list[ServiceProcess] = field(default_factory=list)

    def env(self, namespace: str, database_url: str) -> dict[str, str]:
        return {
            # No user in DATABASE_URL: each service connects as its own runtime role.
            "KAFKA_BOOTSTRAP_SERVERS": self.stack.bootstrap_servers, "DATABASE_URL": without_user(database_url),
            "STAFET_CREDENTIALS_DIR": str(self.stack.credentials_dir),
            "STAFET_TOPIC_NAMESPACE": namespace, "INSTITUTIONS_FILE": str(self.registry_file),
            "CONTRACT_FILES": ",".join(str(REPO_ROOT / "examples" / "contracts" / c) for c in CONTRACTS),
            "BATCH_MAX_RECORDS": str(self.batch), "BATCH_TIMEOUT_MS": "50", "LOG_LEVEL": "WARNING",
            "TICK_INTERVAL_S": "0.5",
        }

    async def database(self, name: str) -> str:
        """A fresh database with the schema applied, as the owner role; its (owner's) URL."""
        url = await recreate_database(self.stack.role_url("owner", "postgres"), name)
        await migrate(url)
        return url

    async def namespace(self, namespace: str) -> None:
        await ensure_topics(self.stack.bootstrap_servers, all_topics(namespace))
        await grant_namespace(self.stack.bootstrap_servers, namespace)

    def start(self, service: str, namespace: str, database_url: str) -> ServiceProcess:
        process = ServiceProcess(service, self.env(namespace, database_url), self.work / namespace / f"{service}.log")
        process.start()
        self.started.append(process)
        return process

    def stop(self, process: ServiceProcess) -> None:
        self.rss[process.name] = max(self.rss.get(process.name, 0), peak_rss_kib(process))
        process.stop()


def peak_rss_kib(process: ServiceProcess) -> int:
    if process.process is None:
        return 0
    try:
        for line in Path(f"/proc/{process.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def fill(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
               pace_per_s: float | None = None, sent_at: dict[str, float] | None = None,
               principal: str = "institution") -> float:
    """Publish records (optionally at a fixed rate) as `principal` (by default an
    institution system); return the wall time of the first send."""
    producer = make_producer(bootstrap, client_id="bench", principal=principal)
    signers: dict[str, RecordSigner] = {}
    await producer.start()
    first = time.time()
    try:
        pending = []
        for n, (key, value) in enumerate(records):
            if pace_per_s is not None:
                due = first + n / pace_per_s
                if due > time.time():
                    await asyncio.sleep(due - time.time())
                if sent_at is not None:
                    sent_at[json.loads(value)["event_id"]] = time.time()
            # Signed as the topic's writer signs in development (an institution's events by
            # its key, a contract by an operator's, ...): the services believe nothing else.
            principal = development_writer(topic, value)
            signer = signers.get(principal) or signers.setdefault(principal, RecordSigner.development(principal))
            pending.append(await producer.send(topic, value, key=key, headers=signer.headers(topic, key, value)))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return first


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str, watch: list[ServiceProcess]) -> float:
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while True:
        try:
            if await condition():
                return time.time()
        except Exception:  # noqa: BLE001, S110 - a fresh group may not have a coordinator yet
            pass
        await _still_going(watch, what, deadline)


async def _still_going(watch: list[ServiceProcess], what: str, deadline: float) -> None:
    """Raise if a watched service died or the stage ran out of time; else wait a poll."""
    for process in watch:
        if not process.running():
            raise RuntimeError(f"{process.name} stopped during {what}; see {process.log_path}")
    if time.monotonic() > deadline:
        raise TimeoutError(f"{what} did not finish in {STAGE_TIMEOUT_S}s")
    await asyncio.sleep(POLL_S)


async def timed_drain(lag: Callable[[], Awaitable[int]], what: str, watch: list[ServiceProcess],
                      done: Callable[[], Awaitable[bool]] | None = None) -> tuple[float, int]:
    """Seconds and records from the first observed progress to the end of the backlog.

    Starting the clock at the first progress leaves the process's start-up (imports,
    joining the consumer group) out of a throughput figure that is about processing.
    """
    initial = None
    first_progress: tuple[float, int] | None = None
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while True:
        try:
            remaining = await lag()
        except Exception:  # noqa: BLE001 - a fresh group may not have a coordinator yet
            remaining = None
        now = time.time()
        if remaining is not None:
            initial = remaining if initial is None else initial
            if first_progress is None and remaining < initial:
                first_progress = (now, remaining)
            if remaining == 0 and first_progress is not None and (done is None or await done()):
                if now == first_progress[0]:
                    # The whole backlog went between two polls: there is nothing to time.
                    raise ValueError(f"{what}: the backlog drained within one {POLL_S}s poll; "
                                     "benchmark more subjects (--subjects)")
                return now - first_progress[0], first_progress[1]
        await _still_going(watch, what, deadline)


def group_lag(probe: LagProbe, group: str, topic: str) -> Callable[[], Awaitable[int]]:
    async def lag() -> int:
        return await probe.lag(group, topic)
    return lag


async def verifier_idle(database_url: str) -> bool:
    return await work_left_at(database_url) == 0


def lag_zero(probe: LagProbe, group: str, topic: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await probe.lag(group, topic) == 0
    return check


def verifier_done(probe: LagProbe, namespace: str, database_url: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        if await probe.lag(f"{namespace}-verifier", in_namespace(TRANSITIONS, namespace).name):
            return False
        return await verifier_idle(database_url)
    return check


async def all_caught_up(probe: LagProbe, namespace: str, database_url: str) -> bool:
    return (await lag_zero(probe, f"{namespace}-ingest", in_namespace(INSTITUTION_EVENTS, namespace).name)()
            and await verifier_done(probe, namespace, database_url)()
            and await lag_zero(probe, f"{namespace}-ledger", in_namespace(PAYMENTS, namespace).name)())


async def topic_size(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **kafka_options("operator"))
    await consumer.start()
    try:
        from aiokafka import TopicPartition
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def raw_limit(bench: Bench) -> dict[str, float]:
    """A minimal consume-then-produce passthrough of the same events, same broker: with
    ingest's credentials and ACLs, from institution-events to transitions."""
    bootstrap = bench.stack.bootstrap_servers
    namespace = f"raw{int(time.time())}"
    await bench.namespace(namespace)
    source, sink = in_namespace(INSTITUTION_EVENTS, namespace), in_namespace(TRANSITIONS, namespace)
    await fill(bootstrap, source.name, bench.events)
    consumer = AIOKafkaConsumer(source.name, bootstrap_servers=bootstrap, group_id=f"{namespace}-ingest",
                                enable_auto_commit=False, auto_offset_reset="earliest", **kafka_options("ingest"))
    producer = make_producer(bootstrap, client_id="bench-raw", principal="ingest")
    await consumer.start()
    await producer.start()
    moved = 0
    started = time.time()
    try:
        while moved < len(bench.events):
            batches = await consumer.getmany(timeout_ms=500, max_records=bench.batch)
            sends = [await producer.send(sink.name, r.value, key=r.key) for rs in batches.values() for r in rs]
            await asyncio.gather(*sends)
            await consumer.commit()
            moved += len(sends)
    finally:
        await consumer.stop()
        await producer.stop()
    seconds = time.time() - started
    return {"events": moved, "seconds": seconds, "events_per_s": moved / seconds}


async def stages_alone(bench: Bench) -> dict[str, dict[str, float]]:
    bootstrap = bench.stack.bootstrap_servers
    namespace = f"stages{int(time.time())}"
    await bench.namespace(namespace)
    database_url = await bench.database("bench_stages")
    results: dict[str, dict[str, float]] = {}

    async with LagProbe(bootstrap) as probe:
        await _each_alone(bench, probe, namespace, database_url, results)

    say("  rebuilds ...")
    ledger_report = await rebuild_ledger(database_url, bootstrap, in_namespace(PAYMENTS, namespace).name)
    results["ledger_rebuild"] = {"payments": ledger_report.records, "seconds": ledger_report.seconds,
                                 "payments_per_s": ledger_report.records / ledger_report.seconds}
    directory = {i["id"]: InstitutionInfo(i["kind"], i.get("municipality", "")) for i in _registry_rows(bench)}
    verifier_report = await rebuild_verifier(database_url, bootstrap, in_namespace(TRANSITIONS, namespace).name,
                                             directory)
    results["verifier_rebuild"] = {"events": verifier_report.records, "seconds": verifier_report.seconds,
                                   "events_per_s": verifier_report.records / verifier_report.seconds}
    return results


async def _each_alone(bench: Bench, probe: LagProbe, namespace: str, database_url: str,
                      results: dict[str, dict[str, float]]) -> None:
    bootstrap = bench.stack.bootstrap_servers
    say("  ingest alone ...")
    await fill(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, bench.events)
    ingest = bench.start("ingest", namespace, database_url)
    seconds, events = await timed_drain(
        group_lag(probe, f"{namespace}-ingest", in_namespace(INSTITUTION_EVENTS, namespace).name), "ingest", [ingest])
    bench.stop(ingest)
    results["ingest"] = {"events": events, "seconds": seconds, "events_per_s": events / seconds}

    say("  verifier alone ...")
    verifier = bench.start("verifier", namespace, database_url)
    seconds, events = await timed_drain(
        group_lag(probe, f"{namespace}-verifier", in_namespace(TRANSITIONS, namespace).name), "verifier",
        [verifier], done=lambda: verifier_idle(database_url))
    bench.stop(verifier)
    results["verifier"] = {"events": events, "seconds": seconds, "events_per_s": events / seconds}

    say("  ledger alone ...")
    ledger = bench.start("ledger", namespace, database_url)
    seconds, payments = await timed_drain(
        group_lag(probe, f"{namespace}-ledger", in_namespace(PAYMENTS, namespace).name), "ledger", [ledger])
    bench.stop(ledger)
    results["ledger"] = {"payments": payments, "seconds": seconds, "payments_per_s": payments / seconds}


def _registry_rows(bench: Bench) -> list[dict[str, str]]:
    import yaml
    return list(yaml.safe_load(bench.registry_file.read_text())["institutions"])


async def end_to_end(bench: Bench) -> dict[str, float]:
    bootstrap = bench.stack.bootstrap_servers
    namespace = f"e2e{int(time.time())}"
    await bench.namespace(namespace)
    database_url = await bench.database("bench_e2e")
    services = [bench.start(name, namespace, database_url) for name in ("ingest", "verifier", "ledger")]
    await asyncio.sleep(5.0)  # let all three join their groups before the clock starts
    first = await fill(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, bench.events)

    async with LagProbe(bootstrap) as probe:
        await wait_for(lambda: all_caught_up(probe, namespace, database_url), "end to end", services)
    connection = await asyncpg.connect(database_url)
    try:
        last_commit = await connection.fetchval("SELECT extract(epoch FROM max(recorded_at)) FROM ledger_entries")
        entries = await connection.fetchval("SELECT count(*) FROM ledger_entries")
    finally:
        await connection.close()
    for process in services:
        bench.stop(process)
    seconds = float(last_commit) - first
    return {"events": len(bench.events), "ledger_entries": int(entries), "seconds": seconds,
            "events_per_s": len(bench.events) / seconds}


async def latency(bench: Bench, rate: float, duration_s: float) -> dict[str, float]:
    bootstrap = bench.stack.bootstrap_servers
    namespace = f"lat{int(time.time())}"
    await bench.namespace(namespace)
    database_url = await bench.database("bench_latency")
    services = [bench.start(name, namespace, database_url) for name in ("ingest", "verifier", "ledger")]
    await asyncio.sleep(5.0)
    records = bench.events[: int(rate * duration_s)]
    sent_at: dict[str, float] = {}
    await fill(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, records, pace_per_s=rate,
               sent_at=sent_at)

    async with LagProbe(bootstrap) as probe:
        await wait_for(lambda: all_caught_up(probe, namespace, database_url), "latency run", services)
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT trigger_event_id, extract(epoch FROM min(recorded_at)) AS committed FROM ledger_entries"
            " WHERE kind = 'payment' AND trigger_event_id IS NOT NULL GROUP BY trigger_event_id")
    finally:
        await connection.close()
    for process in services:
        bench.stop(process)
    # Only payments whose trigger was published in this run and not held back by a
    # sustainment period (those wait for event time, not for the pipeline).
    delays = sorted(float(r["committed"]) - sent_at[r["trigger_event_id"]] for r in rows
                    if r["trigger_event_id"] in sent_at and float(r["committed"]) - sent_at[r["trigger_event_id"]] < 60)
    if not delays:
        return {"samples": 0}

    def pct(q: float) -> float:
        return delays[min(len(delays) - 1, int(q * len(delays)))] * 1000

    return {"rate_per_s": rate, "duration_s": duration_s, "samples": len(delays),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": delays[-1] * 1000}


def table(results: dict[str, Any]) -> str:
    raw = results["raw_limit"]["events_per_s"]
    rows = [("raw limit (passthrough)", raw, "events/s")]
    stages = results["stages"]
    rows += [("ingest alone", stages["ingest"]["events_per_s"], "events/s"),
             ("verifier alone", stages["verifier"]["events_per_s"], "events/s"),
             ("ledger alone", stages["ledger"]["payments_per_s"], "payments/s"),
             ("end to end", results["end_to_end"]["events_per_s"], "events/s"),
             ("ledger rebuild", stages["ledger_rebuild"]["payments_per_s"], "payments/s"),
             ("verifier rebuild", stages["verifier_rebuild"]["events_per_s"], "events/s")]
    if "frontdoor" in results:
        rows.append(("front door (HTTP batches)", results["frontdoor"]["events_per_s"], "events/s"))
    lines = [f"{'figure':<26}{'rate':>14}  {'unit':<11}{'ratio to raw':>13}"]
    lines += [f"{name:<26}{value:>14,.0f}  {unit:<11}{value / raw:>13.2f}" for name, value, unit in rows]
    lat = results.get("latency", {})
    if isinstance(lat, dict) and lat.get("samples"):
        lines.append(f"latency at {lat['rate_per_s']:.0f} events/s for {lat['duration_s']:.0f}s "
                     f"({lat['samples']} payments): p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms, "
                     f"p99 {lat['p99_ms']:.0f} ms")
    rss = results["peak_rss_mib"]
    lines.append("peak RSS: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items()))
    return "\n".join(lines)


async def main(arguments: argparse.Namespace) -> None:
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="stafet-bench-") as directory:
        work = Path(directory)
        stack = LocalStack(work / "stack", kafka_port=free_port(), controller_port=free_port(),
                           postgres_port=free_port(), database="postgres")
        say(f"starting Kafka {KAFKA_VERSION} and PostgreSQL in {work} ...")
        launched: list[ServiceProcess] = []
        await asyncio.to_thread(stack.up)
        # The benchmark's own clients (publishing, lag, rebuilds) find the stack's credentials.
        os.environ["STAFET_CREDENTIALS_DIR"] = str(stack.credentials_dir)
        try:
            say(f"generating {arguments.subjects:,} subjects (seed {arguments.seed}) ...")
            registry, generated = generate(arguments.subjects, seed=arguments.seed,
                                           municipalities=arguments.municipalities)
            # As `stafet publish` sends them: CPR numbers sealed to ingest, keyed by subject token.
            sealer = Sealer(development_private_key().public_key())
            events = []
            # The front door gets events as an institution's system sends them: CPR in clear.
            clear_lines: list[bytes] = []
            for event in generated:
                line = to_json_line(event)
                if len(clear_lines) < arguments.frontdoor_events:
                    clear_lines.append(line)
                events.append(sealer.keyed(line))
            registry_file = work / "institutions.yaml"
            write_registry(registry_file, registry)
            say(f"  {len(events):,} events")
            bench = Bench(stack, work, registry_file, events, arguments.batch, started=launched)
            say("raw limit ...")
            bench.results["raw_limit"] = await raw_limit(bench)
            say("each stage alone ...")
            bench.results["stages"] = await stages_alone(bench)
            say("end to end ...")
            bench.results["end_to_end"] = await end_to_end(bench)
            say(f"latency at {arguments.rate}/s for {arguments.duration}s ...")
            bench.results["latency"] = await latency(bench, arguments.rate, arguments.duration)
            say(f"front door: {len(clear_lines):,} events over HTTP ...")
            namespace = f"frontdoor{int(time.time())}"
            await bench.namespace(namespace)
            bench.results["frontdoor"] = await front_door_load(
                bench.env(namespace, await bench.database("bench_frontdoor")), work / namespace / "frontdoor.log",
                clear_lines)
            bench.results["peak_rss_mib"] = {k: v / 1024 for k, v in bench.rss.items()}
        finally:
            # A stage that failed left its services running: stop them before their servers.
            for process in launched:
                process.stop()
            stack.down()
    record: dict[str, Any] = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                    "kafka": KAFKA_VERSION},
        "parameters": vars(arguments), "events": len(events), "results": bench.results,
        "wall_seconds": time.time() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{record['timestamp'].replace(':', '')}.json"
    out.write_text(json.dumps(record, indent=2))
    say("\n" + table(bench.results))
    say(f"\nwritten to {out}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=int(os.environ.get("BENCH_SUBJECTS", "115000")),
                        help="synthetic subjects (about 9 events each; default 115,000 for >1M events)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--municipalities", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2000, help="consumer batch size for every stage")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s for the latency run")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the latency run")
    parser.add_argument("--frontdoor-events", type=int, default=200_000,
                        help="events POSTed to the HTTP front door (clear CPR numbers, sealed there)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
