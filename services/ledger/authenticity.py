"""Which records the ledger believes: the signature decides, not the topic.

- On the settlements topic, a settlement counts only when a trusted finance key signed
  it; else it is dead-lettered `unauthenticated_settlement` and never reaches the journal.
  It is forwarded naming its signer (`settled_by`), and with tenants (docs/tenancy.md)
  the journal takes it only from a finance principal of the payment's payer
  (`foreign_tenant_settlement`).
- On the journal (the payments topic), a payment instruction or clawback counts only
  when `service:verifier` signed it, and a settlement only when `service:ledger` (this
  service's forwarder, after checking finance's signature) did and it carries finance's
  signed original, which is checked again (services/ledger/origins.py). A record written
  straight onto the journal by anyone else is refused (`unauthenticated_instruction` /
  `unauthenticated_settlement`) and changes no money, live and on rebuild alike.
- On the disputes topic (shared/domain/disputes.py), a dispute or a decision on one counts
  only when the front door (`service:frontdoor`) signed it: it authenticated the
  institution's administrator or the operator, and checked the review window. Else
  `unauthenticated_dispute`.
- On the investments topic (docs/investment.md), a commitment or disbursement counts only
  when `investor:<id>` signed it for the investor it names; a fund's budget, savings paid
  into a fund and a close only when a finance system did (with tenants, the payer's own:
  `foreign_tenant_investment`, on the forwarder and on the journal's re-check alike). Else `unauthenticated_investment`,
  before it reaches the journal; there, an investment record counts only when this
  service's forwarder (`service:ledger`) signed it (`unauthenticated_investment` too).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from services.ledger.origins import ORIGIN_TOPIC, in_namespace_of, origin_of
from shared.domain.disputes import DISPUTE_RECORD, DisputeOpened, DisputeResolved
from shared.domain.events import PaymentInstruction, Settlement
from shared.domain.investment.records import (
    INVESTMENT_RECORD,
    LEDGER_JOURNAL_RECORD,
    SIGNED_BY_INVESTOR,
    FundEstablished,
    InvestmentClosed,
    InvestmentRecord,
    SavingsReturned,
)
from shared.domain.principals import Principal, Role, Unauthenticated
from shared.domain.signing import header
from shared.domain.tenancy import Tenancy, TenancyRefusal
from shared.platform.topics import INVESTMENTS, SETTLEMENTS, is_of_kind
from shared.platform.trust import ConsumedRecord, TrustedKeys

VERIFIER = Principal(Role.SERVICE, "verifier")
LEDGER = Principal(Role.SERVICE, "ledger")
FRONT_DOOR = Principal(Role.SERVICE, "frontdoor")
UNAUTHENTICATED_DISPUTE = "unauthenticated_dispute"
UNAUTHENTICATED_SETTLEMENT = "unauthenticated_settlement"
UNAUTHENTICATED_INSTRUCTION = "unauthenticated_instruction"
UNAUTHENTICATED_INVESTMENT = "unauthenticated_investment"
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


def admit_settlement(record: ConsumedRecord, trust: TrustedKeys) -> Settlement | Refused:
    """A finance system's answer, from the settlements topic."""
    signer = trust.authenticate_record(record)
    if isinstance(signer, Unauthenticated):
        return Refused(UNAUTHENTICATED_SETTLEMENT, "", f"{signer.problem.value}: {signer.message}")
    if signer.role != Role.FINANCE:
        return Refused(UNAUTHENTICATED_SETTLEMENT, "", f"signed by {signer}, not by a finance system")
    try:
        settlement = Settlement.model_validate_json(record.value or b"")
    except ValidationError as error:
        return _schema(error)
    # Who settled is what the signature proves, not what the record says: the journal
    # decides on it whether this finance principal acts for the payment's payer.
    return settlement.model_copy(update={"settled_by": str(signer)})


def admit_investment(record: ConsumedRecord, trust: TrustedKeys,
                     tenancy: Tenancy | None = None) -> InvestmentRecord | Refused:
    """An investor's, a fund's or a finance office's record, from the investments topic.
    With tenants (docs/tenancy.md), a fund's budget or savings paid into it count only
    from a finance principal of the payer the record names (`foreign_tenant_investment`)."""
    signer = trust.authenticate_record(record)
    if isinstance(signer, Unauthenticated):
        return Refused(UNAUTHENTICATED_INVESTMENT, "", f"{signer.problem.value}: {signer.message}")
    try:
        parsed = INVESTMENT_RECORD.validate_json(record.value or b"")
    except ValidationError as error:
        return _schema(error)
    if parsed.kind in SIGNED_BY_INVESTOR:
        expected = Principal(Role.INVESTOR, parsed.investor)  # type: ignore[union-attr]
        if signer != expected:
            return Refused(UNAUTHENTICATED_INVESTMENT, "investor", f"signed by {signer}, not by {expected}")
    elif signer.role != Role.FINANCE:
        return Refused(UNAUTHENTICATED_INVESTMENT, "", f"signed by {signer}, not by a finance system")
    elif tenancy is not None and isinstance(parsed, FundEstablished | SavingsReturned | InvestmentClosed):
        if parsed.payer is None:  # a close only: the others always name their payer
            return Refused(TenancyRefusal.FOREIGN_TENANT_INVESTMENT.value, "payer",
                           "with tenants a close names the contract's payer (stafet invest close copies it)")
        refusal = tenancy.settlement_refusal(str(signer), parsed.payer)
        if refusal is not None:
            return Refused(TenancyRefusal.FOREIGN_TENANT_INVESTMENT.value, "payer", refusal.message)
    return parsed


