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
  population the verifier alone on a population a tenth the size: its CPU time per event
             against the full population's (cost flat as the population grows?)
  replicas   end to end again with two ingest and two verifier replicas: CPU per event
             against one replica, balances compared, duplicates on the output topics
  frontdoor  institution systems POSTing JSON Lines batches to the HTTP front door
             (bench/frontdoor.py): events accepted per second, on the broker and remembered

With --nation, instead: Denmark's largest 1, 10 and 98 municipalities, each a tenant,
through ingest, verifier and ledger, CPU per event and per tenant (bench/nation_stack.py,
docs/nation.md); results in bench/results/<timestamp>-nation.json.

Besides rates, every stage reports CPU seconds (user + system, from /proc) per 100,000
records for each service process, which is steadier than a rate on a shared machine; the
result carries the git commit, the core count, the versions and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from bench.frontdoor import front_door_load
from bench.measure import (
    LoadSampler,
    Servers,
    cpu_model,
    git_commit,
    library_versions,
    machine_line,
    own_cpu_s,
    per_100k,
    process_cpu_s,
)
from cli.publish import signed_by_each
from cli.reporting.simulate import transitions_of
from cli.synthetic.population import generate, to_json_line, write_registry
from services.ledger.rebuild import rebuild_ledger
from services.verifier.rebuild import rebuild_verifier
from services.verifier.store import work_left_at
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.institutions import InstitutionRegistry
from shared.domain.sealing import Sealer, development_private_key
from shared.domain.signing import RecordSigner
from shared.platform.credentials import kafka_options, without_user
from shared.platform.db import migrate, recreate_database
from shared.platform.kafka import LagProbe, ensure_topics, make_producer
from shared.platform.kafka_access import grant_namespace
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.stack import KAFKA_VERSION, LocalStack, free_port
from shared.platform.topics import INSTITUTION_EVENTS, OUTCOMES, PAYMENTS, TRANSITIONS, all_topics, in_namespace
from shared.platform.trust import development_writer

RESULTS = REPO_ROOT / "bench" / "results"
CONTRACTS = ("mobility-bonus.yaml", "employment-pbr.yaml", "sib-youth-education.yaml", "next-stage-bonus.yaml")
POLL_S = 0.5  # how often a stage's progress is checked (over kept-open connections)
STAGE_TIMEOUT_S = 3600.0
FILL_WINDOW = 5000  # records signed together and in flight before waiting for the broker's acks


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Bench:
    stack: LocalStack
    work: Path
    registry_file: Path
    events: list[tuple[bytes, bytes]]  # (key, value)
    batch: int
    log_level: str = "WARNING"
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
            "BATCH_MAX_RECORDS": str(self.batch), "LOG_LEVEL": self.log_level,
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

    def start(self, service: str, namespace: str, database_url: str, replica: int = 0) -> ServiceProcess:
        log = self.work / namespace / (f"{service}-{replica}.log" if replica else f"{service}.log")
        process = ServiceProcess(service, self.env(namespace, database_url), log)
        process.start()
        self.started.append(process)
        return process

    def stop(self, process: ServiceProcess) -> None:
        self.rss[process.name] = max(self.rss.get(process.name, 0), peak_rss_kib(process))
        process.stop()


# The broker's and PostgreSQL's pids, once the stack is up (`main`).
servers = Servers()


