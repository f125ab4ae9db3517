"""Which public key a publisher seals CPR numbers to: ingest's, from the settings.

Used by every sealer (`stafet publish`, the front door, the benchmark); in development the
well-known development key, so `make demo` needs no secrets; in production a missing file
stops the caller.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from shared.domain.sealing import development_private_key, load_public_key
from shared.platform.settings import Settings


def publisher_public_key(settings: Settings) -> X25519PublicKey:
    if settings.sealing_public_key_file is not None:
        return load_public_key(settings.sealing_public_key_file)
    if settings.stafet_env == "production":
        raise ValueError("no sealing key: set SEALING_PUBLIC_KEY_FILE to ingest's public key")
    return development_private_key().public_key()
