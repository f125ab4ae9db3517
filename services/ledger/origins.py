"""A forwarded record carries its signed original: finance's settlement, an investor's record.

The ledger forwards settlements (and investment records) from their input topics onto the
journal, signed with its own key, so that the journal alone orders every entry. Until now
the journal record's only proof was that forwarder's signature: whoever held the ledger's
key could write a settlement finance never sent, and every check downstream (the live
projector, `stafet ledger verify`, a rebuild) believed it.

Now the forwarder copies the original as it arrived (topic, key, bytes, finance's key id,
signature and batch proof, the broker's time) into headers of the journal record
(`origin_headers`). The input topics are not kept forever; the journal is, so the proof
lives as long as the entry. Whoever reads the journal (`authenticity.admit_journal`)
admits a forwarded record only when its original is admitted by the same rules as on
its input topic (a finance key for a settlement; the investor or a finance key for an
investment record), on the input topic of the journal's own namespace, and parses to
the same record. The forwarder's key alone can no longer make a settlement.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.domain.signing import BATCH_PROOF_HEADER, KEY_ID_HEADER, SIGNATURE_HEADER, Headers, header
from shared.platform.topics import NAMESPACE, PAYMENTS, TopicSpec, in_namespace
from shared.platform.trust import ConsumedRecord

# Header names on the journal record; values are ASCII (base64 for bytes).
ORIGIN_TOPIC = "stafet-origin-topic"
ORIGIN_KEY = "stafet-origin-key"
ORIGIN_VALUE = "stafet-origin-value"
ORIGIN_KEY_ID = "stafet-origin-key-id"
ORIGIN_SIGNATURE = "stafet-origin-signature"
ORIGIN_BATCH_PROOF = "stafet-origin-batch-proof"
ORIGIN_TIMESTAMP = "stafet-origin-timestamp"
# A settlement is a few hundred bytes; an investment record not much more. A bound keeps a
# forged header from making every reader decode megabytes.
ORIGIN_VALUE_MAX_BYTES = 64 * 1024
# The original's signature headers -> the journal record's headers that carry them.
_CARRIED = ((KEY_ID_HEADER, ORIGIN_KEY_ID), (SIGNATURE_HEADER, ORIGIN_SIGNATURE), (BATCH_PROOF_HEADER, ORIGIN_BATCH_PROOF))


@dataclass(frozen=True)
class OriginRecord:
    """The original of a forwarded record, as it arrived on its input topic: a
    `ConsumedRecord`, so it is authenticated like one (at its own time)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int  # ms, the broker's append time on the input topic

    @classmethod
    def of(cls, record: ConsumedRecord) -> OriginRecord:
        signature = tuple((name, content) for name, content in record.headers or ()
                          if name in (KEY_ID_HEADER, SIGNATURE_HEADER, BATCH_PROOF_HEADER))
        return cls(record.topic, record.key, record.value or b"", signature, int(record.timestamp))

    def as_headers(self) -> dict[str, str]:
        """For the journal record (FastStream's `publish(..., headers=...)`)."""
        found = {ORIGIN_TOPIC: self.topic, ORIGIN_VALUE: base64.b64encode(self.value).decode(),
                 ORIGIN_TIMESTAMP: str(self.timestamp)}
        if self.key is not None:
            found[ORIGIN_KEY] = base64.b64encode(self.key).decode()
        for name, origin_name in _CARRIED:
            if (content := header(self.headers, name)) is not None:
                found[origin_name] = content.decode("ascii", "replace")
        return found

    def as_row(self) -> tuple[str, bytes | None, bytes, str | None, str | None, str | None, int]:
        return (self.topic, self.key, self.value, _text(header(self.headers, KEY_ID_HEADER)),
                _text(header(self.headers, SIGNATURE_HEADER)), _text(header(self.headers, BATCH_PROOF_HEADER)),
                self.timestamp)

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> OriginRecord | None:
        if row["origin_topic"] is None:
            return None
        signature = tuple((name, str(row[column]).encode()) for name, column in (
            (KEY_ID_HEADER, "origin_key_id"), (SIGNATURE_HEADER, "origin_signature"),
            (BATCH_PROOF_HEADER, "origin_batch_proof")) if row[column] is not None)
        return cls(row["origin_topic"], None if row["origin_key"] is None else bytes(row["origin_key"]),
                   bytes(row["origin_value"]), signature, int(row["origin_timestamp_ms"]))


def origin_of(headers: Headers | None) -> OriginRecord | str:
    """The original a journal record's headers carry, or why there is none to check."""
    topic, value = header(headers, ORIGIN_TOPIC), header(headers, ORIGIN_VALUE)
    if topic is None or value is None:
        return "forwarded without its signed original (no origin headers)"
    if len(value) > ORIGIN_VALUE_MAX_BYTES * 4 // 3 + 4:
        return f"its original is larger than {ORIGIN_VALUE_MAX_BYTES} bytes"
    try:
        key = header(headers, ORIGIN_KEY)
        decoded_key = None if key is None else base64.b64decode(key, validate=True)
        decoded_value = base64.b64decode(value, validate=True)
        timestamp = int(header(headers, ORIGIN_TIMESTAMP) or b"")
        name = topic.decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return "its origin headers are malformed"
    signature = tuple((name_, content) for name_, origin_name in _CARRIED
                      if (content := header(headers, origin_name)) is not None)
    return OriginRecord(name, decoded_key, decoded_value, signature, timestamp)


def in_namespace_of(journal_topic: str, spec: TopicSpec) -> TopicSpec:
    """`spec` in the journal's namespace: a settlement forwarded onto `ns.payments.v1` must
    come from `ns.settlements.v1` (or a tenant's `ns.settlements.<segment>.v1`), not
    another installation's."""
    suffix = PAYMENTS.name.removeprefix(f"{NAMESPACE}.")
    return in_namespace(spec, journal_topic.removesuffix(f".{suffix}"))


def input_topic_of(journal_topic: str, spec: TopicSpec) -> str:
    """`spec`'s shared topic in the journal's namespace."""
    return in_namespace_of(journal_topic, spec).name


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("ascii", "replace")