def cpu_of(processes: list[ServiceProcess]) -> dict[str, float]:
    """CPU seconds so far per service, summed over its replicas."""
    cpu: dict[str, float] = {}
    for process in processes:
        if process.process is not None:
            cpu[process.name] = cpu.get(process.name, 0.0) + process_cpu_s(process.process.pid)
    return cpu


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


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
               principal: str = "institution", window: int = 0) -> float:
    """Publish records (optionally at a fixed rate) as `principal` (by default an
    institution system); return the wall time of the first send. `window`: records signed
    together (by default FILL_WINDOW)."""
    producer = make_producer(bootstrap, client_id="bench", principal=principal)
    signers: dict[str, RecordSigner] = {}

    def signer_of(writer: str) -> RecordSigner:
        return signers.get(writer) or signers.setdefault(writer, RecordSigner.development(writer))

    await producer.start()
    first = time.time()
    # A pre-fill is signed as its writers' systems sign a file they send (a signature per
    # tree of records: shared/domain/signing.py); a paced run one record at a time, as a system
    # that sends each event when it happens.
    window = 1 if pace_per_s is not None else window or FILL_WINDOW
    try:
        pending = []
        for start in range(0, len(records), window):
            chunk = records[start:start + window]
            if pace_per_s is not None:
                due = first + start / pace_per_s
                if due > time.time():
                    await asyncio.sleep(due - time.time())
                if sent_at is not None:
                    sent_at[json.loads(chunk[0][1])["event_id"]] = time.time()
            # Signed as the topic's writer signs in development (an institution's events by
            # its key, a contract by an operator's, ...): the services believe nothing else.
            signed = signed_by_each(topic, [(development_writer(topic, value), key, value) for key, value in chunk],
                                    signer_of)
            for (key, value), headers in zip(chunk, signed, strict=True):
                pending.append(await producer.send(topic, value, key=key, headers=headers))
            if len(pending) >= FILL_WINDOW:
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


@dataclass(frozen=True)
class Drained:
    seconds: float
    records: int
    cpu_s: dict[str, float]  # per service, from the first progress to the end
    servers_cpu_s: dict[str, float] = field(default_factory=dict)  # Kafka's and PostgreSQL's, the same span

    def figures(self, unit: str) -> dict[str, Any]:
        return {unit: self.records, "seconds": self.seconds, f"{unit}_per_s": self.records / self.seconds,
                "cpu_s": self.cpu_s,
                "cpu_s_per_100k": {name: per_100k(cpu, self.records) for name, cpu in self.cpu_s.items()},
                **servers_figures(self.servers_cpu_s, self.records)}


def servers_figures(cpu: dict[str, float], records: int) -> dict[str, Any]:
    return {"servers_cpu_s": cpu,
            "servers_cpu_s_per_100k": {name: per_100k(used, records) for name, used in cpu.items()}}


async def timed_drain(lag: Callable[[], Awaitable[int]], what: str, watch: list[ServiceProcess],
                      done: Callable[[], Awaitable[bool]] | None = None) -> Drained:
    """Seconds, records and the services' CPU seconds from the first observed progress to
    the end of the backlog.

    Starting the clock at the first progress leaves the process's start-up (imports,
    joining the consumer group) out of a throughput figure that is about processing.
    """
    initial = None
    first_progress: tuple[float, int] | None = None
    cpu_at_first: dict[str, float] = {}
    servers_at_first: dict[str, float] = {}
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
                cpu_at_first, servers_at_first = cpu_of(watch), servers.cpu_s()
            if remaining == 0 and first_progress is not None and (done is None or await done()):
                if now == first_progress[0]:
                    # The whole backlog went between two polls: there is nothing to time.
                    raise ValueError(f"{what}: the backlog drained within one {POLL_S}s poll; "
                                     "benchmark more subjects (--subjects)")
                return Drained(now - first_progress[0], first_progress[1], cpu_between(cpu_at_first, cpu_of(watch)),
                               cpu_between(servers_at_first, servers.cpu_s()))
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


# The operator's clock once every fact of a run is in (docs/contracts.md, "Finality"): past
# every fact's decision date, so the verifier decides and instructs everything.
WATERMARK = dt.date(2100, 1, 1)


async def publish_watermark(bootstrap: str, namespace: str) -> float:
    """`stafet clock --date 2100-01-01` on every transitions partition; when it was sent."""
    from cli.signed import send_signed
    from shared.domain.events import ClockTick
    from shared.domain.signing import RecordSigner
    from shared.platform.trust import DEVELOPMENT_OPERATOR

    sent = time.time()
    await send_signed(bootstrap, "stafet-bench-clock", in_namespace(TRANSITIONS, namespace).name,
                      [(b"clock", ClockTick(today=WATERMARK).model_dump_json().encode())],
                      RecordSigner.development(DEVELOPMENT_OPERATOR), principal="operator", every_partition=True)
    return sent


