"""`make bench BENCH_ARGS="--nation --years 1"`: a nation in Denmark's proportions through the
whole stack, as the number of tenants grows (docs/performance.md, "A nation through the
whole stack"; docs/nation.md).

For each tenant count T (by default 1, 10 and 98): the T largest of Denmark's municipalities
(cli/synthetic/nation.py), each a tenant with its own next-stage bonus contract signed by
its own operator, and their children: `--years` years of their births, scaled by
`--nation-fraction` (by default a tenth, so that the three runs finish in minutes on a
shared 2-core machine), so the events grow with the tenants. The institutions' events go
through ingest, the verifier and the ledger on the local Kafka and PostgreSQL, with
TENANTS_FILE, each run on its own topics and database; then the operator's clock moves
past every fact and the run waits until every payment is in the ledger.

It reports, per run, the CPU seconds each service and server used from the first event
published to the last ledger entry, as microseconds per event and as seconds per tenant,
and the same above what the processes use idle (measured for a few seconds after the
run): a small run's few events carry its idle polling, a large run's many do not.
Flat CPU per event as T grows means a tenant costs the others nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.measure import LoadSampler, cpu_model, git_commit, library_versions, machine_line
from bench.run import (
    RESULTS,
    all_caught_up,
    cpu_between,
    cpu_of,
    fill,
    ingested,
    keep_logs,
    postgres_version,
    say,
    servers,
    wait_for,
)
from cli.demo import publish_watermark
from cli.demo_nation import NATION_WATERMARK, write_tenants
from cli.signed import send_signed
from cli.synthetic.nation import denmark, generate_nation, nation_births
from cli.synthetic.population import to_json_line, write_registry
from shared.domain.contracts.model import contract_record_key
from shared.domain.sealing import Sealer, development_private_key
from shared.domain.signing import RecordSigner
from shared.platform.credentials import without_user
from shared.platform.db import migrate, recreate_database
from shared.platform.kafka import LagProbe, ensure_topics
from shared.platform.kafka_access import Kind, grant_namespace, tenant_principal, tenant_principals
from shared.platform.processes import ServiceProcess
from shared.platform.stack import KAFKA_VERSION, LocalStack, free_port, local_password
from shared.platform.topics import CONTRACTS, INSTITUTION_EVENTS, all_topics, in_namespace, tenant_topic

SERVICES = ("ingest", "verifier", "ledger")
SETTLE_S = 5.0  # the services join their consumer groups before the clock starts
IDLE_S = 3.0  # after the run, their idle CPU is measured


@dataclass(frozen=True)
class Plan:
    """One run: the `tenants` largest municipalities and `children` of their children."""

    tenants: int
    children: int


def plans(tenant_counts: tuple[int, ...], years: int, fraction: float) -> list[Plan]:
    return [Plan(t, nation_births(t, years, fraction)) for t in tenant_counts]


def describe(arguments: argparse.Namespace) -> str:
    share = arguments.nation_fraction
    years = f"{arguments.years} year{'s' if arguments.years != 1 else ''}"
    return (f"a nation in Denmark's proportions: {share:.0%} of {years} of births of the largest T of its "
            f"{len(denmark().municipalities)} municipalities (T = {', '.join(map(str, arguments.tenants))}), "
            f"each a tenant, through ingest, verifier and ledger on Kafka and PostgreSQL")


async def one_nation(stack: LocalStack, work: Path, plan: Plan, arguments: argparse.Namespace,
                     run: int = 0) -> dict[str, Any]:
    bootstrap = stack.bootstrap_servers
    namespace = f"nation{plan.tenants}t{run}r{int(time.time())}"
    await ensure_topics(bootstrap, all_topics(namespace))
    await grant_namespace(bootstrap, namespace)
    database_url = await recreate_database(stack.role_url("owner", "postgres"), f"bench_nation_{plan.tenants}_{run}")
    await migrate(database_url)
    nation = generate_nation(plan.tenants, plan.children, arguments.seed, years=arguments.years)
    # Each tenant's own topics and Kafka logins (docs/tenancy.md, "Topics per tenant"), as
    # the nation demo makes them: each tenant's operator publishes its contract on its own
    # topic, signed with its own key.
    tenants = [t.id for t in nation.tenants]
    await ensure_topics(bootstrap, all_topics(namespace, tenants))
    await grant_namespace(bootstrap, namespace, principals={}, tenants=tenants, tenant_passwords={
        login: local_password(stack.credentials_dir, "kafka", login) for login in tenant_principals(tenants)})
    folder = work / namespace
    folder.mkdir(parents=True, exist_ok=True)
    write_registry(folder / "institutions.yaml", nation.institutions)
    write_tenants(folder / "tenants.yaml", nation)
    for contract in nation.contracts:  # each municipality's contract, signed by its own operator
        signer = RecordSigner.development(f"operator:{contract.payer}-ops")
        await send_signed(bootstrap, "stafet-bench-nation", tenant_topic(in_namespace(CONTRACTS, namespace),
                                                                         contract.payer).name,
                          [(contract_record_key(contract, signer.principal), contract.model_dump_json().encode())],
                          signer, principal=tenant_principal(Kind.OPERATOR, contract.payer))
    sealer = Sealer(development_private_key().public_key())
    records = [sealer.keyed(to_json_line(e)) for e in nation.events]
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": without_user(database_url),
           "STAFET_CREDENTIALS_DIR": str(stack.credentials_dir), "STAFET_TOPIC_NAMESPACE": namespace,
           "INSTITUTIONS_FILE": str(folder / "institutions.yaml"), "TENANTS_FILE": str(folder / "tenants.yaml"),
           "BATCH_MAX_RECORDS": str(arguments.batch), "LOG_LEVEL": arguments.log_level, "TICK_INTERVAL_S": "0.5"}
    services = [ServiceProcess(name, env, folder / f"{name}.log") for name in SERVICES]
    try:
        for service in services:
            service.start()
        await asyncio.sleep(SETTLE_S)
        cpu_before, servers_before = cpu_of(services), servers.cpu_s()
        clock = time.monotonic()
        # Child by child (each child's events in one verifier batch, whatever the run's
        # size), each institution's events of the run signed together, as one file: a
        # signature per institution, so as many per event at every size (the institutions
        # and the births are both in proportion to population). Signed per window of
        # 5,000 records, as the other stages are, a scaled-down nation's 5,283 institutions
        # would each sign a few records per window, more signatures per event the more
        # municipalities, which measures the sample, not the tenants (docs/performance.md).
        first = await fill(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, records,
                           window=len(records))
        async with LagProbe(bootstrap) as probe:
            await ingested(probe, namespace, services)
            await publish_watermark(bootstrap, namespace, NATION_WATERMARK)
            await wait_for(lambda: all_caught_up(probe, namespace, database_url), f"{plan.tenants} tenants",
                           services)
        seconds, measured = time.time() - first, time.monotonic() - clock
        cpu_after, servers_after = cpu_of(services), servers.cpu_s()
        cpu, servers_cpu = cpu_between(cpu_before, cpu_after), cpu_between(servers_before, servers_after)
        # What the processes use idle (polling, the clock's ticks), over IDLE_S once every
        # payment is in, so that a small run's figure can be read without it.
        await asyncio.sleep(IDLE_S)
        idle = {name: used / IDLE_S for name, used in {**cpu_between(cpu_after, cpu_of(services)),
                                                      **cpu_between(servers_after, servers.cpu_s())}.items()}
    finally:
        for service in services:
            service.stop()
    connection = await asyncpg.connect(database_url)
    try:
        paid = await connection.fetch("SELECT payer, payee, amount_minor FROM ledger_entries WHERE kind = 'payment'")
    finally:
        await connection.close()
    return figures(plan, len(records), seconds, cpu, servers_cpu, idle={k: v * measured for k, v in idle.items()},
                   payments=len(paid),
                   payers=len({p["payer"] for p in paid}), owed_minor=sum(int(p["amount_minor"]) for p in paid),
                   cross_border=sum(1 for p in paid if nation.municipality_of(p["payee"]) != p["payer"]),
                   institutions=len(nation.institutions))


def figures(plan: Plan, events: int, seconds: float, cpu: dict[str, float], servers_cpu: dict[str, float],
            idle: dict[str, float] | None = None, **counts: int) -> dict[str, Any]:
    """`idle`: per process, the CPU seconds it would have used idle over the run (its idle
    rate times the run's length); `above_idle_us_per_event` leaves them out."""
    services_s, servers_s = sum(cpu.values()), sum(servers_cpu.values())
    everything = {**cpu, **servers_cpu}
    above = {name: max(0.0, used - (idle or {}).get(name, 0.0)) for name, used in everything.items()}
    return {"tenants": plan.tenants, "children": plan.children, "events": events, **counts, "seconds": seconds,
            "events_per_s": events / seconds, "cpu_s": cpu, "servers_cpu_s": servers_cpu, "idle_cpu_s": idle or {},
            "us_per_event": {name: used / events * 1e6 for name, used in everything.items()},
            "services_us_per_event": services_s / events * 1e6,
            "all_us_per_event": (services_s + servers_s) / events * 1e6,
            "above_idle_us_per_event": sum(above.values()) / events * 1e6,
            "cpu_s_per_tenant": (services_s + servers_s) / plan.tenants}


def table(record: dict[str, Any]) -> str:
    runs = record["results"]["nation"]
    names = [n for n in (*SERVICES, "kafka", "postgresql") if any(n in r["us_per_event"] for r in runs)]
    header = (f"{'tenants':>7} {'children':>8} {'events':>7} {'payments':>8} {'events/s':>8} "
              + " ".join(f"{n:>10}" for n in names) + f" {'services':>9} {'all':>7} {'above idle':>10}"
              f" {'CPU s/tenant':>12}")
    lines = [record["description"], "CPU microseconds per event (user + system), from the first event published to "
             "the last ledger entry:", header]
    for r in runs:
        lines.append(f"{r['tenants']:>7} {r['children']:>8,} {r['events']:>7,} {r['payments']:>8,} "
                     f"{r['events_per_s']:>8,.0f} " + " ".join(f"{r['us_per_event'].get(n, 0):>10,.0f}" for n in names)
                     + f" {r['services_us_per_event']:>9,.0f} {r['all_us_per_event']:>7,.0f}"
                     f" {r['above_idle_us_per_event']:>10,.0f} {r['cpu_s_per_tenant']:>12,.2f}")
    typical = medians(runs)
    if len(typical) > 1:
        if len(typical) < len(runs):
            lines.append("median of the runs of each size:")
            for r in typical:
                lines.append(f"{r['tenants']:>7} {'':>8} {'':>7} {'':>8} {'':>8} "
                             + " ".join(f"{r['us_per_event'].get(n, 0):>10,.0f}" for n in names)
                             + f" {r['services_us_per_event']:>9,.0f} {r['all_us_per_event']:>7,.0f}"
                             f" {r['above_idle_us_per_event']:>10,.0f}")
        first, last = typical[0], typical[-1]
        lines.append(f"CPU per event at {last['tenants']} tenants against {first['tenants']}: services "
                     f"{last['services_us_per_event'] / first['services_us_per_event']:.2f}x, all processes "
                     f"{last['all_us_per_event'] / first['all_us_per_event']:.2f}x, all processes above idle "
                     f"{last['above_idle_us_per_event'] / first['above_idle_us_per_event']:.2f}x")
    lines.append(machine_line(record, f"{record['wall_seconds'] / 60:.1f} min"))
    return "\n".join(lines)


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per tenant count (in the order first run), the median of its runs' CPU figures."""
    by_size: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        by_size.setdefault(run["tenants"], []).append(run)

    def middle(values: list[float]) -> float:
        ordered = sorted(values)
        half = len(ordered) // 2
        return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2

    return [{"tenants": size, "runs": len(same),
             "us_per_event": {name: middle([r["us_per_event"].get(name, 0.0) for r in same])
                              for name in same[0]["us_per_event"]},
             **{key: middle([r[key] for r in same])
                for key in ("services_us_per_event", "all_us_per_event", "above_idle_us_per_event")}}
            for size, same in by_size.items()]


async def main(arguments: argparse.Namespace) -> None:
    started = time.time()
    load = LoadSampler()
    load.start()
    # Each size in turn, `--repeats` times over (a shared machine's load drifts: the sizes
    # share it alike), the median of each size reported.
    runs = plans(arguments.tenants, arguments.years, arguments.nation_fraction) * arguments.repeats
    say(describe(arguments))
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stafet-bench-nation-") as directory:
        work = Path(directory)
        stack = LocalStack(work / "stack", kafka_port=free_port(), controller_port=free_port(),
                           postgres_port=free_port(), database="postgres")
        say(f"starting Kafka {KAFKA_VERSION} and PostgreSQL in {work} ...")
        await asyncio.to_thread(stack.up)
        servers.pids.update({name: pid for name, pid in (("kafka", stack.kafka_pid()),
                                                         ("postgresql", stack.postgres_pid())) if pid})
        os.environ["STAFET_CREDENTIALS_DIR"] = str(stack.credentials_dir)
        try:
            postgresql = await postgres_version(stack)
            for run, plan in enumerate(runs):
                say(f"{plan.tenants} tenant{'s' if plan.tenants != 1 else ''}: {plan.children:,} children ...")
                results.append(await one_nation(stack, work, plan, arguments, run))
        finally:
            stack.down()
            if arguments.keep_logs:
                say(f"{keep_logs(work, arguments.keep_logs)} service logs kept in {arguments.keep_logs}")
    versions = library_versions()
    record: dict[str, Any] = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "commit": git_commit(),
        "description": describe(arguments),
        "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "python": versions.pop("python"),
                    "platform": platform.platform(), "kafka": KAFKA_VERSION, "postgresql": postgresql,
                    "libraries": versions},
        "load_average_1m": await load.stop(),
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(arguments).items()},
        "results": {"nation": results, "medians": medians(results)}, "wall_seconds": time.time() - started}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{record['timestamp'].replace(':', '')}-nation.json"
    out.write_text(json.dumps(record, indent=2))
    say("\n" + table(record))
    say(f"\nwritten to {out}")
