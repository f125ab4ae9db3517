"""Which records the verifier believes: the signature decides, not the topic.

Anyone who can write to the transitions or contracts topic (a broker misconfiguration,
a stolen credential) could otherwise invent subjects, move event time or change what a
contract pays. So a transition counts only when `service:ingest` signed it for this
topic, a clock tick or a contract version only when a trusted operator did. Everything
else is refused with a reason code (and dead-lettered by the app); the versions in force
and the subjects' streams stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from shared.domain.contracts.model import Contract
from shared.domain.events import TRANSITIONS_RECORD, ClockTick, Transition
from shared.domain.principals import Principal, Role, Unauthenticated
from shared.platform.trust import TrustedKeys

INGEST = Principal(Role.SERVICE, "ingest")
UNAUTHENTICATED_TRANSITION = "unauthenticated_transition"
UNAUTHENTICATED_CONTRACT = "unauthenticated_contract"
SCHEMA_VIOLATION = "schema_violation"


@dataclass(frozen=True)
class Refused:
    reason: str
    message: str


def _signer(record: ConsumerRecord[Any, Any], trust: TrustedKeys) -> Principal | Refused:
    # Judged at the record's time (keys that end, shared/domain/key_lists.py): a retired
    # key keeps verifying what it signed before it retired, on a rebuild too.
    found = trust.authenticate_record(record)
    if isinstance(found, Unauthenticated):
        return Refused("", f"{found.problem.value}: {found.message}")
    return found


def admit_transition(record: ConsumerRecord[Any, Any], trust: TrustedKeys) -> Transition | ClockTick | Refused:
    signer = _signer(record, trust)
    if isinstance(signer, Refused):
        return Refused(UNAUTHENTICATED_TRANSITION, signer.message)
    try:
        parsed = TRANSITIONS_RECORD.validate_json(record.value or b"")
    except ValidationError as error:
        return Refused(SCHEMA_VIOLATION, str(error.errors()[0]["msg"]))
    if isinstance(parsed, ClockTick):
        if signer.role != Role.OPERATOR:
            return Refused(UNAUTHENTICATED_TRANSITION, f"a clock tick signed by {signer}, not by an operator")
    elif signer != INGEST:
        return Refused(UNAUTHENTICATED_TRANSITION, f"a transition signed by {signer}, not by {INGEST}")
    return parsed


def admit_contract(record: ConsumerRecord[Any, Any], trust: TrustedKeys) -> Contract | Refused:
    signer = _signer(record, trust)
    if isinstance(signer, Refused):
        return Refused(UNAUTHENTICATED_CONTRACT, signer.message)
    if signer.role != Role.OPERATOR:
        return Refused(UNAUTHENTICATED_CONTRACT, f"a contract version signed by {signer}, not by an operator")
    try:
        return Contract.model_validate_json(record.value or b"")
    except ValidationError as error:
        return Refused(SCHEMA_VIOLATION, str(error.errors()[0]["msg"]))