async def ingested(probe: LagProbe, namespace: str, services: list[ServiceProcess]) -> None:
    """Until ingest has forwarded every institution event: then the watermark may follow."""
    await wait_for(lag_zero(probe, f"{namespace}-ingest", in_namespace(INSTITUTION_EVENTS, namespace).name),
                   "ingest", services)


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


async def raw_limit(bench: Bench) -> dict[str, Any]:
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
    started, cpu_started, servers_started = time.time(), own_cpu_s(), servers.cpu_s()
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
    seconds, cpu = time.time() - started, own_cpu_s() - cpu_started
    return {"events": moved, "seconds": seconds, "events_per_s": moved / seconds,
            "cpu_s": {"passthrough": cpu}, "cpu_s_per_100k": {"passthrough": per_100k(cpu, moved)},
            **servers_figures(cpu_between(servers_started, servers.cpu_s()), moved)}


async def stages_alone(bench: Bench) -> dict[str, dict[str, float]]:
    bootstrap = bench.stack.bootstrap_servers
    namespace = f"stages{int(time.time())}"
    await bench.namespace(namespace)
    database_url = await bench.database("bench_stages")
    results: dict[str, dict[str, float]] = {}

    async with LagProbe(bootstrap) as probe:
        await _each_alone(bench, probe, namespace, database_url, results)

    say("  rebuilds ...")
    # In-process: the CPU figure is the benchmark process's own (PostgreSQL's is not in it).
    cpu, at = own_cpu_s(), servers.cpu_s()
    ledger_report = await rebuild_ledger(database_url, bootstrap, in_namespace(PAYMENTS, namespace).name)
    results["ledger_rebuild"] = Drained(ledger_report.seconds, ledger_report.records,
                                        {"rebuild": own_cpu_s() - cpu},
                                        cpu_between(at, servers.cpu_s())).figures("payments")
    directory = {i["id"]: InstitutionInfo(i["kind"], i.get("municipality", "")) for i in _registry_rows(bench)}
    cpu, at = own_cpu_s(), servers.cpu_s()
    verifier_report = await rebuild_verifier(database_url, bootstrap, in_namespace(TRANSITIONS, namespace).name,
                                             directory)
    results["verifier_rebuild"] = Drained(verifier_report.seconds, verifier_report.records,
                                          {"rebuild": own_cpu_s() - cpu},
                                          cpu_between(at, servers.cpu_s())).figures("events")
    return results


async def _each_alone(bench: Bench, probe: LagProbe, namespace: str, database_url: str,
                      results: dict[str, dict[str, float]]) -> None:
    bootstrap = bench.stack.bootstrap_servers
    say("  ingest alone ...")
    await fill(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, bench.events)
    ingest = bench.start("ingest", namespace, database_url)
    drained = await timed_drain(
        group_lag(probe, f"{namespace}-ingest", in_namespace(INSTITUTION_EVENTS, namespace).name), "ingest", [ingest])
    bench.stop(ingest)
    results["ingest"] = drained.figures("events")

    say("  verifier alone ...")
    await publish_watermark(bootstrap, namespace)  # every fact is on the transitions topic already
    results["verifier"] = await verifier_alone(bench, probe, namespace, database_url)

    say("  ledger alone ...")
    ledger = bench.start("ledger", namespace, database_url)
    drained = await timed_drain(
        group_lag(probe, f"{namespace}-ledger", in_namespace(PAYMENTS, namespace).name), "ledger", [ledger])
    bench.stop(ledger)
    results["ledger"] = drained.figures("payments")


async def verifier_alone(bench: Bench, probe: LagProbe, namespace: str, database_url: str) -> dict[str, Any]:
    verifier = bench.start("verifier", namespace, database_url)
    drained = await timed_drain(
        group_lag(probe, f"{namespace}-verifier", in_namespace(TRANSITIONS, namespace).name), "verifier",
        [verifier], done=lambda: verifier_idle(database_url))
    bench.stop(verifier)
    return drained.figures("events")


