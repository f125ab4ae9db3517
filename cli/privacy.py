"""`stafet privacy scan`: look for CPR numbers where none may be, in any spelling.

Ingest refuses an event with a CPR number outside its sealed subject reference (docs/
privacy.md), but records that reached a topic before a spelling was recognised stay
there: the transitions topic and the verifier's store are kept forever. This command
reads every record of every topic on the broker, every row of every table in the
database, and every log and export file it is pointed at, and prints how many CPR
numbers it found in each place (never a number), exiting 1 when it found any.

The search is `shared/domain/stored_cprs.py` (each value on its own; hex digests,
pseudonyms, sealed numbers and timestamps left out). It reads topics as the broker's
super user by default (`--principal`): only it may read every topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from shared.domain import stored_cprs

app = typer.Typer(help="Privacy checks over what is stored.", no_args_is_help=True)

TOPIC_READ_TIMEOUT_S = 120.0  # per topic: the broker answers, or the scan says so
FILE_BYTES_MAX = 256 * 1024 * 1024  # a log or export larger than this is read only this far


async def scan_topics(bootstrap: str, principal: str, prefix: str) -> dict[str, int]:
    """Hits per topic whose name starts with `prefix` (internal topics left out)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from shared.platform.credentials import kafka_options

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **kafka_options(principal))
    await consumer.start()
    found: dict[str, int] = {}
    try:
        names = sorted(t for t in await consumer.topics() if t.startswith(prefix) and not t.startswith("__"))
        # Every topic's partitions, asked before the first assignment: once a consumer is
        # assigned, its metadata covers only the topics it is assigned.
        await consumer._client.force_metadata_update()
        all_partitions = {topic: sorted(consumer.partitions_for_topic(topic) or ()) for topic in names}
        for topic in names:
            partitions = [TopicPartition(topic, p) for p in all_partitions[topic]]
            if not partitions:
                raise RuntimeError(f"the broker names no partitions of topic {topic}")
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            hits = 0
            async with asyncio.timeout(TOPIC_READ_TIMEOUT_S):
                while [p for p in partitions if await consumer.position(p) < ends[p]]:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            hits += stored_cprs.in_record((record.value or b"").decode("utf-8", "replace"))
                            hits += stored_cprs.in_value((record.key or b"").decode("utf-8", "replace"))
            found[topic] = hits
    finally:
        await consumer.stop()
    return found


async def scan_tables(database_url: str) -> dict[str, int]:
    """Hits per table of the database's public schema, every row as JSON."""
    import asyncpg

    connection = await asyncpg.connect(database_url)
    found: dict[str, int] = {}
    try:
        tables = [r["tablename"] for r in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        for table in tables:
            hits = 0
            async with connection.transaction():
                async for row in connection.cursor(f'SELECT row_to_json(t)::text AS j FROM "{table}" t'):
                    hits += stored_cprs.in_record(row["j"])
            found[table] = hits
    finally:
        await connection.close()
    return found


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path


def scan_files(paths: list[Path]) -> dict[str, int]:
    """Hits per text file (logs, exports); a binary file (a NUL byte) is left out."""
    found: dict[str, int] = {}
    for path in _files(paths):
        with path.open("rb") as handle:
            data = handle.read(FILE_BYTES_MAX)
        if b"\0" in data:
            continue
        found[str(path)] = stored_cprs.in_file_text(path.name, data.decode("utf-8", "replace"))
    return found


@app.command("scan")
def scan(
    path: Annotated[list[Path] | None, typer.Option(
        "--path", help="A log or export file, or a folder of them (repeatable); default: none")] = None,
    topics: Annotated[bool, typer.Option("--topics/--no-topics", help="Read every topic on the broker")] = True,
    tables: Annotated[bool, typer.Option("--tables/--no-tables",
                                         help="Read every table of the database (DATABASE_URL, as the owner)")] = True,
    topic_prefix: Annotated[str, typer.Option(help="Only topics whose name starts with this")] = "",
    principal: Annotated[str, typer.Option(help="The broker principal that reads the topics")] = "admin",
) -> None:
    """Count CPR numbers, in any spelling, in topics, tables, logs and exports: prints the
    count per place that has any (never a number) and exits 1 when there are any."""
    from shared.platform.credentials import database_url
    from shared.platform.settings import Settings

    settings = Settings()
    places: list[tuple[str, dict[str, int]]] = []
    if topics:
        places.append(("topic", asyncio.run(scan_topics(settings.kafka_bootstrap_servers, principal, topic_prefix))))
    if tables:
        places.append(("table", asyncio.run(scan_tables(database_url("owner", settings)))))
    places.append(("file", scan_files(path or [])))
    total = 0
    for kind, found in places:
        for name, hits in found.items():
            if hits:
                typer.echo(f"{kind} {name}: {hits} CPR number(s)")
                total += hits
    looked = ", ".join(f"{len(found)} {kind}(s)" for kind, found in places)
    if total:
        typer.echo(f"privacy scan: {total} CPR number(s) found, looked at {looked}")
        raise typer.Exit(1)
    typer.echo(f"privacy scan: no CPR number found, looked at {looked}")
