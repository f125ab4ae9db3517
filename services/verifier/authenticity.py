"""Which records the verifier believes: the signature decides, not the topic.

Anyone who can write to the transitions or contracts topic (a broker misconfiguration,
a stolen credential) could otherwise invent subjects, move event time or change what a
contract pays. So a transition counts only when `service:ingest` signed it for this
topic, a clock tick or a contract version only when a trusted operator did. Everything
else is refused with a reason code (and dead-lettered by the app); the versions in force
and the subjects' streams stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from shared.domain.contracts.model import Contract
from shared.domain.events import TRANSITIONS_RECORD, ClockTick, Transition
from shared.domain.principals import Principal, Role, Unauthenticated
from shared.domain.tenancy import Tenancy, TenancyRefusal, topic_segment
from shared.platform.topics import CONTRACTS, segment_in
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


def admit_transition(record: ConsumerRecord[Any, Any], trust: TrustedKeys,
                     tenancy: Tenancy | None = None) -> Transition | ClockTick | Refused:
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
        if tenancy is not None and not tenancy.may_tick(signer):
            # The clock decides finality for every tenant: the clearing house's to move.
            return Refused(UNAUTHENTICATED_TRANSITION,
                           f"a clock tick signed by {signer}, not by a clearing house operator")
    elif signer != INGEST:
        return Refused(UNAUTHENTICATED_TRANSITION, f"a transition signed by {signer}, not by {INGEST}")
    return parsed


def admit_contract(record: ConsumerRecord[Any, Any], trust: TrustedKeys, tenancy: Tenancy | None = None,
                   earlier_payer: Callable[[str], str | None] = lambda _: None) -> Contract | Refused:
    """A contract version, believed from an operator; with tenants (docs/tenancy.md) only
    from a contract signer of the payer it names, and only if the contract's earlier
    versions (`earlier_payer(contract_id)`) name the same payer."""
    signer = _signer(record, trust)
    if isinstance(signer, Refused):
        return Refused(UNAUTHENTICATED_CONTRACT, signer.message)
    if signer.role != Role.OPERATOR:
        return Refused(UNAUTHENTICATED_CONTRACT, f"a contract version signed by {signer}, not by an operator")
    try:
        contract = Contract.model_validate_json(record.value or b"")
    except ValidationError as error:
        return Refused(SCHEMA_VIOLATION, str(error.errors()[0]["msg"]))
    if tenancy is not None:
        refusal = tenancy.contract_refusal(signer, contract.payer, earlier_payer(contract.contract_id))
        if refusal is not None:
            return Refused(refusal.reason.value, refusal.message)
        # On a tenant's own topic (docs/tenancy.md, "Topics per tenant"), only that tenant's
        # versions: its topic is compacted apart from every other tenant's.
        segment = segment_in(record.topic, CONTRACTS)
        if segment is not None and segment != topic_segment(contract.payer):
            return Refused(TenancyRefusal.FOREIGN_TENANT_CONTRACT.value,
                           f"a version paid by {contract.payer} on the contracts topic of "
                           f"{tenancy.by_segment(segment) or segment}")
    return contract
