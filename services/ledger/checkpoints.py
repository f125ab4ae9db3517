"""Signed checkpoints: the chain anchored outside the database.

The hash chain proves that rows were not altered *unless* whoever altered them also
recomputed the chain, and a database superuser can do both. So after every batch the
ledger publishes, to the append-only checkpoints topic, the entry hash of every entry it
committed (in chunks of at most CHECKPOINT_ENTRIES_MAX), signed with the ledger's key
(`service:ledger`), which lives in the ledger's process and never in the database.
`stafet ledger verify` recomputes the chain from the rows and compares each entry's
hash with the signed one: a rewritten entry, even with the chain recomputed after it,
differs from its checkpoint, and is named.

What it does not cover: entries committed and not yet checkpointed (the last batch, or
the gap while the ledger was down; checkpointed at its next batch), and an alteration
made in the moment between an entry's commit and its checkpoint being read back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import Field, StringConstraints, ValidationError

from shared.domain.events import Frozen
from shared.domain.principals import Principal, Role
from shared.platform.credentials import kafka_options
from shared.platform.trust import ConsumedRecord, TrustedKeys

CHECKPOINT_ENTRIES_MAX = 1000  # about 70 KB a record, well under the broker's 1 MB limit
FETCH_TIMEOUT_MS = 1000
LEDGER = Principal(Role.SERVICE, "ledger")
CHECKPOINT_KEY = b"ledger"

EntryHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Checkpoint(Frozen):
    """The hashes of entries first_sequence, first_sequence + 1, ... (checkpoints topic, v1)."""

    kind: Literal["ledger_checkpoint"] = "ledger_checkpoint"
    schema_version: Literal[1] = 1
    first_sequence: Annotated[int, Field(ge=1)]
    entry_hashes: Annotated[tuple[EntryHash, ...], Field(min_length=1, max_length=CHECKPOINT_ENTRIES_MAX)]

    @property
    def last_sequence(self) -> int:
        return self.first_sequence + len(self.entry_hashes) - 1


def checkpoints_of(rows: Sequence[tuple[int, str]]) -> list[Checkpoint]:
    """Consecutive (sequence, entry hash) rows, cut into checkpoints."""
    chunks = [rows[i:i + CHECKPOINT_ENTRIES_MAX] for i in range(0, len(rows), CHECKPOINT_ENTRIES_MAX)]
    return [Checkpoint(first_sequence=chunk[0][0], entry_hashes=tuple(h for _, h in chunk)) for chunk in chunks]


async def entries_after(connection: asyncpg.Connection, sequence: int, limit: int) -> list[tuple[int, str]]:
    rows = await connection.fetch(
        "SELECT sequence, entry_hash FROM ledger_entries WHERE sequence > $1 ORDER BY sequence LIMIT $2",
        sequence, limit)
    return [(int(r["sequence"]), str(r["entry_hash"])) for r in rows]


@dataclass(frozen=True)
class Anchors:
    """What the signed checkpoints say: entry hash by sequence."""

    hashes: Mapping[int, str]
    refused: int  # records on the topic that no ledger key signed (or that do not parse)
    conflicts: tuple[int, ...]  # sequences two signed checkpoints disagree on

    @property
    def through(self) -> int:
        return max(self.hashes, default=0)


def anchors_of(records: Sequence[ConsumedRecord], trust: TrustedKeys) -> Anchors:
    hashes: dict[int, str] = {}
    refused = 0
    conflicts: list[int] = []
    for record in records:
        signer = trust.authenticate_record(record)
        try:
            checkpoint = Checkpoint.model_validate_json(record.value or b"")
        except ValidationError:
            refused += 1
            continue
        if signer != LEDGER:
            refused += 1
            continue
        for offset, entry_hash in enumerate(checkpoint.entry_hashes):
            sequence = checkpoint.first_sequence + offset
            if hashes.setdefault(sequence, entry_hash) != entry_hash:
                conflicts.append(sequence)
    return Anchors(hashes, refused, tuple(conflicts))


@dataclass(frozen=True)
class CheckpointTopic:
    """The checkpoints topic as read: its records, and where its log starts and ends. A
    log that no longer starts at offset 0 had records deleted (retention or deleteRecords)."""

    records: list[ConsumerRecord[Any, Any]]
    start_offset: int
    end_offset: int


async def read_topic(bootstrap: str, topic: str, *, last_only: bool = False,
                     principal: str = "ledger") -> CheckpointTopic:
    """Every record of the (one-partition) checkpoints topic, or only the last one, read
    as `principal` (the ledger, or an operator verifying it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", **kafka_options(principal))
    try:
        await consumer.start()
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        start = (await consumer.beginning_offsets([partition]))[partition]
        end = (await consumer.end_offsets([partition]))[partition]
        if last_only and end > start:
            consumer.seek(partition, end - 1)
        else:
            await consumer.seek_to_beginning(partition)
        records: list[ConsumerRecord[Any, Any]] = []
        while await consumer.position(partition) < end:
            fetched = await consumer.getmany(partition, timeout_ms=FETCH_TIMEOUT_MS)
            records.extend(r for r in fetched.get(partition, []) if r.offset < end)
        return CheckpointTopic(records, start, end)
    finally:
        await consumer.stop()


async def read_records(bootstrap: str, topic: str, *, last_only: bool = False,
                       principal: str = "ledger") -> list[ConsumerRecord[Any, Any]]:
    return (await read_topic(bootstrap, topic, last_only=last_only, principal=principal)).records


async def read_anchors(bootstrap: str, topic: str, trust: TrustedKeys, *, principal: str = "ledger") -> Anchors:
    return anchors_of(await read_records(bootstrap, topic, principal=principal), trust)