async def small_population(bench: Bench, subjects: int, seed: int, municipalities: int) -> dict[str, Any]:
    """The verifier alone on a population of `subjects`: its transitions admitted in-process
    by ingest's pure code and published signed as ingest would, so only the verifier runs."""
    namespace = f"pop{subjects}s{seed}x{int(time.time())}"
    await bench.namespace(namespace)
    database_url = await bench.database(f"bench_population_{subjects}_{seed}")
    registry, generated = generate(subjects, seed=seed, municipalities=municipalities)
    transitions, _ = transitions_of((to_json_line(e) for e in generated), InstitutionRegistry(registry))
    records = [(t.subject.encode(), t.model_dump_json().encode()) for t in transitions]
    await fill(bench.stack.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name, records,
               principal="ingest")
    await publish_watermark(bench.stack.bootstrap_servers, namespace)
    async with LagProbe(bench.stack.bootstrap_servers) as probe:
        figures = await verifier_alone(bench, probe, namespace, database_url)
    return {"subjects": subjects, **figures}


def _registry_rows(bench: Bench) -> list[dict[str, str]]:
    import yaml
    return list(yaml.safe_load(bench.registry_file.read_text())["institutions"])


async def end_to_end(bench: Bench, replicas: int = 1) -> dict[str, Any]:
    """All three services over the whole input; with `replicas` > 1, that many ingest and
    verifier replicas (the ledger's journal is one partition: one projector)."""
    bootstrap = bench.stack.bootstrap_servers
    namespace = f"e2e{replicas}r{int(time.time())}"
    await bench.namespace(namespace)
    database_url = await bench.database(f"bench_e2e_{replicas}")
    services = [bench.start(name, namespace, database_url, replica if replicas > 1 else 0)
                for name in ("ingest", "verifier") for replica in range(1, replicas + 1)]
    services.append(bench.start("ledger", namespace, database_url))
    await asyncio.sleep(5.0 + 3.0 * (replicas - 1))  # let all join their groups before the clock starts
    cpu_before, servers_before = cpu_of(services), servers.cpu_s()
    first = await fill(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, bench.events)

    async with LagProbe(bootstrap) as probe:
        await ingested(probe, namespace, services)
        await publish_watermark(bootstrap, namespace)
        await wait_for(lambda: all_caught_up(probe, namespace, database_url), "end to end", services)
    cpu, servers_cpu = cpu_between(cpu_before, cpu_of(services)), cpu_between(servers_before, servers.cpu_s())
    connection = await asyncpg.connect(database_url)
    try:
        last_commit = await connection.fetchval("SELECT extract(epoch FROM max(recorded_at)) FROM ledger_entries")
        entries = await connection.fetchval("SELECT count(*) FROM ledger_entries")
        balances = {r["account"]: int(r["net"]) for r in await connection.fetch(
            "SELECT account, sum(debit_minor) - sum(credit_minor) AS net FROM ledger_lines GROUP BY account")}
    finally:
        await connection.close()
    for process in services:
        bench.stop(process)
    seconds = float(last_commit) - first
    events = len(bench.events)
    return {"replicas": replicas, "events": events, "ledger_entries": int(entries), "seconds": seconds,
            "events_per_s": events / seconds, "cpu_s": cpu,
            "cpu_s_per_100k": {name: per_100k(used, events) for name, used in cpu.items()},
            **servers_figures(servers_cpu, events),
            "duplicates": {topic.name.split(".")[1]: await duplicate_keys(bootstrap, in_namespace(topic, namespace).name)
                           for topic in (PAYMENTS, OUTCOMES)},
            "balances": balances}


async def each_record(bootstrap: str, topic: str) -> AsyncIterator[ConsumerRecord[Any, Any]]:
    """Every record on `topic`, from the beginning to the end it has now."""
    from aiokafka import TopicPartition

    # As the super user, as the chaos checker reads: no runtime principal reads every topic.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", **kafka_options("admin"))
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()


async def duplicate_keys(bootstrap: str, topic: str) -> int:
    """Records on `topic` whose value repeats an earlier record's byte for byte: a
    payment or outcome published twice (a redelivery the consumers must absorb)."""
    seen: set[bytes] = set()
    repeats = 0
    async for record in each_record(bootstrap, topic):
        digest = hashlib.sha256(record.value or b"").digest()
        repeats += digest in seen
        seen.add(digest)
    return repeats


