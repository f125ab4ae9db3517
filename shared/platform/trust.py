"""Whose keys a receiver trusts, and what a signature proves.

Every signed record names its key id (`shared/domain/signing.py`); the receiver looks it up
here and learns the principal behind it, e.g. `institution:alsskolen`,
`operator:alice`, `finance:kommunens-oekonomi` or `service:verifier`. What each
receiver then accepts from which principal is decided by the receiver (ingest: the
institution named in `reported_by`; the verifier: transitions from `service:ingest`,
contract versions and clock ticks from operators; the ledger: instructions from
`service:verifier`, settlements from finance).

Where keys come from:
- institution keys: the institution registry (`keys:` of each institution);
- operator, finance, investor and service keys: `TRUSTED_KEYS_FILE`, YAML of
  `{operator|finance|investor|service: {name: [public key hex, ...]}}`.
Several keys per principal make rotation a matter of adding the new key, switching the
signer, and removing the old key once nothing signed with it is still to be read.

In development mode (the default) the well-known development key of every service, of
`operator:dev`, `finance:dev`, of every registered institution (and, as `investor:<id>`,
of every registered investor and fund) is trusted as well, so
`make demo` needs no secrets. In production a missing `TRUSTED_KEYS_FILE` or signing key
stops the process, and a development key found in any trusted file is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.domain.institutions import InstitutionRegistry
from shared.domain.principals import Authentication, Principal, Role, SignatureProblem, Unauthenticated
from shared.domain.signing import (
    BATCH_PROOF_HEADER,
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Headers,
    RecordSigner,
    batch_message,
    decoded,
    development_key,
    header,
    is_development_key,
    key_id_of,
    load_private_key,
    parse_public_key,
    proven_root,
    signed_message,
)
from shared.platform.settings import Settings

SERVICES = ("ingest", "verifier", "ledger", "frontdoor")
# The HTTP front door signs the events it forwards for the institutions it authenticated.
FRONT_DOOR = "service:frontdoor"
DEVELOPMENT_OPERATOR = "operator:dev"
DEVELOPMENT_FINANCE = "finance:dev"
# Batch signatures already verified (shared/domain/signing.py), so that the other records of a
# batch cost a few SHA-256 instead of an Ed25519 verification each. A batch's records
# arrive close together; a few thousand trees cover every batch in flight.
VERIFIED_ROOTS_MAX = 4096


class ConfigurationError(RuntimeError):
    """A setting needed to start safely is missing or unsafe; the message says which."""




class TrustedKeys:
    def __init__(self, keys: Iterable[tuple[Principal, Ed25519PublicKey]] = ()) -> None:
        self._by_id: dict[str, tuple[Principal, Ed25519PublicKey]] = {}
        for principal, key in keys:
            self._by_id[key_id_of(key)] = (principal, key)
        # (key id, signature, root, size) -> who signed: filled only after that signature
        # verified for that root, and keyed on all of it, so a record whose path leads to
        # any other root (or that names another key or signature) misses and is checked.
        self._verified_roots: dict[tuple[str, bytes, bytes, int], Principal] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def merged(self, other: TrustedKeys) -> TrustedKeys:
        return TrustedKeys([*self._by_id.values(), *other._by_id.values()])

    def principals(self) -> Mapping[str, Principal]:
        return {key_id: principal for key_id, (principal, _) in self._by_id.items()}

    def authenticate(self, topic: str, key: bytes | None, value: bytes,
                     headers: Headers | None) -> Authentication:
        """Who signed this record for this topic, or why that cannot be said."""
        key_id, signature = header(headers, KEY_ID_HEADER), header(headers, SIGNATURE_HEADER)
        if key_id is None or signature is None:
            return Unauthenticated(SignatureProblem.MISSING_SIGNATURE, "the record carries no signature")
        name = key_id.decode("ascii", errors="replace")
        found = self._by_id.get(name)
        if found is None:
            return Unauthenticated(SignatureProblem.UNKNOWN_SIGNER, f"key id {name[:40]!r} is not trusted")
        principal, public = found
        raw_signature = decoded(signature)
        if raw_signature is None:
            return _bad(principal)
        proof = header(headers, BATCH_PROOF_HEADER)
        if proof is None:
            return principal if _verifies(public, raw_signature, signed_message(topic, key, value)) else _bad(principal)
        proven = proven_root(topic, key, value, proof)
        if proven is None:
            return _bad(principal)
        root, size = proven
        verified = (name, raw_signature, root, size)
        known = self._verified_roots.get(verified)
        if known is not None:
            return known
        if not _verifies(public, raw_signature, batch_message(root, size)):
            return _bad(principal)
        if len(self._verified_roots) >= VERIFIED_ROOTS_MAX:
            del self._verified_roots[next(iter(self._verified_roots))]  # the oldest
        self._verified_roots[verified] = principal
        return principal


def _bad(principal: Principal) -> Unauthenticated:
    return Unauthenticated(SignatureProblem.BAD_SIGNATURE, f"the signature does not verify for {principal} on this topic")


def _verifies(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


INVESTOR_KINDS = ("investor", "fund")


def _development_keys(registry: InstitutionRegistry | None) -> list[tuple[Principal, Ed25519PublicKey]]:
    names = [f"service:{s}" for s in SERVICES] + [DEVELOPMENT_OPERATOR, DEVELOPMENT_FINANCE]
    if registry is not None:
        names += [f"institution:{i.id}" for i in registry.all()]
        # An investor or fund in the registry signs its commitments as `investor:<id>`.
        names += [f"investor:{i.id}" for i in registry.all() if i.kind in INVESTOR_KINDS]
    return [(Principal.parse(n), development_key(n).public_key()) for n in names]


def _file_keys(path: Path) -> list[tuple[Principal, Ed25519PublicKey]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        keys = []
        for role, holders in data.items():
            for name, hexes in (holders or {}).items():
                keys += [(Principal(Role(role), str(name)), parse_public_key(str(h))) for h in hexes]
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError) as error:
        raise ConfigurationError(f"{path}: not a valid trusted keys file: {error}") from None
    return keys


def _registry_keys(registry: InstitutionRegistry) -> list[tuple[Principal, Ed25519PublicKey]]:
    keys = []
    for institution in registry.all():
        try:
            keys += [(Principal(Role.INSTITUTION, institution.id), parse_public_key(h)) for h in institution.keys]
        except ValueError as error:
            raise ConfigurationError(f"institution {institution.id}: {error}") from None
    return keys


def trusted_keys(settings: Settings, registry: InstitutionRegistry | None = None) -> TrustedKeys:
    """The keys this process trusts: files, registry, and in development the dev keys."""
    production = settings.stafet_env == "production"
    keys: list[tuple[Principal, Ed25519PublicKey]] = []
    if settings.trusted_keys_file is not None:
        keys += _file_keys(settings.trusted_keys_file)
    elif production:
        raise ConfigurationError("no trusted keys: set TRUSTED_KEYS_FILE (stafet keys new)")
    if registry is not None:
        keys += _registry_keys(registry)
    if production:
        for principal, key in keys:
            if is_development_key(key, str(principal)):
                raise ConfigurationError(f"{principal}: a development key is not trusted in production")
    else:
        keys += _development_keys(registry)
    return TrustedKeys(keys)


def record_signer(settings: Settings, principal: str, key_file: Path | None = None) -> RecordSigner:
    """This process's own signer: `key_file`, else SIGNING_KEY_FILE, else (development
    only) the principal's well-known development key."""
    path = key_file or settings.signing_key_file
    if path is not None:
        try:
            key = load_private_key(path)
        except OSError as error:
            raise ConfigurationError(f"cannot read the signing key {path}: {error.strerror}") from None
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        if settings.stafet_env == "production" and is_development_key(key.public_key(), principal):
            raise ConfigurationError(f"{path}: a development key may not sign in production")
        return RecordSigner(principal, key)
    if settings.stafet_env == "production":
        raise ConfigurationError(f"no signing key for {principal}: set SIGNING_KEY_FILE (stafet keys new)")
    return RecordSigner.development(principal)


def development_writer(topic: str, value: bytes) -> str:
    """The principal whose development key signs `value` on `topic` as its real writer
    would (an institution, ingest, an operator, the verifier, the ledger's forwarder,
    finance): for the benchmark, the chaos load and tests, never for production."""
    import json

    try:
        data = json.loads(value)
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    if ".institution-events." in topic:
        return f"institution:{data.get('reported_by', '')}"
    if ".transitions." in topic:
        return DEVELOPMENT_OPERATOR if data.get("kind") == "clock_tick" else "service:ingest"
    if ".payments." in topic:
        return "service:verifier" if data.get("kind") in ("payment", "clawback") else "service:ledger"
    if ".investments." in topic:
        if data.get("kind") in ("investment_committed", "investment_disbursed"):
            return f"investor:{data.get('investor', '')}"
        return DEVELOPMENT_FINANCE
    if ".settlements." in topic:
        return DEVELOPMENT_FINANCE
    if ".contracts." in topic:
        return DEVELOPMENT_OPERATOR
    raise ValueError(f"no writer known for {topic}")
