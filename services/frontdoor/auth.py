"""Who is calling: an institution authenticates with a bearer token.

Tokens are 256-bit random strings (`stafet frontdoor token --institution ID` makes
one); the front door keeps only their SHA-256 (FRONT_DOOR_TOKENS_FILE, YAML
`{tokens: {institution id: [sha256 hex, ...]}}`), so its file leaks nothing usable.
Several hashes per institution make rotation a matter of adding the new one first. In
development mode every registered institution also has a well-known token
(`development_token`), so `make demo` and the README's curl examples run with no
secrets; production refuses to start without a tokens file.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import yaml

from shared.domain.institutions import InstitutionRegistry

_DEVELOPMENT_LABEL = "stafet-development-frontdoor-token-not-for-production:"


class TokenConfigurationError(RuntimeError):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def development_token(institution_id: str) -> str:
    return "dev-" + hashlib.sha256((_DEVELOPMENT_LABEL + institution_id).encode()).hexdigest()[:40]


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Authenticator:
    def __init__(self, hashes: dict[str, tuple[str, ...]]) -> None:
        self._by_hash = {h: institution for institution, found in hashes.items() for h in found}

    @classmethod
    def from_settings(cls, tokens_file: Path | None, registry: InstitutionRegistry, production: bool
                      ) -> Authenticator:
        hashes: dict[str, tuple[str, ...]] = {}
        if tokens_file is not None:
            try:
                data = yaml.safe_load(tokens_file.read_text(encoding="utf-8")) or {}
                hashes = {str(k): tuple(str(h) for h in v) for k, v in (data.get("tokens") or {}).items()}
            except (OSError, yaml.YAMLError, AttributeError, TypeError) as error:
                raise TokenConfigurationError(f"{tokens_file}: not a tokens file: {error}") from None
        elif production:
            raise TokenConfigurationError("no FRONT_DOOR_TOKENS_FILE: production needs real tokens")
        if not production:
            for institution in registry.all():
                hashes[institution.id] = (*hashes.get(institution.id, ()),
                                          token_hash(development_token(institution.id)))
        unknown = sorted(i for i in hashes if registry.get(i) is None)
        if unknown:
            raise TokenConfigurationError(f"tokens for institutions not in the registry: {', '.join(unknown)}")
        return cls(hashes)

    def institution_of(self, authorization: str | None) -> str | None:
        """The institution whose token this `Authorization: Bearer <token>` carries."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        # Looked up by the token's hash: timing can reveal at most something about a
        # SHA-256 image, which says nothing about any valid token.
        return self._by_hash.get(token_hash(authorization.removeprefix("Bearer ").strip()))
