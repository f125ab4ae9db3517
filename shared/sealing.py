"""Sealing CPR numbers so that not even the institution-events topic carries them.

The publisher an institution runs (`stafet publish`) seals each CPR number to ingest's
public key; only ingest, holding the private key, can open it, and does so in memory,
validates it and replaces it by the pseudonym. On the topic there is only ciphertext.

Construction (an ECIES "sealed box"): a fresh X25519 key pair per number; HKDF-SHA256
over the shared secret, bound to both public keys, gives a one-time AES-256-GCM key;
the token is `v1.` + base64url(ephemeral public key || ciphertext and tag). The key is
used for one message only, so a fixed nonce is safe.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_PREFIX = "v1."  # noqa: S105 - a format marker, not a secret
_INFO = b"stafet-cpr-seal-v1"
_NONCE = bytes(12)
_RAW = serialization.Encoding.Raw
# Development only: a well-known key pair so `make demo` runs with no secrets. The
# ingest service refuses it when STAFET_ENV=production.
DEVELOPMENT_SEED = hashlib.sha256(b"stafet-development-sealing-key-not-for-production").digest()


class InvalidSeal(ValueError):
    pass


def development_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(DEVELOPMENT_SEED)


def load_private_key(path: Path) -> X25519PrivateKey:
    """A raw 32-byte key, or its hex, in a file (`stafet keys new` writes one)."""
    data = path.read_bytes().strip()
    raw = bytes.fromhex(data.decode()) if len(data) == 64 else data
    return X25519PrivateKey.from_private_bytes(raw)


def load_public_key(path: Path) -> X25519PublicKey:
    data = path.read_bytes().strip()
    raw = bytes.fromhex(data.decode()) if len(data) == 64 else data
    return X25519PublicKey.from_public_bytes(raw)


def _public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(_RAW, serialization.PublicFormat.Raw)


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO + ephemeral + recipient).derive(shared)


def seal(plaintext: str, recipient: X25519PublicKey) -> str:
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = _public_bytes(ephemeral.public_key())
    key = _key(ephemeral.exchange(recipient), ephemeral_public, _public_bytes(recipient))
    sealed = AESGCM(key).encrypt(_NONCE, plaintext.encode(), _INFO)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(ephemeral_public + sealed).decode().rstrip("=")


def unseal(token: str, private: X25519PrivateKey) -> str:
    if not token.startswith(TOKEN_PREFIX):
        raise InvalidSeal("not a v1 sealed value")
    body = token[len(TOKEN_PREFIX):]
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        raise InvalidSeal("not base64url") from None
    if len(data) < 32 + 16:
        raise InvalidSeal("too short")
    ephemeral_public, sealed = data[:32], data[32:]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        key = _key(shared, ephemeral_public, _public_bytes(private.public_key()))
        return AESGCM(key).decrypt(_NONCE, sealed, _INFO).decode()
    except (InvalidTag, ValueError, UnicodeDecodeError):
        raise InvalidSeal("cannot be opened with this ingest key") from None
