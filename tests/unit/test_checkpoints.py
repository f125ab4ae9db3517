"""Signed checkpoints: cut into bounded records, believed only from the ledger's key."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from services.ledger.checkpoints import CHECKPOINT_ENTRIES_MAX, CHECKPOINT_KEY, Checkpoint, anchors_of, checkpoints_of
from shared.domain.signing import RecordSigner
from shared.platform.settings import Settings
from shared.platform.trust import trusted_keys

TOPIC = "ns.ledger-checkpoints.v1"
TRUST = trusted_keys(Settings(stafet_env="development"))


def _hash(n: int) -> str:
    return f"{n:064x}"


def _record(checkpoint: Checkpoint, signer: str | None) -> ConsumerRecord[Any, Any]:
    value = checkpoint.model_dump_json().encode()
    headers = tuple(RecordSigner.development(signer).headers(TOPIC, CHECKPOINT_KEY, value)) if signer else ()
    return ConsumerRecord(topic=TOPIC, partition=0, offset=0, timestamp=0, timestamp_type=0, key=CHECKPOINT_KEY,
                          value=value, checksum=None, serialized_key_size=0, serialized_value_size=0,
                          headers=headers)


def test_entries_are_cut_into_checkpoints_of_bounded_size_in_order() -> None:
    rows = [(n, _hash(n)) for n in range(5, 5 + CHECKPOINT_ENTRIES_MAX * 2 + 1)]
    checkpoints = checkpoints_of(rows)
    assert [len(c.entry_hashes) for c in checkpoints] == [CHECKPOINT_ENTRIES_MAX, CHECKPOINT_ENTRIES_MAX, 1]
    assert [c.first_sequence for c in checkpoints] == [5, 5 + CHECKPOINT_ENTRIES_MAX, 5 + 2 * CHECKPOINT_ENTRIES_MAX]
    assert checkpoints[-1].last_sequence == rows[-1][0]


def test_only_checkpoints_the_ledger_signed_are_believed_and_disagreements_are_found() -> None:
    genuine = Checkpoint(first_sequence=1, entry_hashes=(_hash(1), _hash(2)))
    forged = Checkpoint(first_sequence=2, entry_hashes=(_hash(99), _hash(3)))
    anchors = anchors_of([_record(genuine, "service:ledger"), _record(forged, None),
                          _record(forged, "service:verifier")], TRUST)
    assert dict(anchors.hashes) == {1: _hash(1), 2: _hash(2)}
    assert anchors.refused == 2
    assert anchors.conflicts == ()
    disagreeing = anchors_of([_record(genuine, "service:ledger"), _record(forged, "service:ledger")], TRUST)
    assert disagreeing.conflicts == (2,)
    assert disagreeing.through == 3
