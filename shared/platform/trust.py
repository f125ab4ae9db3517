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
of every registered investor and fund), and of every operator and finance principal
TENANTS_FILE names (docs/tenancy.md) is trusted as well, so
`make demo` needs no secrets. In production a missing `TRUSTED_KEYS_FILE` or signing key
stops the process, and a development key found in any trusted file, key list or trust
root is refused.

Keys that end (`shared/domain/key_lists.py`): `TRUSTED_KEYS_FILE` may instead be a key
list signed by a trust root (`stafet keys sign-list`), giving each key a window
(`not_before`/`not_after`), and `REVOKED_KEYS_FILE` a revocation list signed by a trust
root (`stafet keys revoke`). The roots are operators' public keys pinned in
`TRUST_ROOT_KEYS` (in development `operator:dev`'s well-known key is one). A record is
judged at its Kafka timestamp (`authenticate_record`): a retired key verifies what it
signed inside its window, a revoked key nothing (or nothing from `since` on).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.domain.institutions import InstitutionRegistry, RegistryError
from shared.domain.key_lists import (
    DocumentError,
    KeyList,
    KeyProblem,
    KeyWindow,
    ListedKey,
    Revocation,
    RevocationList,
    verified_document,
    windows_of,
)
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
from shared.platform.tenants import TenantsConfigurationError, load_tenancy

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




class ConsumedRecord(Protocol):
    """What `authenticate_record` needs of a consumed Kafka record."""

    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> Any: ...
    @property
    def value(self) -> Any: ...
    @property
    def headers(self) -> Any: ...
    @property
    def timestamp(self) -> int: ...  # milliseconds since the epoch; stamped on append (LogAppendTime)


def record_time(timestamp_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=dt.UTC)


class TrustedKeys:
    def __init__(self, keys: Iterable[tuple[Principal, Ed25519PublicKey]] = (),
                 windows: Mapping[str, KeyWindow] | None = None) -> None:
        self._by_id: dict[str, tuple[Principal, Ed25519PublicKey]] = {}
        for principal, key in keys:
            self._by_id[key_id_of(key)] = (principal, key)
        # Key id -> when it may be believed (key lists and revocations); absent: always.
        self._windows = {key_id: w for key_id, w in (windows or {}).items() if not w.unlimited}
        # (key id, signature, root, size) -> who signed: filled only after that signature
        # verified for that root, and keyed on all of it, so a record whose path leads to
        # any other root (or that names another key or signature) misses and is checked.
        self._verified_roots: dict[tuple[str, bytes, bytes, int], Principal] = {}
        # The ledger's upgrade boundary (LEDGER_ORIGINS_REQUIRED_FROM, ms since the epoch):
        # a forwarded settlement or investment record the broker stamped before it may lack
        # its signed original (services/ledger/origins.py); none: every one must carry it.
        self.originals_required_from_ms: int | None = None

    def __len__(self) -> int:
        return len(self._by_id)

    def merged(self, other: TrustedKeys) -> TrustedKeys:
        return TrustedKeys([*self._by_id.values(), *other._by_id.values()], {**self._windows, **other._windows})

    def principals(self) -> Mapping[str, Principal]:
        return {key_id: principal for key_id, (principal, _) in self._by_id.items()}

    def window(self, key_id: str) -> KeyWindow | None:
        return self._windows.get(key_id)

    def authenticate_record(self, record: ConsumedRecord) -> Authentication:
        """`authenticate` for a consumed record, judged at the record's own time, so that
        a retired key still verifies what it signed before it retired (a rebuild, a
        verify) and nothing stamped after."""
        return self.authenticate(record.topic, record.key, record.value or b"", record.headers,
                                 at=record_time(record.timestamp))

    def authenticate(self, topic: str, key: bytes | None, value: bytes,
                     headers: Headers | None, *, at: dt.datetime | None = None) -> Authentication:
        """Who signed this record for this topic, or why that cannot be said. `at`: the
        record's time, for the key's window and revocation (default: now)."""
        key_id, signature = header(headers, KEY_ID_HEADER), header(headers, SIGNATURE_HEADER)
        if key_id is None or signature is None:
            return Unauthenticated(SignatureProblem.MISSING_SIGNATURE, "the record carries no signature")
        name = key_id.decode("ascii", errors="replace")
        found = self._by_id.get(name)
        if found is None:
            return Unauthenticated(SignatureProblem.UNKNOWN_SIGNER, f"key id {name[:40]!r} is not trusted")
        principal, public = found
        window = self._windows.get(name)
        if window is not None:
            when = at or dt.datetime.now(dt.UTC)
            problem = window.problem_at(when)
            if problem is not None:
                state = "revoked" if problem == KeyProblem.REVOKED_KEY else "outside its window"
                return Unauthenticated(SignatureProblem(problem.value), f"{principal}'s key {name} is {state}"
                                       f" for a record of {when.isoformat(timespec='seconds')}")
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


def _development_names(registry: InstitutionRegistry | None) -> list[str]:
    names = [f"service:{s}" for s in SERVICES] + [DEVELOPMENT_OPERATOR, DEVELOPMENT_FINANCE]
    if registry is not None:
        names += [f"institution:{i.id}" for i in registry.all()]
        # An investor or fund in the registry signs its commitments as `investor:<id>`.
        names += [f"investor:{i.id}" for i in registry.all() if i.kind in INVESTOR_KINDS]
    return names


def _development_keys(registry: InstitutionRegistry | None) -> list[tuple[Principal, Ed25519PublicKey]]:
    return [(Principal.parse(n), development_key(n).public_key()) for n in _development_names(registry)]


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigurationError(f"{path}: cannot be read: {error}") from None


def _file_keys(path: Path, roots: Mapping[str, Ed25519PublicKey]
               ) -> tuple[list[tuple[Principal, Ed25519PublicKey]], list[ListedKey]]:
    """The keys of TRUSTED_KEYS_FILE: a signed key list (with windows), or the plain
    `{role: {name: [hex, ...]}}` form (no windows; revocations still apply)."""
    data = _yaml(path)
    if isinstance(data, dict) and data.get("kind") == "stafet_key_list":
        try:
            listed = verified_document(data, KeyList, roots).keys
        except DocumentError as error:
            raise ConfigurationError(f"{path}: not a valid signed key list: {error}") from None
        return [(Principal.parse(k.principal), parse_public_key(k.public_key)) for k in listed], list(listed)
    try:
        keys = []
        for role, holders in data.items():
            for name, hexes in (holders or {}).items():
                keys += [(Principal(Role(role), str(name)), parse_public_key(str(h))) for h in hexes]
    except (AttributeError, TypeError, ValueError) as error:
        raise ConfigurationError(f"{path}: not a valid trusted keys file: {error}") from None
    return keys, []


def _revocations(path: Path | None, roots: Mapping[str, Ed25519PublicKey]) -> list[Revocation]:
    if path is None:
        return []
    try:
        return list(verified_document(_yaml(path), RevocationList, roots).revoked)
    except DocumentError as error:
        raise ConfigurationError(f"{path}: not a valid signed revocation list: {error}") from None


def trust_roots(settings: Settings) -> dict[str, Ed25519PublicKey]:
    """Key id -> the operators' root keys that sign key lists and revocation lists:
    TRUST_ROOT_KEYS (comma-separated hex), and in development `operator:dev`'s."""
    production = settings.stafet_env == "production"
    roots: dict[str, Ed25519PublicKey] = {}
    for text in (t for t in settings.trust_root_keys.split(",") if t.strip()):
        try:
            root = parse_public_key(text)
        except ValueError as error:
            raise ConfigurationError(f"TRUST_ROOT_KEYS: {error}") from None
        if production and any(is_development_key(root, name) for name in _development_names(None)):
            raise ConfigurationError("TRUST_ROOT_KEYS: a development key is not a trust root in production")
        roots[key_id_of(root)] = root
    if not production:
        root = development_key(DEVELOPMENT_OPERATOR).public_key()
        roots[key_id_of(root)] = root
    return roots


def _registry_keys(registry: InstitutionRegistry) -> list[tuple[Principal, Ed25519PublicKey]]:
    keys = []
    for institution in registry.all():
        try:
            keys += [(Principal(Role.INSTITUTION, institution.id), parse_public_key(h)) for h in institution.keys]
        except ValueError as error:
            raise ConfigurationError(f"institution {institution.id}: {error}") from None
    return keys


def _tenant_principals(settings: Settings) -> tuple[str, ...]:
    """Development only: the operators and finance principals TENANTS_FILE names, whose
    well-known development keys are then trusted too (two tenants on one local stack)."""
    try:
        tenancy = load_tenancy(settings)
    except TenantsConfigurationError as error:
        raise ConfigurationError(str(error)) from None
    return tenancy.principals() if tenancy is not None else ()


def trusted_keys(settings: Settings, registry: InstitutionRegistry | None = None) -> TrustedKeys:
    """The keys this process trusts: files, registry, and in development the dev keys;
    with their windows and revocations."""
    production = settings.stafet_env == "production"
    roots = trust_roots(settings)
    keys: list[tuple[Principal, Ed25519PublicKey]] = []
    listed: list[ListedKey] = []
    if settings.trusted_keys_file is not None:
        keys, listed = _file_keys(settings.trusted_keys_file, roots)
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
        keys += [(Principal.parse(n), development_key(n).public_key()) for n in _tenant_principals(settings)]
    return TrustedKeys(keys, windows_of(listed, _revocations(settings.revoked_keys_file, roots)))


def ledger_trust(settings: Settings) -> TrustedKeys:
    """Whom the ledger believes, and so whoever checks or rebuilds it (verify, a payout's
    proof, a rebuild): the trusted keys plus the registry's, since forwarded investment
    records carry their investor's signed original (services/ledger/origins.py). The
    registry is optional: without one, only the trusted keys file's investors count."""
    try:
        registry: InstitutionRegistry | None = InstitutionRegistry.from_file(settings.institutions_file)
    except (RegistryError, OSError):
        registry = None
    trust = trusted_keys(settings, registry)
    boundary = settings.ledger_origins_required_from
    if boundary is not None:
        trust.originals_required_from_ms = int(boundary.timestamp() * 1000)
    return trust


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
    if ".disputes." in topic:
        return FRONT_DOOR
    raise ValueError(f"no writer known for {topic}")