async def produced_at(bootstrap: str, topic: str, field: str) -> dict[str, float]:
    """When each record on `topic` was produced (its timestamp, seconds), by the value's
    `field` (the first record per value; records without it are skipped)."""
    first: dict[str, float] = {}
    async for record in each_record(bootstrap, topic):
        found = json.loads(record.value or b"{}").get(field)
        if found is not None and found not in first:
            first[found] = record.timestamp / 1000
    return first


async def latency(bench: Bench, rate: float, duration_s: float) -> dict[str, Any]:
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
        await ingested(probe, namespace, services)
        watermark_sent = await publish_watermark(bootstrap, namespace)
        await wait_for(lambda: all_caught_up(probe, namespace, database_url), "latency run", services)
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT trigger_event_id, contract_id, outcome_id, subject, extract(epoch FROM recorded_at) AS committed"
            " FROM ledger_entries WHERE kind = 'payment' AND trigger_event_id IS NOT NULL")
    finally:
        await connection.close()
    for process in services:
        bench.stop(process)
    # Every payment waits for the watermark now (issue 26, DOMAIN.md "Finality"): no payment
    # is due when its trigger arrives, so the latency of money is the watermark's to the
    # ledger commit of the payments it made final, all of them at once here.
    finality = {"samples": len(rows), **percentiles_ms([float(r["committed"]) - watermark_sent for r in rows])} \
        if rows else {"samples": 0}
    # The verifier decides at the frontier, never on a fact's arrival (the same logs give
    # the same decisions whatever the batching): before the watermark no outcome is decided,
    # so the one hop that answers in real time at the paced rate is ingest's (publish to the
    # trigger's transition, from the record timestamps each producer set when it sent).
    forwarded = await produced_at(bootstrap, in_namespace(TRANSITIONS, namespace).name, "event_id")
    ingest = [forwarded[e] - sent_at[e] for e in sent_at if e in forwarded]
    return {"rate_per_s": rate, "duration_s": duration_s, "samples": len(ingest),
            "measures": "publish to ingest's transition (decisions and money wait for the watermark)",
            **percentiles_ms(ingest), "watermark_to_commit": finality}


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    delays = sorted(seconds)

    def pct(q: float) -> float:
        return delays[min(len(delays) - 1, int(q * len(delays)))] * 1000

    return {"p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": delays[-1] * 1000}


FIGURES = (("raw limit (passthrough)", ("raw_limit",), "events"),
           ("ingest alone", ("stages", "ingest"), "events"),
           ("verifier alone", ("stages", "verifier"), "events"),
           ("ledger alone", ("stages", "ledger"), "payments"),
           ("end to end", ("end_to_end",), "events"),
           ("ledger rebuild", ("stages", "ledger_rebuild"), "payments"),
           ("verifier rebuild", ("stages", "verifier_rebuild"), "events"),
           ("front door (HTTP batches)", ("frontdoor",), "events"))


