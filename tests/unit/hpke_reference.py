"""RFC 9180 base mode for one suite, written out from its primitives, for tests only.

DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, deterministic given the
ephemeral key, so that it can be checked byte for byte against the RFC's published
test vector and then used to check that `cryptography`'s HPKE (what `shared/domain/sealing.py`
uses) speaks the same suite. It is the recipe an institution's own implementation
follows (docs/privacy.md).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0002
KEM_SUITE = b"KEM" + KEM_ID.to_bytes(2, "big")
HPKE_SUITE = b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + AEAD_ID.to_bytes(2, "big")
KEY_BYTES, NONCE_BYTES = 32, 12
MODE_BASE = 0x00


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(SHA256(), length, info).derive(prk)


def labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)


def derive_private_key(ikm: bytes) -> bytes:
    """DeriveKeyPair for X25519: the raw private key from input keying material."""
    prk = labeled_extract(KEM_SUITE, b"", b"dkp_prk", ikm)
    return labeled_expand(KEM_SUITE, prk, b"sk", b"", 32)


def public_bytes(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Context:
    shared_secret: bytes
    key: bytes
    base_nonce: bytes

    def nonce(self, sequence: int) -> bytes:
        return bytes(a ^ b for a, b in zip(self.base_nonce, sequence.to_bytes(NONCE_BYTES, "big"), strict=True))


def _key_schedule(shared_secret: bytes, info: bytes) -> Context:
    psk_id_hash = labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE, b"", b"info_hash", info)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = labeled_extract(HPKE_SUITE, shared_secret, b"secret", b"")
    return Context(shared_secret, labeled_expand(HPKE_SUITE, secret, b"key", context, KEY_BYTES),
                   labeled_expand(HPKE_SUITE, secret, b"base_nonce", context, NONCE_BYTES))


def _shared_secret(dh: bytes, enc: bytes, recipient_public: bytes) -> bytes:
    prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh)
    return labeled_expand(KEM_SUITE, prk, b"shared_secret", enc + recipient_public, 32)


def setup_sender(ephemeral_private: bytes, recipient_public: bytes, info: bytes) -> tuple[bytes, Context]:
    ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_private)
    enc = public_bytes(ephemeral_private)
    dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    return enc, _key_schedule(_shared_secret(dh, enc, recipient_public), info)


def setup_recipient(enc: bytes, recipient_private: bytes, info: bytes) -> Context:
    recipient = X25519PrivateKey.from_private_bytes(recipient_private)
    dh = recipient.exchange(X25519PublicKey.from_public_bytes(enc))
    return _key_schedule(_shared_secret(dh, enc, public_bytes(recipient_private)), info)


def seal_single_shot(ephemeral_private: bytes, recipient_public: bytes, info: bytes, plaintext: bytes,
                     aad: bytes = b"") -> bytes:
    """enc || ciphertext, as `shared/domain/sealing.py` puts into a token (sequence 0)."""
    enc, context = setup_sender(ephemeral_private, recipient_public, info)
    return enc + AESGCM(context.key).encrypt(context.nonce(0), plaintext, aad)


def open_single_shot(sealed: bytes, recipient_private: bytes, info: bytes, aad: bytes = b"") -> bytes:
    context = setup_recipient(sealed[:32], recipient_private, info)
    return AESGCM(context.key).decrypt(context.nonce(0), sealed[32:], aad)
