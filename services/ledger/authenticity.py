"""Which records the ledger believes: the signature decides, not the topic.

- On the settlements topic, a settlement counts only when a trusted finance key signed
  it; else it is dead-lettered `unauthenticated_settlement` and never reaches the journal.
- On the journal (the payments topic), a payment instruction or clawback counts only
  when `service:verifier` signed it, and a settlement only when `service:ledger` (this
  service's forwarder, after checking finance's signature) did. A record written
  straight onto the journal by anyone else is refused (`unauthenticated_instruction` /
  `unauthenticated_settlement`) and changes no money, live and on rebuild alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from shared.events import JOURNAL_RECORD, PaymentInstruction, Settlement
from shared.trust import Principal, Role, TrustedKeys, Unauthenticated

VERIFIER = Principal(Role.SERVICE, "verifier")
LEDGER = Principal(Role.SERVICE, "ledger")
UNAUTHENTICATED_SETTLEMENT = "unauthenticated_settlement"
UNAUTHENTICATED_INSTRUCTION = "unauthenticated_instruction"
SCHEMA_VIOLATION = "schema_violation"


@dataclass(frozen=True)
class Refused:
    reason: str
    field: str
    message: str


def _schema(error: ValidationError) -> Refused:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    return Refused(SCHEMA_VIOLATION, field, f"{field}: {first['msg']}")


def admit_settlement(record: ConsumerRecord[Any, Any], trust: TrustedKeys) -> Settlement | Refused:
    """A finance system's answer, from the settlements topic."""
    signer = trust.authenticate(record.topic, record.key, record.value or b"", record.headers)
    if isinstance(signer, Unauthenticated):
        return Refused(UNAUTHENTICATED_SETTLEMENT, "", f"{signer.problem.value}: {signer.message}")
    if signer.role != Role.FINANCE:
        return Refused(UNAUTHENTICATED_SETTLEMENT, "", f"signed by {signer}, not by a finance system")
    try:
        return Settlement.model_validate_json(record.value or b"")
    except ValidationError as error:
        return _schema(error)


def admit_journal(record: ConsumerRecord[Any, Any], trust: TrustedKeys) -> PaymentInstruction | Settlement | Refused:
    """A record of the journal, believed only from the service that may write it."""
    try:
        parsed = JOURNAL_RECORD.validate_json(record.value or b"")
    except ValidationError as error:
        return _schema(error)
    expected, reason = ((VERIFIER, UNAUTHENTICATED_INSTRUCTION) if isinstance(parsed, PaymentInstruction)
                        else (LEDGER, UNAUTHENTICATED_SETTLEMENT))
    signer = trust.authenticate(record.topic, record.key, record.value or b"", record.headers)
    if isinstance(signer, Unauthenticated):
        return Refused(reason, "", f"{signer.problem.value}: {signer.message}")
    if signer != expected:
        return Refused(reason, "", f"signed by {signer}, not by {expected}")
    return parsed