def ratios(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each throughput figure against the raw limit of the same run, twice: by rate, and by
    CPU per record (the raw passthrough's CPU per event over the stage's processes' CPU per
    record: the rate ratio the stage would have on a core of its own, steadier when the
    machine is shared)."""
    raw, raw_cpu = results["raw_limit"]["events_per_s"], cpu_per_record(results["raw_limit"])
    found: dict[str, dict[str, Any]] = {}
    for name, path, unit in FIGURES:
        figures: Any = results
        for part in path:
            figures = figures.get(part) if isinstance(figures, dict) else None
        if not figures:
            continue
        used = cpu_per_record(figures)
        found[name] = {"rate": figures[f"{unit}_per_s"], "unit": f"{unit}/s",
                       "ratio_by_rate": figures[f"{unit}_per_s"] / raw,
                       "ratio_by_cpu": raw_cpu / used if used else None,
                       "cpu_s_per_100k": figures.get("cpu_s_per_100k", {}),
                       "servers_cpu_s_per_100k": figures.get("servers_cpu_s_per_100k", {})}
    return found


def table(record: dict[str, Any]) -> str:
    results = record["results"]
    lines = [f"{'figure':<27}{'rate':>10}  {'unit':<11}{'ratio to raw':>13}{'by CPU':>8}   "
             "CPU s per 100k records (user+sys): services | servers"]
    for name, figure in record["ratios"].items():
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in figure["cpu_s_per_100k"].items())
        if figure.get("servers_cpu_s_per_100k"):
            cpu += " | " + ", ".join(f"{k} {v:.1f}" for k, v in figure["servers_cpu_s_per_100k"].items())
        by_cpu = f"{figure['ratio_by_cpu']:>8.2f}" if figure["ratio_by_cpu"] else f"{'':>8}"
        lines.append(f"{name:<27}{figure['rate']:>10,.0f}  {figure['unit']:<11}{figure['ratio_by_rate']:>13.2f}"
                     f"{by_cpu}   {cpu}")
    lat = results.get("latency", {})
    final = lat.get("watermark_to_commit", {}) if isinstance(lat, dict) else {}
    if final.get("samples"):
        lines.append(f"watermark to ledger commit ({final['samples']:,} payments it made final at once): "
                     f"p50 {final['p50_ms']:,.0f} ms, p99 {final['p99_ms']:,.0f} ms, max {final['max_ms']:,.0f} ms")
    if isinstance(lat, dict) and lat.get("samples"):
        lines.append(f"ingest at {lat['rate_per_s']:,.0f} events/s for {lat['duration_s']:.0f}s "
                     f"({lat['samples']:,} events, publish to transition): p50 {lat['p50_ms']:,.0f} ms, "
                     f"p95 {lat['p95_ms']:,.0f} ms, p99 {lat['p99_ms']:,.0f} ms (no outcome is decided before the "
                     "watermark: money's latency is the line above)")
    population = results.get("population")
    if population:
        populations = population["small"].get("populations", 1)
        lines.append(f"verifier CPU per event, {population['large_subjects']:,} vs {population['small_subjects']:,} "
                     f"subjects ({populations} populations of that size): {population['large_us_per_event']:,.0f} us "
                     f"vs {population['small_us_per_event']:,.0f} us = ratio {population['ratio']:.2f}")
    replicated = results.get("replicas")
    if replicated:
        one, two = results["end_to_end"], replicated
        cost = ", ".join(f"{name} {two['cpu_s_per_100k'][name]:.1f} vs {one['cpu_s_per_100k'][name]:.1f}"
                         f" ({two['cpu_s_per_100k'][name] / one['cpu_s_per_100k'][name]:.2f}x)"
                         for name in ("ingest", "verifier", "ledger") if one["cpu_s_per_100k"].get(name))
        lines.append(f"two ingest + two verifier replicas, end to end: {two['events_per_s']:,.0f} events/s "
                     f"(one replica {one['events_per_s']:,.0f}); CPU s per 100k events {cost}")
        lines.append(f"  balances identical to one replica: {'yes' if two['balances'] == one['balances'] else 'NO'}; "
                     f"repeated records on payments/outcomes: {two['duplicates']['payments']}/"
                     f"{two['duplicates']['outcomes']} (one replica: {one['duplicates']['payments']}/"
                     f"{one['duplicates']['outcomes']})")
    rss = results["peak_rss_mib"]
    lines.append("peak RSS: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items()))
    lines.append(machine_line(record, f"{record['events']:,} events, {record['wall_seconds'] / 60:.1f} min"))
    return "\n".join(lines)


def keep_partial(started: float, results: dict[str, Any]) -> None:
    """What is measured so far, written after each stage: a run stopped early keeps it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime(started))
    (RESULTS / f"{stamp}.partial.json").write_text(json.dumps({"commit": git_commit(), "results": results}, indent=2))


