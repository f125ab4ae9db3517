"""Who signed a record, as a value: a principal (`institution:alsskolen`,
`service:verifier`) or the reason it cannot be said.

Pure values, so that the domain's decision cores (admission) can name principals without
reaching for the key store; `shared/platform/trust.py` holds the keys and checks signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    INSTITUTION = "institution"
    OPERATOR = "operator"
    FINANCE = "finance"
    SERVICE = "service"
    INVESTOR = "investor"  # an investor's or a social investment fund's system (docs/investment.md)


class SignatureProblem(StrEnum):
    MISSING_SIGNATURE = "missing_signature"
    UNKNOWN_SIGNER = "unknown_signer"
    BAD_SIGNATURE = "bad_signature"
    REVOKED_KEY = "revoked_key"  # on the signed revocation list (shared/domain/key_lists.py)
    EXPIRED_KEY = "expired_key"  # the record's time is outside the key's window


@dataclass(frozen=True)
class Principal:
    role: Role
    name: str

    def __str__(self) -> str:
        return f"{self.role.value}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Principal:
        role, _, name = text.partition(":")
        return cls(Role(role), name)


@dataclass(frozen=True)
class Unauthenticated:
    problem: SignatureProblem
    message: str


Authentication = Principal | Unauthenticated
