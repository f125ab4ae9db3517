"""Batch signatures (shared/domain/signing.py): one Ed25519 signature over a Merkle root, each
record with its own proof. Every record must verify alone, in any order, and nothing
about it may change unnoticed; the receiver's cache of verified roots must never let an
unverified record through."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.principals import Principal, Role, SignatureProblem, Unauthenticated
from shared.domain.signing import (
    BATCH_PROOF_HEADER,
    BATCH_TREE_MAX,
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    RecordSigner,
    batch_message,
    encode_proof,
    leaf_hash,
)
from shared.platform import trust as trust_module
from shared.platform.trust import TrustedKeys

SIGNER = RecordSigner("service:ingest", Ed25519PrivateKey.generate())
INGEST = Principal(Role.SERVICE, "ingest")
Record = tuple[str, bytes | None, bytes]
Headers = list[tuple[str, bytes]]


def trust() -> TrustedKeys:
    """A receiver with an empty cache of verified roots."""
    return TrustedKeys([(INGEST, SIGNER.key.public_key())])


def records_of(count: int) -> list[Record]:
    # Keys of every kind: none, empty and ordinary; two topics.
    return [(f"ns.topic-{n % 2}.v1", None if n % 5 == 0 else b"" if n % 7 == 0 else f"k{n}".encode(),
             f'{{"n":{n}}}'.encode()) for n in range(count)]


def get(headers: Headers, name: str) -> bytes:
    return dict(headers)[name]


def replaced(headers: Headers, name: str, content: bytes) -> Headers:
    return [(n, content if n == name else c) for n, c in headers]


def proof_parts(headers: Headers) -> tuple[int, int, bytes]:
    raw = base64.b64decode(get(headers, BATCH_PROOF_HEADER))
    return int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:8], "big"), raw[8:]


def refused(receiver: TrustedKeys, record: Record, headers: Headers) -> bool:
    found = receiver.authenticate(*record, headers)
    return isinstance(found, Unauthenticated) and found.problem == SignatureProblem.BAD_SIGNATURE


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2 * BATCH_TREE_MAX + 3), st.randoms(use_true_random=False))
def test_every_record_of_a_batch_verifies_alone_in_any_order(count: int, shuffler: object) -> None:
    records = records_of(count)
    signed = list(zip(records, SIGNER.batch_headers(records), strict=True))
    shuffler.shuffle(signed)  # type: ignore[attr-defined]
    receiver = trust()
    assert all(receiver.authenticate(*record, headers) == INGEST for record, headers in signed)
    # Each alone, with nothing verified before it.
    record, headers = signed[-1]
    assert trust().authenticate(*record, headers) == INGEST
    # One signature per tree, no tree bigger than the limit, no path longer than its depth.
    signatures = {get(h, SIGNATURE_HEADER) for _, h in signed}
    assert len(signatures) == -(-count // BATCH_TREE_MAX)
    for _, h in signed:
        if count > 1:
            _, size, path = proof_parts(h)
            assert size <= BATCH_TREE_MAX
            assert len(path) <= 32 * 8


def test_a_lone_record_gets_a_single_signature_and_single_signatures_still_verify() -> None:
    [headers] = SIGNER.batch_headers(records_of(1))
    assert BATCH_PROOF_HEADER not in dict(headers)
    assert headers == SIGNER.headers(*records_of(1)[0])
    assert trust().authenticate(*records_of(1)[0], headers) == INGEST


def mutate(data: bytes | None, at: int) -> bytes:
    if not data:
        return b"x"
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.integers(0, 10_000), st.integers(0, 10_000),
       st.sampled_from(["topic", "key", "value", "signature", "proof", "index", "size"]), st.booleans())
def test_changing_any_byte_of_a_batch_signed_record_is_refused(count: int, which: int, at: int, part: str,
                                                               warm: bool) -> None:
    records = records_of(count)
    all_headers = SIGNER.batch_headers(records)
    receiver = trust()
    if warm:  # the batch's root already verified and cached: no difference
        assert all(receiver.authenticate(*r, h) == INGEST for r, h in zip(records, all_headers, strict=True))
    (topic, key, value), headers = records[which % count], all_headers[which % count]
    index, size, path = proof_parts(headers)
    if part == "topic":
        topic = mutate(topic.encode(), at).decode("latin-1")
    elif part == "key":
        key = mutate(key, at) if key is not None else b""
    elif part == "value":
        value = mutate(value, at)
    elif part == "signature":
        signature = base64.b64decode(get(headers, SIGNATURE_HEADER))
        headers = replaced(headers, SIGNATURE_HEADER, base64.b64encode(mutate(signature, at)))
    elif part == "proof":
        raw = base64.b64decode(get(headers, BATCH_PROOF_HEADER))
        headers = replaced(headers, BATCH_PROOF_HEADER, base64.b64encode(mutate(raw, at)))
    elif part == "index":
        headers = replaced(headers, BATCH_PROOF_HEADER, encode_proof((index + 1 + at % (size - 1)) % size, size,
                                                                     [path[i:i + 32] for i in range(0, len(path), 32)]))
    else:
        other = (size + 1 + at % 300) % 301 or 1
        headers = replaced(headers, BATCH_PROOF_HEADER, encode_proof(index, other,
                                                                     [path[i:i + 32] for i in range(0, len(path), 32)]))
    assert refused(receiver, (topic, key, value), headers)


def test_a_proof_moved_to_another_record_of_the_batch_is_refused() -> None:
    records = records_of(9)
    headers = SIGNER.batch_headers(records)
    receiver = trust()
    assert receiver.authenticate(*records[0], headers[0]) == INGEST
    for n in range(1, 9):
        assert refused(receiver, records[n], headers[0])
        assert refused(receiver, records[0], headers[n])


def test_a_path_longer_or_shorter_than_the_trees_shape_is_refused() -> None:
    records = records_of(5)
    headers = SIGNER.batch_headers(records)
    receiver = trust()
    assert receiver.authenticate(*records[4], headers[4]) == INGEST  # carried up twice: a path of one hash
    index, size, path = proof_parts(headers[4])
    assert len(path) == 32
    for wrong in (b"", path + path, path[:16]):
        raw = index.to_bytes(4, "big") + size.to_bytes(4, "big") + wrong
        assert refused(receiver, records[4], replaced(headers[4], BATCH_PROOF_HEADER, base64.b64encode(raw)))
    for garbled in (b"not base64!", b"", base64.b64encode(b"\x00" * 7),
                    encode_proof(3, 2, []), encode_proof(0, 0, []), encode_proof(0, BATCH_TREE_MAX + 1, [])):
        assert refused(receiver, records[4], replaced(headers[4], BATCH_PROOF_HEADER, garbled))


def test_records_signed_by_an_untrusted_key_are_refused_even_under_a_trusted_key_id() -> None:
    records = records_of(4)
    stranger = RecordSigner("service:ingest", Ed25519PrivateKey.generate())
    forged = stranger.batch_headers(records)
    receiver = trust()
    unknown = receiver.authenticate(*records[0], forged[0])
    assert isinstance(unknown, Unauthenticated)
    assert unknown.problem == SignatureProblem.UNKNOWN_SIGNER
    # The stranger's signature and proofs under the trusted key's id.
    for record, headers in zip(records, forged, strict=True):
        assert refused(receiver, record, replaced(headers, KEY_ID_HEADER, SIGNER.key_id.encode()))


def test_the_cache_of_verified_roots_cannot_be_poisoned() -> None:
    records = records_of(8)
    headers = SIGNER.batch_headers(records)
    receiver = trust()
    assert all(receiver.authenticate(*r, h) == INGEST for r, h in zip(records, headers, strict=True))
    # A forged record reusing the verified batch's signature, index and size with its own
    # value: its path leads to another root, which nobody signed.
    forged = ("ns.topic-0.v1", b"k0", b'{"n":"forged"}')
    assert refused(receiver, forged, headers[0])
    # ... and with a path made up to lead somewhere: still another root.
    index, size, path = proof_parts(headers[0])
    made_up = encode_proof(index, size, [leaf_hash(*forged)] * (len(path) // 32))
    assert refused(receiver, forged, replaced(headers[0], BATCH_PROOF_HEADER, made_up))
    # The verified root's signature presented as a single-record signature, or over
    # the root of a forged one-record tree: labels differ, nothing verifies.
    assert refused(receiver, forged, [(n, c) for n, c in headers[0] if n != BATCH_PROOF_HEADER])
    assert refused(receiver, forged, replaced(headers[0], BATCH_PROOF_HEADER, encode_proof(0, 1, [])))
    # The true records still verify afterwards.
    assert receiver.authenticate(*records[3], headers[3]) == INGEST


def test_a_single_signature_does_not_pass_as_a_batch_signature() -> None:
    record = records_of(1)[0]
    single = SIGNER.headers(*record)
    assert refused(trust(), record, [*single, (BATCH_PROOF_HEADER, encode_proof(0, 1, []))])
    # A batch signature is over batch_message(root, size), never over the record itself.
    tree_of_one = base64.b64encode(SIGNER.key.sign(batch_message(leaf_hash(*record), 1)))
    assert refused(trust(), record, replaced(single, SIGNATURE_HEADER, tree_of_one))
    assert trust().authenticate(*record, [*replaced(single, SIGNATURE_HEADER, tree_of_one),
                                          (BATCH_PROOF_HEADER, encode_proof(0, 1, []))]) == INGEST


def test_the_cache_is_bounded_and_a_forgotten_root_is_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust_module, "VERIFIED_ROOTS_MAX", 3)
    receiver = trust()
    batches = [[("ns.t.v1", b"k", f"{b}-{n}".encode()) for n in range(2)] for b in range(5)]
    signed = [SIGNER.batch_headers(batch) for batch in batches]
    for batch, headers in zip(batches, signed, strict=True):
        assert receiver.authenticate(*batch[0], headers[0]) == INGEST
    assert len(receiver._verified_roots) == 3  # the bound is the point
    assert receiver.authenticate(*batches[0][1], signed[0][1]) == INGEST
    assert refused(receiver, batches[0][1], signed[1][1])