def cpu_per_record(figures: dict[str, Any]) -> float:
    """CPU seconds per record of every process of a stage together (0.0 when not measured)."""
    records = figures.get("events") or figures.get("payments") or 0
    return sum(figures.get("cpu_s", {}).values()) / records if records else 0.0


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one population size as one: events, seconds and CPU added up."""
    cpu: dict[str, float] = {}
    for run in runs:
        for name, used in run["cpu_s"].items():
            cpu[name] = cpu.get(name, 0.0) + used
    events, seconds = sum(r["events"] for r in runs), sum(r["seconds"] for r in runs)
    return {"subjects": runs[0]["subjects"], "populations": len(runs), "events": events, "seconds": seconds,
            "events_per_s": events / seconds, "cpu_s": cpu,
            "cpu_s_per_100k": {name: per_100k(used, events) for name, used in cpu.items()}}


def population_figures(large: dict[str, Any], large_subjects: int, small: dict[str, Any]) -> dict[str, Any]:
    large_us = sum(large["cpu_s"].values()) / large["events"] * 1e6
    small_us = sum(small["cpu_s"].values()) / small["events"] * 1e6
    return {"large_subjects": large_subjects, "small_subjects": small["subjects"], "large_us_per_event": large_us,
            "small_us_per_event": small_us, "ratio": large_us / small_us, "small": small}


async def postgres_version(stack: LocalStack) -> str:
    connection = await asyncpg.connect(stack.role_url("owner", "postgres"))
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def main(arguments: argparse.Namespace) -> None:
    started = time.time()
    load = LoadSampler()
    load.start()
    with tempfile.TemporaryDirectory(prefix="stafet-bench-") as directory:
        work = Path(directory)
        stack = LocalStack(work / "stack", kafka_port=free_port(), controller_port=free_port(),
                           postgres_port=free_port(), database="postgres")
        say(f"starting Kafka {KAFKA_VERSION} and PostgreSQL in {work} ...")
        launched: list[ServiceProcess] = []
        await asyncio.to_thread(stack.up)
        servers.pids.update({name: pid for name, pid in (("kafka", stack.kafka_pid()),
                                                         ("postgresql", stack.postgres_pid())) if pid})
        # The benchmark's own clients (publishing, lag, rebuilds) find the stack's credentials.
        os.environ["STAFET_CREDENTIALS_DIR"] = str(stack.credentials_dir)
        try:
            postgresql = await postgres_version(stack)
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
            bench = Bench(stack, work, registry_file, events, arguments.batch, arguments.log_level, started=launched)
            say("raw limit ...")
            bench.results["raw_limit"] = await raw_limit(bench)
            keep_partial(started, bench.results)
            if "stages" in arguments.only:
                say("each stage alone ...")
                bench.results["stages"] = await stages_alone(bench)
                keep_partial(started, bench.results)
            if "population" in arguments.only and arguments.population_divisor > 1:
                small = max(100, arguments.subjects // arguments.population_divisor)
                # Both sizes take the same path (transitions admitted in-process, the
                # verifier alone); the small one is run on as many populations of its size
                # as make up about the large one's events (at most 10), since a run of a
                # few batches measures its first and last batch more than its cost.
                repeats = min(arguments.population_divisor, POPULATION_REPEATS_MAX)
                say(f"the verifier alone on {arguments.subjects:,} subjects, then on {repeats} populations "
                    f"of {small:,} ...")
                large = await small_population(bench, arguments.subjects, arguments.seed, arguments.municipalities)
                smalls = [await small_population(bench, small, arguments.seed + n, arguments.municipalities)
                          for n in range(repeats)]
                bench.results["population"] = population_figures(large, arguments.subjects, combined(smalls))
            if "end_to_end" in arguments.only:
                say("end to end ...")
                bench.results["end_to_end"] = await end_to_end(bench)
                keep_partial(started, bench.results)
            if "replicas" in arguments.only and arguments.replicas > 1:
                say(f"end to end with {arguments.replicas} ingest and {arguments.replicas} verifier replicas ...")
                bench.results["replicas"] = await end_to_end(bench, arguments.replicas)
                keep_partial(started, bench.results)
            if "latency" in arguments.only:
                say(f"latency at {arguments.rate}/s for {arguments.duration}s ...")
                bench.results["latency"] = await latency(bench, arguments.rate, arguments.duration)
                keep_partial(started, bench.results)
            if clear_lines and "frontdoor" in arguments.only:
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
            if arguments.keep_logs:
                kept = keep_logs(work, arguments.keep_logs)
                say(f"{kept} service logs kept in {arguments.keep_logs}")
    versions = library_versions()
    parameters = {k: str(v) if isinstance(v, Path) else v for k, v in vars(arguments).items()}
    record: dict[str, Any] = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "commit": git_commit(),
        "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "python": versions.pop("python"),
                    "platform": platform.platform(), "kafka": KAFKA_VERSION, "postgresql": postgresql,
                    "libraries": versions},
        "load_average_1m": await load.stop(),
        "parameters": parameters, "events": len(events), "results": bench.results,
        "ratios": ratios(bench.results),
        "wall_seconds": time.time() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{record['timestamp'].replace(':', '')}.json"
    out.write_text(json.dumps(record, indent=2))
    (RESULTS / f"{record['timestamp'].replace(':', '')}.partial.json").unlink(missing_ok=True)
    say("\n" + table(record))
    say(f"\nwritten to {out}")


POPULATION_REPEATS_MAX = 10
PARTS = ("stages", "population", "end_to_end", "replicas", "latency", "frontdoor")


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"unknown part {', '.join(unknown) or '(none)'}; choose from {', '.join(PARTS)}")
    # The replicas are compared with one replica's end-to-end run.
    return (*parts, "end_to_end") if "replicas" in parts and "end_to_end" not in parts else parts


def keep_logs(work: Path, into: Path) -> int:
    """Copy every service log of the run (one folder per stage's namespace) out of the
    temporary directory before it goes."""
    kept = 0
    for log in work.glob("*/*.log"):
        if log.parent.name == "stack":
            continue
        target = into / log.parent.name / log.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(log.read_bytes())
        kept += 1
    return kept


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # Small enough to finish in about half an hour on the shared 2-core machine (load ~15),
    # a few minutes on a quiet one; BENCH_ARGS="--subjects 115000" for a million events.
    parser.add_argument("--subjects", type=int, default=int(os.environ.get("BENCH_SUBJECTS", "10000")),
                        help="synthetic subjects (about 9 events each; default 10,000: about 91,000 events)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--municipalities", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2000, help="consumer batch size for every stage")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s for the latency run")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the latency run")
    parser.add_argument("--frontdoor-events", type=int, default=10_000,
                        help="events POSTed to the HTTP front door (clear CPR numbers, sealed there; 0: skip)")
    parser.add_argument("--population-divisor", type=int, default=10,
                        help="the verifier also runs alone on subjects / this (1: skip)")
    parser.add_argument("--replicas", type=int, default=2,
                        help="ingest and verifier replicas of the second end-to-end run (1: skip)")
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="the services' log level (INFO logs every batch: sizes, outputs, timers)")
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR",
                        help="copy the services' logs here at the end (one folder per stage)")
    parser.add_argument("--only", type=_parts, default=PARTS,
                        help=f"comma-separated parts to run, of: {', '.join(PARTS)} (default: all; the raw "
                             "limit always runs, every ratio needs it)")
    nation = parser.add_argument_group("a nation (bench/nation_stack.py; docs/nation.md): instead of the parts above")
    nation.add_argument("--nation", action="store_true",
                        help="run Denmark's largest T municipalities, each a tenant, through the whole stack and "
                             "report CPU per event and per tenant as T grows")
    nation.add_argument("--tenants", type=_tenant_counts, default=(1, 10, 98),
                        help="with --nation: comma-separated tenant counts, 1 to 98 (default 1,10,98)")
    nation.add_argument("--years", type=_positive, default=1, help="with --nation: years of births (default 1)")
    nation.add_argument("--repeats", type=_positive, default=1,
                        help="with --nation: run each tenant count this many times, in turn, and report the "
                             "medians (default 1)")
    nation.add_argument("--nation-fraction", type=_fraction, default=0.1,
                        help="with --nation: the share of those births run (default 0.1: a tenth, a few minutes "
                             "on a shared 2-core machine)")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share above 0 and at most 1")
    return value


def _tenant_counts(text: str) -> tuple[int, ...]:
    from cli.synthetic.nation import denmark

    most = len(denmark().municipalities)
    counts = tuple(_positive(p.strip()) for p in text.split(",") if p.strip())
    if not counts or any(c > most for c in counts):
        raise argparse.ArgumentTypeError(f"tenant counts are 1 to {most}, not {text!r}")
    return counts


def run(arguments: argparse.Namespace) -> None:
    if arguments.nation:
        from bench.nation_stack import main as nation_main

        asyncio.run(nation_main(arguments))
    else:
        asyncio.run(main(arguments))


if __name__ == "__main__":
    run(parse(sys.argv[1:]))
