"""Keys that end: a signed key list with validity windows, and a signed revocation list.

A key that is only ever added stays good for ever: a stolen one signs as its principal
until somebody notices and edits every receiver's configuration, and one rotated out
either keeps verifying new records or, removed, stops verifying the old records (and
checkpoints) it signed. So a key carries a window and can be revoked:

- the **key list** names each key's principal, its public key, and optionally
  `not_before` and `not_after`: a record is believed from a key only when the record's
  time falls inside the key's window. A key retired by setting `not_after` keeps
  verifying everything it signed before that moment (rotation never drops old anchors)
  and nothing after it;
- the **revocation list** names keys that must not be believed at all (`since` absent:
  a key thought stolen from the start) or not from a moment on (`since`: what it signed
  before stays good);
- both are documents signed by an operator's root key, which receivers pin
  (`TRUST_ROOT_KEYS`), so whoever can edit a receiver's files cannot add a key or lift a
  revocation without that key.

A record's time is its Kafka timestamp; the topics that carry signed records stamp it on
append (`LogAppendTime`, `shared/platform/kafka.py`), so a producer cannot choose it.

The signed message is frame(label) || frame(canonical JSON of the document without its
signature), the label saying which kind of document it is, so a key list's signature is
never a revocation list's, nor a record's (`shared/domain/signing.py`). Pure: parsing,
signing and checking; the platform ring reads the files (`shared/platform/trust.py`).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from shared.domain.signing import decoded, key_id_of, parse_public_key

KEYS_MAX = 10_000  # per list: far more than any installation's principals
KEY_LIST_LABEL = b"stafet-key-list-v1"
REVOCATION_LIST_LABEL = b"stafet-revocation-list-v1"

PrincipalText = Annotated[str, StringConstraints(
    pattern=r"^(institution|operator|finance|service|investor):[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
KeyId = Annotated[str, StringConstraints(pattern=r"^ed25519:[0-9a-f]{16}$")]
PublicKeyHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class KeyProblem(StrEnum):
    """Why a key that is known is not believed for a record (`shared/domain/principals.py`
    names the same codes for a signature)."""

    REVOKED_KEY = "revoked_key"
    EXPIRED_KEY = "expired_key"  # outside its window: not yet valid, or retired


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SignedDocument(_Document):
    """A document an operator's root key signs; `LABEL` says which kind it is."""

    LABEL: ClassVar[bytes]


class ListedKey(_Document):
    principal: PrincipalText
    public_key: PublicKeyHex
    not_before: AwareDatetime | None = None
    not_after: AwareDatetime | None = None

    @model_validator(mode="after")
    def _window(self) -> ListedKey:
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise ValueError("not_after must be after not_before")
        parse_public_key(self.public_key)
        return self

    @property
    def key_id(self) -> str:
        return key_id_of(parse_public_key(self.public_key))


class KeyList(SignedDocument):
    LABEL = KEY_LIST_LABEL
    kind: Literal["stafet_key_list"] = "stafet_key_list"
    schema_version: Literal[1] = 1
    issued_at: AwareDatetime
    keys: Annotated[tuple[ListedKey, ...], Field(max_length=KEYS_MAX)]


class Revocation(_Document):
    key_id: KeyId
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    # Records the key signed at or after this moment are refused; without it, all are.
    since: AwareDatetime | None = None


class RevocationList(SignedDocument):
    LABEL = REVOCATION_LIST_LABEL
    kind: Literal["stafet_revocation_list"] = "stafet_revocation_list"
    schema_version: Literal[1] = 1
    issued_at: AwareDatetime
    revoked: Annotated[tuple[Revocation, ...], Field(max_length=KEYS_MAX)]


class DocumentSignature(_Document):
    key_id: KeyId
    signature: Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _framed(part: bytes) -> bytes:
    return len(part).to_bytes(4, "big") + part


def document_message(document: SignedDocument) -> bytes:
    """What the operator's key signs: the label and the document's canonical JSON."""
    return _framed(document.LABEL) + _framed(document.model_dump_json().encode())


def sign_document(document: SignedDocument, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed file's content: the document's fields and its `signature`."""
    signature = DocumentSignature(key_id=key_id_of(key.public_key()),
                                  signature=base64.b64encode(key.sign(document_message(document))).decode())
    return {**document.model_dump(mode="json"), "signature": signature.model_dump(mode="json")}


D = TypeVar("D", bound=SignedDocument)


class DocumentError(ValueError):
    """A key list or revocation list that does not parse or whose signature does not hold."""


def verified_document(data: object, model: type[D], roots: Mapping[str, Ed25519PublicKey]) -> D:
    """The document in `data` (a parsed YAML or JSON mapping), once its signature verifies
    for one of `roots` (key id -> public key); else DocumentError saying why."""
    if not isinstance(data, Mapping):
        raise DocumentError("not a mapping")
    body = {k: v for k, v in data.items() if k != "signature"}
    try:
        document = model.model_validate(body)
        signature = DocumentSignature.model_validate(data.get("signature"))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "signature"
        raise DocumentError(f"{where}: {first['msg']}") from None
    root = roots.get(signature.key_id)
    if root is None:
        raise DocumentError(f"signed by {signature.key_id}, which is not a trust root (TRUST_ROOT_KEYS)")
    raw = decoded(signature.signature.encode())
    try:
        root.verify(raw or b"", document_message(document))
    except (InvalidSignature, ValueError):
        raise DocumentError(f"the signature by {signature.key_id} does not verify (altered after signing?)") from None
    return document


class KeyWindow(BaseModel):
    """When one key may be believed: its list window and any revocation."""

    model_config = ConfigDict(frozen=True)
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    revoked: bool = False
    revoked_since: dt.datetime | None = None  # with revoked: refused from then on; None: always

    def problem_at(self, at: dt.datetime) -> KeyProblem | None:
        """Whether a record stamped `at` may be believed from this key."""
        if self.revoked and (self.revoked_since is None or at >= self.revoked_since):
            return KeyProblem.REVOKED_KEY
        if (self.not_before is not None and at < self.not_before) or (
                self.not_after is not None and at > self.not_after):
            return KeyProblem.EXPIRED_KEY
        return None

    @property
    def unlimited(self) -> bool:
        return not self.revoked and self.not_before is None and self.not_after is None


def windows_of(keys: Sequence[ListedKey], revocations: Sequence[Revocation]) -> dict[str, KeyWindow]:
    """Key id -> window, for the listed keys and every revoked key id."""
    windows = {k.key_id: KeyWindow(not_before=k.not_before, not_after=k.not_after) for k in keys}
    for revocation in revocations:
        current = windows.get(revocation.key_id, KeyWindow())
        since = revocation.since
        if current.revoked:  # revoked twice: the earlier moment holds
            since = None if current.revoked_since is None or since is None else min(since, current.revoked_since)
        windows[revocation.key_id] = current.model_copy(update={"revoked": True, "revoked_since": since})
    return windows
