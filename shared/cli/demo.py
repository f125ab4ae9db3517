"""`stafet demo` (what `make demo` runs): the whole system on real servers, start to end.

Starts the local stack if it is not running, gives this run its own topic namespace and
a fresh database (so a second run starts clean), starts ingest, verifier and ledger as
processes, publishes the sample events, waits until every service has caught up, prints
the ledger's balances, and stops what it started.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import typer
from aiokafka.errors import KafkaError

from shared.cli.dev import default_stack
from shared.cli.publish import publish_records, validate_lines
from shared.institutions import InstitutionRegistry
from shared.kafka import consumer_lag, ensure_topics, wait_for_broker
from shared.processes import start_services, stop_services
from shared.settings import REPO_ROOT
from shared.topics import INSTITUTION_EVENTS, PAYMENTS, TRANSITIONS, all_topics, in_namespace

DEMO_DATABASE = "stafet_demo"
CATCH_UP_TIMEOUT_S = 300.0
CONTRACTS = ("mobility-bonus.yaml", "employment-pbr.yaml", "sib-youth-education.yaml",
             "next-stage-bonus.yaml")


async def fresh_database(admin_url: str, name: str) -> str:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return admin_url.rpartition("/")[0] + f"/{name}"


async def caught_up(bootstrap: str, namespace: str, database_url: str) -> bool:
    try:
        return await _caught_up(bootstrap, namespace, database_url)
    except KafkaError:
        return False  # e.g. the group coordinator of a fresh broker is still starting


async def _caught_up(bootstrap: str, namespace: str, database_url: str) -> bool:
    lags = [
        await consumer_lag(bootstrap, f"{namespace}-ingest", in_namespace(INSTITUTION_EVENTS, namespace).name),
        await consumer_lag(bootstrap, f"{namespace}-verifier", in_namespace(TRANSITIONS, namespace).name),
        await consumer_lag(bootstrap, f"{namespace}-ledger", in_namespace(PAYMENTS, namespace).name),
    ]
    connection = await asyncpg.connect(database_url)
    try:
        unpublished = await connection.fetchval(
            "SELECT count(*) FROM verifier_outbox WHERE published_at IS NULL")
    except asyncpg.UndefinedTableError:
        unpublished = 1  # the verifier has not migrated yet
    finally:
        await connection.close()
    return sum(lags) == 0 and unpublished == 0


async def print_balances(database_url: str, registry: InstitutionRegistry) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT account, currency, sum(credit_minor) - sum(debit_minor) AS balance,"
            " count(DISTINCT sequence) AS entries FROM ledger_lines"
            " GROUP BY account, currency ORDER BY account")
        entries = await connection.fetchval("SELECT count(*) FROM ledger_entries")
        outcomes = await connection.fetch(
            "SELECT contract_id, status, count(*) AS n FROM verifier_outcomes"
            " GROUP BY contract_id, status ORDER BY contract_id, status")
    finally:
        await connection.close()
    typer.echo("\nOutcomes per contract:")
    for row in outcomes:
        typer.echo(f"  {row['contract_id']:<22} {row['status']:<20} {row['n']:>5}")
    typer.echo(f"\nLedger: {entries} entries. Balances (credits minus debits):")
    for row in rows:
        kind, owner, *rest = row["account"].split(":")
        label = f"{kind} {registry.name_of(owner)}" + (f" ({':'.join(rest)})" if rest else "")
        typer.echo(f"  {label:<62} {row['balance'] / 100:>14,.2f} {row['currency'].strip()}")


def run_demo(events: Path) -> None:
    stack = default_stack()
    started_stack = not all(stack.status().values())
    clock = time.monotonic()
    typer.echo("1/5 starting Kafka and PostgreSQL (local processes) ...")
    stack.up()
    namespace = f"demo{int(time.time())}"
    bootstrap = stack.bootstrap_servers
    asyncio.run(wait_for_broker(bootstrap))
    asyncio.run(ensure_topics(bootstrap, all_topics(namespace)))
    database_url = asyncio.run(fresh_database(stack.database_url, DEMO_DATABASE))
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": database_url,
        "STAFET_TOPIC_NAMESPACE": namespace,
        "CONTRACT_FILES": ",".join(str(REPO_ROOT / "examples" / "contracts" / c) for c in CONTRACTS),
    }
    log_dir = stack.directory / "logs" / namespace
    typer.echo(f"2/5 starting ingest, verifier and ledger (logs in {log_dir}) ...")
    services = start_services(env, log_dir)
    try:
        good, problems = validate_lines(events)
        if problems:
            raise typer.BadParameter(f"{events}: {len(problems)} invalid line(s)")
        typer.echo(f"3/5 publishing {len(good)} institution events from {events} ...")
        asyncio.run(publish_records(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, good))
        typer.echo("4/5 waiting for ingest, verifier and ledger to catch up ...")
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while not asyncio.run(caught_up(bootstrap, namespace, database_url)):
            dead = [s.name for s in services.values() if not s.running()]
            if dead:
                raise RuntimeError(f"service(s) {', '.join(dead)} stopped; see {log_dir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not caught up after {CATCH_UP_TIMEOUT_S}s; see {log_dir}")
            time.sleep(0.5)
        registry = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
        asyncio.run(print_balances(database_url, registry))
    finally:
        typer.echo("\n5/5 stopping the services" + (" and the stack" if started_stack else ""))
        stop_services(services)
        if started_stack:
            stack.down()
    typer.echo(f"demo finished in {time.monotonic() - clock:.1f}s")
