"""Signed records: who produced a record, proved without trusting the broker.

A Kafka consumer cannot see who produced a record, and broker ACLs are one wall that a
misconfiguration or a stolen credential takes down. So every record that creates,
changes or settles money carries an Ed25519 signature in two Kafka headers:

- `stafet-key-id`: which key signed (`ed25519:` + the first 16 hex digits of SHA-256 of
  the raw public key, so a key id can be computed from the key alone and never
  disagrees with it);
- `stafet-signature`: base64 of the signature over `signed_message(topic, key, value)`.

The signed message covers the topic, the record key and the value, each
length-prefixed, after a domain label: a record signed for one topic cannot be replayed
onto another, nor under another key. Headers other than these (and the batch proof
below) are not covered and not trusted. Receivers look the key id up in their trusted
keys (`shared/platform/trust.py`).

Batch signatures. One Ed25519 operation costs more CPU than everything else a service
does with a record (about 30 us to sign, 90 us to verify, against about 25 us for the
raw Kafka passthrough of a record), so a producer that sends many records at once signs
them once: `RecordSigner.batch_headers` builds a Merkle tree over the records and signs
its root, and every record carries the signature and its own audit path, so every
record stays verifiable on its own (no buffering or ordering between records on the
receiving side; any consumer batch boundary, a rebuild or a replay works unchanged):

- leaf = SHA-256(0x00 || signed_message(topic, key, value)), the same domain-labelled,
  length-framed message as a single signature (so the topic and key stay bound);
- node = SHA-256(0x01 || left || right); the last node of a level with an odd number of
  nodes is carried up unchanged; at most `BATCH_TREE_MAX` (256) leaves per tree, so a
  path holds at most 8 hashes (a bigger batch is split into trees of near-equal size);
- `stafet-signature` is then Ed25519 over
  frame("stafet-signed-batch-v1") || frame(root) || size (4 bytes, big-endian), a label
  of its own, so a batch signature is never a record signature nor the reverse;
- `stafet-batch-proof` is base64 of index (4 bytes, big-endian) || size (4 bytes) || the
  sibling hashes from the leaf up (32 bytes each, exactly as many as the tree's shape
  gives that index: none where the node is carried up).

A record without `stafet-batch-proof` carries a single-record signature (as a record
sent alone does: a clock tick, a checkpoint, `stafet settle` of one line, one contract
version, a tree of one; several sent at once are a batch).
A receiver recomputes the root from the record and its path (a few SHA-256) and checks
the signature over (root, size) once per tree (`shared/platform/trust.py` keeps the verified
ones). A malformed proof, an index or size that does not fit, a wrong path or a
signature that does not verify for the root all leave a root nobody signed: the record
is refused as a bad signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ID_HEADER = "stafet-key-id"
SIGNATURE_HEADER = "stafet-signature"
BATCH_PROOF_HEADER = "stafet-batch-proof"
_DOMAIN = b"stafet-signed-record-v1"
_BATCH_DOMAIN = b"stafet-signed-batch-v1"
_LEAF, _NODE = b"\x00", b"\x01"  # so that no leaf hash can pass for an inner node's
BATCH_TREE_MAX = 256  # leaves per signed tree: a proof holds at most 8 hashes
_HASH_SIZE = 32
_NO_KEY = 0xFFFFFFFF  # a record without a key is not the same as one with an empty key
_DEVELOPMENT_LABEL = b"stafet-development-signing-key-not-for-production:"

Headers = Sequence[tuple[str, bytes]]


def _framed(part: bytes | None) -> bytes:
    if part is None:
        return _NO_KEY.to_bytes(4, "big")
    return len(part).to_bytes(4, "big") + part


def signed_message(topic: str, key: bytes | None, value: bytes) -> bytes:
    return _DOMAIN_FRAMED + _framed(topic.encode()) + _framed(key) + _framed(value)


_DOMAIN_FRAMED = _framed(_DOMAIN)


def batch_message(root: bytes, size: int) -> bytes:
    """What a batch signature signs: the tree's root and its number of leaves."""
    return _framed(_BATCH_DOMAIN) + _framed(root) + size.to_bytes(4, "big")


