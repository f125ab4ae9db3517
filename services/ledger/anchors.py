"""Anchors an administrator cannot remove.

Signed checkpoints (`checkpoints.py`) anchor the chain outside the database, on a topic.
Whoever administers the broker can delete records from that topic, and then a rewritten
chain is neither caught ("0 anchored") nor, after the ledger's next start, distinguishable
from a genuine one (the ledger would sign the rewritten history afresh). So the anchors
are kept in three places that different people administer, and each is checked against
the others:

- the **topic** must start at offset 0 (deleting records moves its start);
- the **anchor log** (`ledger_anchor_log`, append-only, in the ledger's database): every
  checkpoint the ledger published, by its last entry and that entry's hash. A checkpoint
  recorded there and gone from the topic was removed;
- the **export** an auditor keeps (`stafet ledger checkpoints export --out FILE`, JSON Lines,
  appended to, never rewritten): every checkpoint record as it was on the topic, offset,
  bytes and signature. `stafet ledger verify --against FILE` finds any of them gone or
  changed, and compares the chain with them even when the topic and the database were both
  rewritten.

`stafet ledger verify` fails, saying why, when any of these disagree, or when entries
before the newest signed checkpoint are covered by none. The ledger checks the first two
at start and refuses to sign checkpoints over history older than its last anchor (log
error `checkpointing_refused`, metric `stafet_ledger_anchors_ok` 0) unless an operator has
signed a decision (`ReanchorDecision`, `stafet ledger checkpoints reanchor`) naming this
topic, the offset it now starts at and the entry from which the ledger may sign again.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
from pydantic import AwareDatetime, Field, StringConstraints, ValidationError

from services.ledger.checkpoints import Anchors, Checkpoint
from shared.domain.events import Frozen
from shared.domain.key_lists import SignedDocument

REANCHOR_LABEL = b"stafet-ledger-reanchor-v1"
KEPT_LINE_CHARS_MAX = 200_000  # a checkpoint record is about 70 KB


class ReanchorDecision(SignedDocument):
    """An operator's signed decision that the ledger may sign checkpoints again from
    `from_sequence` on, although its anchors were found removed (`reason` says why and
    what was checked, e.g. the chain against the auditor's export)."""

    LABEL: ClassVar[bytes] = REANCHOR_LABEL
    kind: Literal["stafet_ledger_reanchor"] = "stafet_ledger_reanchor"
    schema_version: Literal[1] = 1
    decided_at: AwareDatetime
    decided_by: Annotated[str, StringConstraints(pattern=r"^operator:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    checkpoints_topic: Annotated[str, StringConstraints(min_length=1, max_length=249)]
    start_offset: Annotated[int, Field(ge=0)]  # where the topic starts now, as the operator saw it
    from_sequence: Annotated[int, Field(ge=1)]  # the first entry the ledger may checkpoint again
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


@dataclass(frozen=True)
class RecordedAnchor:
    """One row of `ledger_anchor_log`: a checkpoint the ledger published."""

    first_sequence: int
    last_sequence: int
    last_entry_hash: str


async def recorded_anchors(connection: asyncpg.Connection) -> list[RecordedAnchor]:
    rows = await connection.fetch(
        "SELECT first_sequence, last_sequence, last_entry_hash FROM ledger_anchor_log ORDER BY id")
    return [RecordedAnchor(int(r["first_sequence"]), int(r["last_sequence"]), str(r["last_entry_hash"]))
            for r in rows]


async def recorded_through(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT coalesce(max(last_sequence), 0) FROM ledger_anchor_log"))


async def record_anchor(connection: asyncpg.Connection, checkpoint: Checkpoint) -> None:
    await connection.execute(
        "INSERT INTO ledger_anchor_log (first_sequence, last_sequence, last_entry_hash) VALUES ($1, $2, $3)",
        checkpoint.first_sequence, checkpoint.last_sequence, checkpoint.entry_hashes[-1])


# ---- what the ledger checks at start -------------------------------------------------

def startup_problems(topic: str, start_offset: int, topic_through: int, logged_through: int,
                     decision: ReanchorDecision | None) -> list[str]:
    """Why the ledger must not sign checkpoints now (empty: it may). `topic_through`: the
    last entry the topic's newest signed checkpoint covers; `logged_through`: the last the
    anchor log says was published. A decision that names exactly this situation lifts it."""
    problems = []
    if start_offset > 0:
        problems.append(f"the checkpoints topic starts at offset {start_offset}, not 0: checkpoint records were deleted")
    if topic_through < logged_through:
        problems.append(f"the ledger published checkpoints through entry {logged_through}, but the topic's newest "
                        f"signed one covers {topic_through}: checkpoints were removed")
    if problems and decision is not None and decision.checkpoints_topic == topic and (
            decision.start_offset == start_offset and decision.from_sequence == topic_through + 1):
        return []
    return problems


# ---- what `stafet ledger verify` checks ----------------------------------------------

def verify_problems(topic: str, start_offset: int, anchors: Anchors, recorded: Sequence[RecordedAnchor],
                    decision: ReanchorDecision | None) -> list[str]:
    """Every reason the anchors cannot be trusted as complete, in words for the operator."""
    problems = []
    if start_offset > 0 and not (decision is not None and decision.checkpoints_topic == topic
                                 and decision.start_offset == start_offset):
        problems.append(f"the checkpoints topic starts at offset {start_offset}, not 0: checkpoint records were deleted")
    for anchor in recorded:
        found = anchors.hashes.get(anchor.last_sequence)
        if found is None:
            problems.append(f"the checkpoint of entries {anchor.first_sequence}..{anchor.last_sequence}, which the "
                            "ledger recorded publishing, is gone from the topic")
        elif found != anchor.last_entry_hash:
            problems.append(f"the signed checkpoint of entry {anchor.last_sequence} differs from the one the ledger "
                            "recorded publishing (re-signed over a rewritten chain)")
    problems += [f"entries {low}..{high} are not anchored by any signed checkpoint, though later ones are "
                 "(checkpoints deleted, or signed by a key no longer trusted)"
                 for low, high in unanchored_ranges(anchors.hashes, anchors.through)]
    return problems


def unanchored_ranges(hashes: Mapping[int, str], through: int) -> list[tuple[int, int]]:
    """The runs of sequences in 1..through that no checkpoint covers."""
    ranges: list[tuple[int, int]] = []
    low = None
    for sequence in range(1, through + 1):
        if sequence not in hashes:
            low = sequence if low is None else low
        elif low is not None:
            ranges.append((low, sequence - 1))
            low = None
    if low is not None:
        ranges.append((low, through))
    return ranges


# ---- the auditor's export: checkpoint records kept outside the broker ------------------

class KeptCheckpoint(Frozen):
    """One checkpoint record as the topic held it (a line of the export, JSON)."""

    offset: Annotated[int, Field(ge=0)]
    timestamp_ms: int
    key: str | None
    value: str
    headers: tuple[tuple[str, str], ...]  # ASCII: the key id, base64 signature and proof

    @classmethod
    def of(cls, record: Any) -> KeptCheckpoint:
        return cls(offset=record.offset, timestamp_ms=record.timestamp,
                   key=None if record.key is None else base64.b64encode(record.key).decode(),
                   value=(record.value or b"").decode("utf-8", errors="replace"),
                   headers=tuple((name, content.decode("ascii", errors="replace"))
                                 for name, content in record.headers or ()))

    def record(self, topic: str) -> KeptRecord:
        return KeptRecord(topic=topic, offset=self.offset, timestamp=self.timestamp_ms,
                          key=None if self.key is None else base64.b64decode(self.key),
                          value=self.value.encode(), headers=[(n, c.encode()) for n, c in self.headers])

    def covers(self) -> str:
        try:
            checkpoint = Checkpoint.model_validate_json(self.value)
        except ValidationError:
            return "not a checkpoint"
        return f"entries {checkpoint.first_sequence}..{checkpoint.last_sequence}"


@dataclass(frozen=True)
class KeptRecord:
    """A kept checkpoint, shaped like a consumed record for `TrustedKeys.authenticate_record`."""

    topic: str
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def read_kept(path: Path) -> list[KeptCheckpoint]:
    """The export's lines; ValueError naming the first bad line."""
    kept = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if len(line) > KEPT_LINE_CHARS_MAX:
                raise ValueError(f"{path}:{number}: longer than {KEPT_LINE_CHARS_MAX} characters")
            try:
                kept.append(KeptCheckpoint.model_validate_json(line))
            except ValidationError as error:
                raise ValueError(f"{path}:{number}: not a kept checkpoint: {error.errors()[0]['msg']}") from None
    offsets = [k.offset for k in kept]
    if offsets != sorted(set(offsets)):
        raise ValueError(f"{path}: offsets are not increasing: the export was edited")
    return kept


def compare_kept(kept: Sequence[KeptCheckpoint], on_topic: Sequence[Any]) -> list[str]:
    """Every kept checkpoint record that the topic no longer holds as it was."""
    by_offset = {record.offset: KeptCheckpoint.of(record) for record in on_topic}
    problems = []
    for record in kept:
        now = by_offset.get(record.offset)
        if now is None:
            problems.append(f"the checkpoint record at offset {record.offset} ({record.covers()}), kept in the "
                            "export, is gone from the topic")
        elif now != record:
            problems.append(f"the checkpoint record at offset {record.offset} ({record.covers()}) differs from the "
                            "one kept in the export")
    return problems


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
