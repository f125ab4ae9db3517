"""Every entry carries its proof: the signed journal record it was derived from.

The ledger signs checkpoints over whatever rows its database holds, so a row inserted
with the ledger's database login (a payment with a correctly recomputed chain hash) used
to be signed, verified and paid. Now each entry is stored with the journal record it was
derived from, as it arrived: bytes, key id, signature and batch proof
(`ledger_entry_sources`). Whoever checks the ledger (`stafet ledger verify`, and the
ledger itself before it signs a checkpoint) re-derives every entry:

- the source record is on the journal topic and verifies for the principal entitled to
  it (`authenticity.admit_journal`: instructions from `service:verifier`, settlements and
  investment records from this service's forwarder carrying their original, which must
  verify for finance or the investor: services/ledger/origins.py), judged at its own time;
- the posting rules turn it into exactly this entry (`entry_for`, `settlement_entry`;
  same content hash, so the same amounts, accounts, parties and lines);
- a settlement's instruction is the one the payment's own entry holds.

A row written with a database login alone has no source a trusted key signed, and no
login can make one: it is named (`unproven_entry`). What it does not cover: an investment
entry's context (the book's state it was decided on) is taken from the row; its record is
checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.ledger.audit import instruction_from_row
from services.ledger.authenticity import Refused, admit_journal
from services.ledger.investment_store import entry_of_row
from services.ledger.origins import OriginRecord, origin_of
from shared.domain.events import PaymentInstruction, Settlement
from shared.domain.ledger.investments import InvestmentEntry
from shared.domain.ledger.postings import Entry, entry_for, settlement_entry
from shared.domain.signing import BATCH_PROOF_HEADER, KEY_ID_HEADER, SIGNATURE_HEADER, header
from shared.domain.tenancy import Tenancy
from shared.platform.trust import ConsumedRecord, TrustedKeys

UNPROVEN_ENTRY = "unproven_entry"
SETTLEMENT_KINDS = ("settled", "failed", "returned")
_INSERT = """
INSERT INTO ledger_entry_sources (sequence, topic, record_key, record_value, key_id, signature, batch_proof,
    record_timestamp_ms, origin_topic, origin_key, origin_value, origin_key_id, origin_signature, origin_batch_proof,
    origin_timestamp_ms)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::text[], $7::text[],
    $8::bigint[], $9::text[], $10::bytea[], $11::bytea[], $12::text[], $13::text[], $14::text[], $15::bigint[])
"""

@dataclass(frozen=True)
class SourceRecord:
    """A journal record as it arrived, with its signature: enough to verify it again."""

    topic: str
    key: bytes | None
    value: bytes
    key_id: str
    signature: str
    batch_proof: str | None
    timestamp: int  # ms, the broker's append time
    # A forwarded settlement's or investment record's original, as signed by whoever
    # stated it (services/ledger/origins.py); none on an instruction.
    origin: OriginRecord | None = None

    @classmethod
    def of(cls, record: ConsumedRecord) -> SourceRecord | None:
        key_id, signature = header(record.headers, KEY_ID_HEADER), header(record.headers, SIGNATURE_HEADER)
        if key_id is None or signature is None:
            return None
        proof = header(record.headers, BATCH_PROOF_HEADER)
        origin = origin_of(record.headers)
        return cls(record.topic, record.key, record.value or b"", key_id.decode("ascii", "replace"),
                   signature.decode("ascii", "replace"), None if proof is None else proof.decode("ascii", "replace"),
                   record.timestamp, origin if isinstance(origin, OriginRecord) else None)

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> SourceRecord:
        return cls(row["topic"], None if row["record_key"] is None else bytes(row["record_key"]),
                   bytes(row["record_value"]), row["key_id"], row["signature"], row["batch_proof"],
                   int(row["record_timestamp_ms"]), OriginRecord.of_row(row))

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        found = [(KEY_ID_HEADER, self.key_id.encode()), (SIGNATURE_HEADER, self.signature.encode())]
        found += [(BATCH_PROOF_HEADER, self.batch_proof.encode())] if self.batch_proof is not None else []
        return found + ([(name, value.encode()) for name, value in self.origin.as_headers().items()]
                        if self.origin is not None else [])


def source_object(entry: Entry | InvestmentEntry) -> object:
    """The parsed journal record an entry was planned from (the same object)."""
    if isinstance(entry, InvestmentEntry):
        return entry.record
    return entry.settlement if entry.settlement is not None else entry.instruction


async def insert_sources(connection: asyncpg.Connection, sources: Sequence[tuple[int, SourceRecord | None]]) -> None:
    """Store each entry's source next to it; an entry without one (never, from the
    projector: it believes only signed records) is left without, and verify names it."""
    rows = [(sequence, s.topic, s.key, s.value, s.key_id, s.signature, s.batch_proof, s.timestamp,
             *(s.origin.as_row() if s.origin is not None else (None,) * 7))
            for sequence, s in sources if s is not None]
    if rows:
        await connection.execute(_INSERT, *(list(column) for column in zip(*rows, strict=True)))


async def sources_between(connection: asyncpg.Connection, after: int, through: int) -> dict[int, SourceRecord]:
    rows = await connection.fetch("SELECT * FROM ledger_entry_sources WHERE sequence > $1 AND sequence <= $2",
                                  after, through)
    return {int(r["sequence"]): SourceRecord.of_row(r) for r in rows}


async def instructions_of(connection: asyncpg.Connection, payment_ids: Sequence[str]) -> dict[str, str]:
    """Payment id -> the content hash of its instruction's entry (what a settlement settles)."""
    rows = await connection.fetch(
        "SELECT payment_id, content_hash FROM ledger_entries WHERE kind IN ('payment', 'clawback')"
        " AND payment_id = ANY($1::text[])", list(payment_ids))
    return {str(r["payment_id"]): str(r["content_hash"]) for r in rows}