def leaf_hash(topic: str, key: bytes | None, value: bytes) -> bytes:
    return hashlib.sha256(_LEAF + signed_message(topic, key, value)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree over `leaves`, the leaves first and the root last."""
    levels = [leaves]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [_node(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])  # the odd last node is carried up unchanged
        levels.append(above)
    return levels


def _path(levels: list[list[bytes]], index: int) -> list[bytes]:
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return path


def encode_proof(index: int, size: int, path: Sequence[bytes]) -> bytes:
    return base64.b64encode(index.to_bytes(4, "big") + size.to_bytes(4, "big") + b"".join(path))


def decoded(text: bytes) -> bytes | None:
    """Strict base64 (no stray characters, correct padding), or None."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def proven_root(topic: str, key: bytes | None, value: bytes, proof: bytes) -> tuple[bytes, int] | None:
    """The root (and tree size) that a record and its `stafet-batch-proof` lead to, or
    None when the proof is malformed or its index, size and path do not fit together.
    Whether anyone signed that root is for the caller to check."""
    raw = decoded(proof)
    if raw is None or len(raw) < 8:
        return None
    index, size = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:8], "big")
    if not 0 <= index < size <= BATCH_TREE_MAX:
        return None
    # The tree's shape fixes which levels have a sibling for this index: exactly that
    # many hashes, no more and no fewer.
    siblings, at, width = [], index, size
    while width > 1:
        siblings.append(at % 2 == 1 or at + 1 < width)
        at, width = at // 2, (width + 1) // 2
    if len(raw) != 8 + _HASH_SIZE * sum(siblings):
        return None
    sha256 = hashlib.sha256
    node, at, offset = sha256(_LEAF + signed_message(topic, key, value)).digest(), index, 8
    for has_sibling in siblings:
        if has_sibling:
            sibling = raw[offset:offset + _HASH_SIZE]
            node = sha256(_NODE + sibling + node if at % 2 else _NODE + node + sibling).digest()
            offset += _HASH_SIZE
        at //= 2
    return node, size


def _trees(count: int) -> list[range]:
    """Split `count` records into trees of at most BATCH_TREE_MAX, of near-equal size."""
    trees = -(-count // BATCH_TREE_MAX)
    bounds = [count * n // trees for n in range(trees + 1)] if trees else [0]
    return [range(low, high) for low, high in itertools.pairwise(bounds)]


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(key: Ed25519PublicKey) -> str:
    return "ed25519:" + hashlib.sha256(public_bytes(key)).hexdigest()[:16]


def development_key(principal: str) -> Ed25519PrivateKey:
    """A well-known key per principal (`service:ledger`, `institution:alsskolen`, ...), so
    that `make demo` runs with no secrets. Production refuses every one of them."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(_DEVELOPMENT_LABEL + principal.encode()).digest())


def is_development_key(key: Ed25519PublicKey, principal: str) -> bool:
    return public_bytes(key) == public_bytes(development_key(principal).public_key())


def private_hex(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption()).hex()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """A 32-byte Ed25519 private key as hex in a file (`stafet keys new` writes one)."""
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: not an Ed25519 private key (64 hex digits)") from None


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.strip()))
    except ValueError:
        raise ValueError(f"not an Ed25519 public key (64 hex digits): {text[:80]!r}") from None


class RecordSigner:
    """Signs records for one principal with one key; `headers` go with the record."""

    def __init__(self, principal: str, key: Ed25519PrivateKey) -> None:
        self.principal = principal
        self.key = key
        self.key_id = key_id_of(key.public_key())

    @classmethod
    def development(cls, principal: str) -> RecordSigner:
        return cls(principal, development_key(principal))

    def signature(self, topic: str, key: bytes | None, value: bytes) -> bytes:
        return self.key.sign(signed_message(topic, key, value))

    def headers(self, topic: str, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
        """For aiokafka's `send(..., headers=...)`."""
        return [(KEY_ID_HEADER, self.key_id.encode()),
                (SIGNATURE_HEADER, base64.b64encode(self.signature(topic, key, value)))]

    def header_dict(self, topic: str, key: bytes | None, value: bytes) -> dict[str, str]:
        """For FastStream's `publish(..., headers=...)`."""
        return {name: content.decode() for name, content in self.headers(topic, key, value)}

    def batch_headers(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> list[list[tuple[str, bytes]]]:
        """Headers for each of `records` (topic, key, value), in the same order: one
        signature per tree of up to BATCH_TREE_MAX records, each record with its own
        proof, so each verifies on its own. A tree of one record gets a single-record
        signature (the same cost, and the format one-off records have)."""
        key_id = self.key_id.encode()
        signed: list[list[tuple[str, bytes]]] = []
        for tree in _trees(len(records)):
            if len(tree) == 1:
                signed.append(self.headers(*records[tree[0]]))
                continue
            levels = _levels([leaf_hash(*records[n]) for n in tree])
            signature = base64.b64encode(self.key.sign(batch_message(levels[-1][0], len(tree))))
            for index in range(len(tree)):
                signed.append([(KEY_ID_HEADER, key_id), (SIGNATURE_HEADER, signature),
                               (BATCH_PROOF_HEADER, encode_proof(index, len(tree), _path(levels, index)))])
        return signed

    def batch_header_dicts(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> list[dict[str, str]]:
        """`batch_headers` for FastStream's `publish(..., headers=...)`."""
        return [{name: content.decode() for name, content in headers} for headers in self.batch_headers(records)]


def header(headers: Headers | None, name: str) -> bytes | None:
    for found, content in headers or ():
        if found == name:
            return content
    return None
