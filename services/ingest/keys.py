"""Ingest's two secrets: the pseudonym key (HMAC) and the sealing private key (X25519).

Development mode falls back to well-known keys so `make demo` needs no secrets;
production mode refuses to start without real ones (docs/privacy.md).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from shared.domain.pseudonym import DEVELOPMENT_KEY
from shared.domain.sealing import development_private_key, load_private_key
from shared.platform.settings import Settings
from shared.platform.trust import ConfigurationError

__all__ = ["ConfigurationError", "pseudonym_key", "sealing_key"]


def pseudonym_key(settings: Settings) -> bytes:
    if settings.pseudonym_key_file is not None:
        return settings.pseudonym_key_file.read_bytes().strip()
    if settings.pseudonym_key:
        return settings.pseudonym_key.encode()
    if settings.stafet_env == "production":
        raise ConfigurationError("no pseudonymisation key: set PSEUDONYM_KEY_FILE or PSEUDONYM_KEY")
    return DEVELOPMENT_KEY


def sealing_key(settings: Settings) -> X25519PrivateKey:
    if settings.sealing_private_key_file is not None:
        return load_private_key(settings.sealing_private_key_file)
    if settings.stafet_env == "production":
        raise ConfigurationError("no sealing key: set SEALING_PRIVATE_KEY_FILE (stafet keys new)")
    return development_private_key()
