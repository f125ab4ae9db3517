"""Sealing CPR numbers so that not even the institution-events topic carries them.

The publisher an institution runs (`stafet publish`, or its own system) seals each CPR
number to ingest's public key; only ingest, holding the private key, can open it, and
does so in memory, validates it and replaces it by the pseudonym. On the topic there is
only ciphertext.

Construction: HPKE (RFC 9180) in base mode with the suite DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM (ids 0x0020, 0x0001, 0x0002), single-shot, `info` =
`stafet-cpr-v2`, empty additional data. A standard construction, so an institution's
Java, C# or Go system can seal with its own HPKE library; docs/privacy.md has a test
vector. The token is `v2.` + base64url without padding of (enc || ciphertext): the
32-byte encapsulated key, then the AES-GCM ciphertext and its 16-byte tag.
The implementation is `cryptography`'s; tests/unit/test_sealing.py checks it against
RFC 9180's published test vector for this suite.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import OrderedDict
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

TOKEN_PREFIX = "v2."  # noqa: S105 - a format marker, not a secret
INFO = b"stafet-cpr-v2"
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
ENC_BYTES = 32
TAG_BYTES = 16
# Development only: a well-known key pair so `make demo` runs with no secrets. The
# ingest service refuses it when STAFET_ENV=production.
DEVELOPMENT_SEED = hashlib.sha256(b"stafet-development-sealing-key-not-for-production").digest()


class InvalidSeal(ValueError):
    pass


def development_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(DEVELOPMENT_SEED)


def _raw_key(path: Path) -> bytes:
    data = path.read_bytes().strip()
    return bytes.fromhex(data.decode()) if len(data) == 64 else data


def load_private_key(path: Path) -> X25519PrivateKey:
    """A raw 32-byte key, or its hex, in a file (`stafet keys new` writes one)."""
    return X25519PrivateKey.from_private_bytes(_raw_key(path))


def load_public_key(path: Path) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(_raw_key(path))


def seal(plaintext: str, recipient: X25519PublicKey) -> str:
    sealed = SUITE.encrypt(plaintext.encode(), recipient, info=INFO)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(token: str, private: X25519PrivateKey) -> str:
    if not token.startswith(TOKEN_PREFIX):
        raise InvalidSeal("not a v2 (HPKE) sealed value")
    body = token[len(TOKEN_PREFIX):]
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        raise InvalidSeal("not base64url") from None
    if len(data) < ENC_BYTES + TAG_BYTES:
        raise InvalidSeal("too short")
    try:
        return SUITE.decrypt(data, private, info=INFO).decode()
    except (InvalidTag, ValueError, UnicodeDecodeError):
        raise InvalidSeal("cannot be opened with this ingest key") from None


SEAL_CACHE_MAX = 100_000  # subjects whose sealed token is reused within one run


class Sealer:
    """Seals each subject's CPR number once per run (a bounded cache from number to
    token): the key exchange is the expensive part, and ingest caches by token too."""

    def __init__(self, recipient: X25519PublicKey, cache_max: int = SEAL_CACHE_MAX) -> None:
        self.recipient = recipient
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._cache_max = cache_max

    def token(self, cpr: str) -> str:
        token = self._tokens.get(cpr)
        if token is None:
            token = self._tokens[cpr] = seal(cpr, self.recipient)
            if len(self._tokens) > self._cache_max:
                self._tokens.popitem(last=False)
        return token

    def line(self, raw: bytes) -> bytes:
        """The record as it may travel: a clear `cpr` replaced by `cpr_sealed`."""
        return self.keyed(raw)[1]

    def keyed(self, raw: bytes) -> tuple[bytes, bytes]:
        """(key, record): keyed by the subject's token (or pseudonym) so that one
        subject's events share a partition and keep their order; else by event id."""
        key, value, _ = self.sealed(raw)
        return key, value

    def sealed(self, raw: bytes) -> tuple[bytes, bytes, str]:
        """(key, record, the institution it is reported by)."""
        event = json.loads(raw)
        subject = event.get("subject") or {}
        if subject.get("cpr") is not None:
            subject["cpr_sealed"] = self.token(subject.pop("cpr"))
        key = subject.get("cpr_sealed") or subject.get("pseudonym") or str(event.get("event_id", ""))
        reporter = str(event.get("reported_by", ""))
        return key.encode(), json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode(), reporter
