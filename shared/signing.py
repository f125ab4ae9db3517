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
onto another, nor under another key. Headers other than these two are not covered and
not trusted. Receivers look the key id up in their trusted keys (`shared/trust.py`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ID_HEADER = "stafet-key-id"
SIGNATURE_HEADER = "stafet-signature"
_DOMAIN = b"stafet-signed-record-v1"
_NO_KEY = 0xFFFFFFFF  # a record without a key is not the same as one with an empty key
_DEVELOPMENT_LABEL = b"stafet-development-signing-key-not-for-production:"

Headers = Sequence[tuple[str, bytes]]


def _framed(part: bytes | None) -> bytes:
    if part is None:
        return _NO_KEY.to_bytes(4, "big")
    return len(part).to_bytes(4, "big") + part


def signed_message(topic: str, key: bytes | None, value: bytes) -> bytes:
    return _framed(_DOMAIN) + _framed(topic.encode()) + _framed(key) + _framed(value)


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


def header(headers: Headers | None, name: str) -> bytes | None:
    for found, content in headers or ():
        if found == name:
            return content
    return None