def admit_dispute(record: ConsumedRecord, trust: TrustedKeys) -> DisputeOpened | DisputeResolved | Refused:
    """A dispute or an operator's decision on one, from the disputes topic."""
    signer = trust.authenticate_record(record)
    if isinstance(signer, Unauthenticated):
        return Refused(UNAUTHENTICATED_DISPUTE, "", f"{signer.problem.value}: {signer.message}")
    if signer != FRONT_DOOR:
        return Refused(UNAUTHENTICATED_DISPUTE, "", f"signed by {signer}, not by {FRONT_DOOR}")
    try:
        return DISPUTE_RECORD.validate_json(record.value or b"")
    except ValidationError as error:
        return _schema(error)


JournalRecord = PaymentInstruction | Settlement | InvestmentRecord


def admit_journal(record: ConsumedRecord, trust: TrustedKeys, tenancy: Tenancy | None = None) -> JournalRecord | Refused:
    """A record of the journal, believed only from the service that may write it. With
    tenants, a forwarded investment record's signed original must pass the tenant rule
    the forwarder applies (`foreign_tenant_investment`), so the live projector, a rebuild
    and `stafet ledger verify` refuse what the forwarder would have."""
    try:
        parsed = LEDGER_JOURNAL_RECORD.validate_json(record.value or b"")
    except ValidationError as error:
        return _schema(error)
    if isinstance(parsed, PaymentInstruction):
        expected, reason = VERIFIER, UNAUTHENTICATED_INSTRUCTION
    elif isinstance(parsed, Settlement):
        expected, reason = LEDGER, UNAUTHENTICATED_SETTLEMENT
    else:
        expected, reason = LEDGER, UNAUTHENTICATED_INVESTMENT
    signer = trust.authenticate_record(record)
    if isinstance(signer, Unauthenticated):
        return Refused(reason, "", f"{signer.problem.value}: {signer.message}")
    if signer != expected:
        return Refused(reason, "", f"signed by {signer}, not by {expected}")
    if not isinstance(parsed, PaymentInstruction):
        # Forwarded: believed only with its original, signed by whoever may state it
        # (services/ledger/origins.py), not on the forwarder's key alone.
        problem = _original_problem(record, parsed, trust, tenancy)
        if isinstance(problem, Refused):
            return problem
        if problem:
            return Refused(reason, "origin", problem)
    return parsed


def _original_problem(record: ConsumedRecord, forwarded: Settlement | InvestmentRecord, trust: TrustedKeys,
                      tenancy: Tenancy | None = None) -> str | Refused:
    """Why `forwarded` is not what its signed original says (empty: it is); the original's
    own refusal when the tenant rule refuses it (as the forwarder would have)."""
    origin = origin_of(record.headers)
    if isinstance(origin, str):
        boundary = trust.originals_required_from_ms
        if boundary is not None and record.timestamp < boundary and header(record.headers, ORIGIN_TOPIC) is None:
            # Forwarded before the ledger kept originals (the upgrade boundary, stamped by the
            # broker: a key holder cannot backdate a new record): the forwarder's signature.
            return ""
        return origin
    spec = SETTLEMENTS if isinstance(forwarded, Settlement) else INVESTMENTS
    expected = in_namespace_of(record.topic, spec)
    # A settlement's original may come from the shared settlements topic or a tenant's own
    # (docs/tenancy.md, "Topics per tenant"), of this installation; the tenant rule is the
    # journal's, by the signer, whichever topic it came from.
    if not is_of_kind(origin.topic, expected) or (spec is not SETTLEMENTS and origin.topic != expected.name):
        return f"its original was signed for {origin.topic[:80]!r}, not {expected.name!r}"
    original = admit_settlement(origin, trust) if isinstance(forwarded, Settlement) else \
        admit_investment(origin, trust, tenancy)
    if isinstance(original, Refused):
        if original.reason == TenancyRefusal.FOREIGN_TENANT_INVESTMENT:
            return original
        return f"its original is refused ({original.reason}: {original.message})"
    if original != forwarded:
        return "differs from its signed original"
    return ""
