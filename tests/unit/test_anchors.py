"""Anchors an administrator cannot remove: what the ledger and `stafet ledger verify` conclude
from the checkpoints topic, the anchor log and the auditor's export (services/ledger/anchors.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger.anchors import (
    KeptCheckpoint,
    ReanchorDecision,
    RecordedAnchor,
    compare_kept,
    read_kept,
    startup_problems,
    unanchored_ranges,
    verify_problems,
)
from services.ledger.checkpoints import CHECKPOINT_KEY, Anchors, Checkpoint, anchors_of
from shared.domain.key_lists import DocumentError, sign_document, verified_document
from shared.domain.signing import RecordSigner, key_id_of
from shared.platform.settings import Settings
from shared.platform.trust import trusted_keys

TOPIC = "ns.ledger-checkpoints.v1"
TRUST = trusted_keys(Settings(stafet_env="development"))
LEDGER = RecordSigner.development("service:ledger")


def _hash(n: int) -> str:
    return f"{n:064x}"


def _record(offset: int, first: int, last: int) -> ConsumerRecord[Any, Any]:
    value = Checkpoint(first_sequence=first, entry_hashes=tuple(_hash(n) for n in range(first, last + 1))
                       ).model_dump_json().encode()
    return ConsumerRecord(topic=TOPIC, partition=0, offset=offset, timestamp=1_700_000_000_000, timestamp_type=1,
                          key=CHECKPOINT_KEY, value=value, checksum=None, serialized_key_size=6,
                          serialized_value_size=len(value),
                          headers=tuple(LEDGER.headers(TOPIC, CHECKPOINT_KEY, value)))


def _decision(**changes: object) -> ReanchorDecision:
    fields: dict[str, object] = {"decided_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "decided_by": "operator:alice",
                                 "checkpoints_topic": TOPIC, "start_offset": 3, "from_sequence": 1,
                                 "reason": "checked against the auditor's export"}
    return ReanchorDecision.model_validate({**fields, **changes})


def test_the_ledger_refuses_to_checkpoint_when_its_anchors_were_removed() -> None:
    assert startup_problems(TOPIC, 0, 12, 12, None) == []
    assert startup_problems(TOPIC, 0, 12, 9, None) == []  # crashed after publishing, before logging
    cut = startup_problems(TOPIC, 3, 0, 12, None)
    assert any("starts at offset 3, not 0" in p for p in cut)
    assert any("through entry 12" in p and "covers 0" in p for p in cut)
    emptied = startup_problems(TOPIC, 0, 0, 12, None)  # topic deleted and made again
    assert emptied
    assert all("offset" not in p for p in emptied)


def test_only_a_decision_naming_exactly_this_situation_lets_the_ledger_sign_again() -> None:
    assert startup_problems(TOPIC, 3, 0, 12, _decision()) == []
    for wrong in (_decision(start_offset=2), _decision(from_sequence=5), _decision(checkpoints_topic="other")):
        assert startup_problems(TOPIC, 3, 0, 12, wrong)


def test_a_decision_is_believed_only_with_a_roots_signature() -> None:
    root = Ed25519PrivateKey.generate()
    signed = sign_document(_decision(), root)
    roots = {key_id_of(root.public_key()): root.public_key()}
    assert verified_document(signed, ReanchorDecision, roots) == _decision()
    widened = {**signed, "from_sequence": 1, "start_offset": 4}
    with pytest.raises(DocumentError, match="does not verify"):
        verified_document(widened, ReanchorDecision, roots)
    with pytest.raises(DocumentError, match="not a trust root"):
        verified_document(sign_document(_decision(), Ed25519PrivateKey.generate()), ReanchorDecision, roots)


def test_verify_names_a_cut_topic_a_gone_checkpoint_and_unanchored_older_entries() -> None:
    whole = [_record(0, 1, 4), _record(1, 5, 8), _record(2, 9, 12)]
    recorded = [RecordedAnchor(1, 4, _hash(4)), RecordedAnchor(5, 8, _hash(8)), RecordedAnchor(9, 12, _hash(12))]
    assert verify_problems(TOPIC, 0, anchors_of(whole, TRUST), recorded, None) == []
    middle_gone = anchors_of([whole[0], whole[2]], TRUST)
    problems = verify_problems(TOPIC, 0, middle_gone, recorded, None)
    assert problems == [
        "the checkpoint of entries 5..8, which the ledger recorded publishing, is gone from the topic",
        "entries 5..8 are not anchored by any signed checkpoint, though later ones are (checkpoints deleted, "
        "or signed by a key no longer trusted)"]
    start_cut = verify_problems(TOPIC, 1, anchors_of(whole[1:], TRUST), [], None)
    assert start_cut[0] == "the checkpoints topic starts at offset 1, not 0: checkpoint records were deleted"
    assert "entries 1..4 are not anchored" in start_cut[1]
    resigned = Anchors({**anchors_of(whole, TRUST).hashes, 8: _hash(99)}, 0, ())
    assert "differs from the one the ledger recorded" in verify_problems(TOPIC, 0, resigned, recorded, None)[0]
    # A signed decision excuses the topic's start, never a hash that differs.
    assert verify_problems(TOPIC, 3, anchors_of(whole, TRUST), recorded, _decision()) == []


def test_unanchored_ranges_are_the_runs_no_checkpoint_covers() -> None:
    assert unanchored_ranges({n: "h" for n in (3, 4, 7)}, 7) == [(1, 2), (5, 6)]
    assert unanchored_ranges({}, 0) == []
    assert unanchored_ranges({1: "h"}, 1) == []


def test_the_export_finds_a_kept_record_gone_or_changed_and_refuses_an_edited_file(tmp_path: Path) -> None:
    on_topic = [_record(0, 1, 4), _record(1, 5, 8)]
    kept = [KeptCheckpoint.of(r) for r in on_topic]
    assert compare_kept(kept, on_topic) == []
    assert compare_kept(kept, on_topic[:1]) == [
        "the checkpoint record at offset 1 (entries 5..8), kept in the export, is gone from the topic"]
    replaced = _record(1, 5, 9)
    assert "differs from the one kept" in compare_kept(kept, [on_topic[0], replaced])[0]
    # A kept record is still the ledger's signed checkpoint when read back.
    assert anchors_of([k.record(TOPIC) for k in kept], TRUST).through == 8
    path = tmp_path / "kept.jsonl"
    path.write_text("".join(k.model_dump_json() + "\n" for k in kept))
    assert read_kept(path) == kept
    path.write_text("".join(k.model_dump_json() + "\n" for k in reversed(kept)))
    with pytest.raises(ValueError, match="not increasing"):
        read_kept(path)
    path.write_text(yaml.safe_dump({"not": "json"}))
    with pytest.raises(ValueError, match=r"kept\.jsonl:1"):
        read_kept(path)