def derivation_problem(row: Mapping[str, Any], source: SourceRecord | None, trust: TrustedKeys, journal_topic: str,
                       instruction_hashes: Mapping[str, str], tenancy: Tenancy | None = None) -> str:
    """Why the entry in `row` is not derived from a signed record (empty: it is)."""
    if source is None:
        return f"{UNPROVEN_ENTRY}: no signed source record (a row written with a database login?)"
    if source.topic != journal_topic:
        return f"{UNPROVEN_ENTRY}: its source record was signed for {source.topic[:80]!r}, not the journal"
    admitted = admit_journal(source, trust, tenancy)
    if isinstance(admitted, Refused):
        return f"{UNPROVEN_ENTRY}: its source record is refused ({admitted.reason}: {admitted.message})"
    try:
        expected = _derived(row, admitted, instruction_hashes)
    except ValueError as error:
        return f"{UNPROVEN_ENTRY}: {error}"
    if expected.content_hash() != row["content_hash"]:
        return f"{UNPROVEN_ENTRY}: differs from what its signed source record posts (amounts, accounts or parties)"
    return ""


def _derived(row: Mapping[str, Any], admitted: object, instruction_hashes: Mapping[str, str]) -> Entry | InvestmentEntry:
    if isinstance(admitted, PaymentInstruction):
        if row["kind"] not in ("payment", "clawback"):
            raise ValueError(f"a {row['kind']} entry whose source is an instruction")
        return entry_for(admitted)
    if isinstance(admitted, Settlement):
        if row["kind"] not in SETTLEMENT_KINDS:
            raise ValueError(f"a {row['kind']} entry whose source is a settlement")
        instruction = instruction_from_row(row)  # type: ignore[arg-type]
        if instruction_hashes.get(admitted.payment_id) != entry_for(instruction).content_hash():
            raise ValueError(f"settles an instruction that is not payment {admitted.payment_id}'s entry")
        # `settlement:<payment id>` is the first; `settlement:<payment id>:<n>` the n-th.
        entry_id = str(row["entry_id"])
        number = int(entry_id.rsplit(":", 1)[1]) if entry_id.count(":") == 2 else 1
        return settlement_entry(instruction, admitted, number)
    entry = entry_of_row(row)  # type: ignore[arg-type]
    if entry.record != admitted:
        raise ValueError("its investment record differs from the signed one")
    return entry


async def unproven_entries(connection: asyncpg.Connection, rows: Sequence[Mapping[str, Any]], trust: TrustedKeys,
                           journal_topic: str, tenancy: Tenancy | None = None) -> list[tuple[int, str]]:
    """(sequence, problem) for every entry of `rows` (consecutive, in order) that is not
    derived from a signed record (with tenants: one the tenant rule admits, as the journal does)."""
    if not rows:
        return []
    sources = await sources_between(connection, int(rows[0]["sequence"]) - 1, int(rows[-1]["sequence"]))
    settled = sorted({str(r["payment_id"]) for r in rows if r["kind"] in SETTLEMENT_KINDS})
    hashes = await instructions_of(connection, settled)
    found = []
    for row in rows:
        problem = derivation_problem(row, sources.get(int(row["sequence"])), trust, journal_topic, hashes, tenancy)
        if problem:
            found.append((int(row["sequence"]), problem))
    return found
