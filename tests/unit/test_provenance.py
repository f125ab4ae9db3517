"""Every entry carries its proof: an entry counts only when a signed journal record, from the
principal entitled to it, posts exactly that entry (services/ledger/provenance.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.ledger.origins import OriginRecord
from services.ledger.provenance import SourceRecord, derivation_problem
from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.ledger.postings import Entry, entry_for, settlement_entry
from shared.domain.signing import RecordSigner
from shared.platform.settings import Settings
from shared.platform.trust import trusted_keys

JOURNAL = "ns.payments.v1"
TRUST = trusted_keys(Settings(stafet_env="development"))
VERIFIER, LEDGER = RecordSigner.development("service:verifier"), RecordSigner.development("service:ledger")
FINANCE = RecordSigner.development("finance:dev")
INSTRUCTION = PaymentInstruction(
    payment_id="a" * 32, kind=PaymentKind.PAYMENT, contract_id="pbr", contract_version=1, outcome_id="job",
    subject="k1:" + "1" * 64, payer="kommune", payee="alsskolen", amount_minor=50_000_00, currency="DKK",
    occurred_on=dt.date(2024, 1, 2))
SETTLEMENT = Settlement(settlement_id="s-1", payment_id=INSTRUCTION.payment_id, status=SettlementStatus.PAID,
                        settled_on=dt.date(2024, 2, 1), bank_reference="R1", settled_by="finance:dev")


def _row(entry: Entry) -> dict[str, Any]:
    """The entry as `ledger_entries` holds it (the columns the audit reads)."""
    i, s = entry.instruction, entry.settlement
    return {"kind": entry.kind, "entry_id": entry.entry_id, "payment_id": i.payment_id,
            "reverses_payment_id": i.reverses_payment_id,
            "contract_id": i.contract_id, "contract_version": i.contract_version, "outcome_id": i.outcome_id,
            "subject": i.subject, "payer": i.payer, "payee": i.payee, "payee_role": i.payee_role,
            "amount_minor": i.amount_minor, "currency": i.currency, "occurred_on": i.occurred_on,
            "trigger_event_id": i.trigger_event_id, "content_hash": entry.content_hash(),
            "settlement_id": s.settlement_id if s else None, "bank_reference": s.bank_reference if s else None,
            "settled_on": s.settled_on if s else None, "failure_reason": s.reason if s else None,
            "investment": None}


def _source(value: bytes, signer: RecordSigner | None, topic: str = JOURNAL, key: bytes = b"k",
            original_by: RecordSigner | None = None) -> SourceRecord:
    """The journal record as the ledger stores it; `original_by`: who signed the forwarded
    record's original on the settlements topic (services/ledger/origins.py)."""
    headers = signer.headers(topic, key, value) if signer else []
    settlements = "ns.settlements.v1"
    origin = None if original_by is None else OriginRecord(
        settlements, key, value, tuple(original_by.headers(settlements, key, value)), 1_700_000_000_000)
    return SourceRecord(topic, key, value, headers[0][1].decode() if headers else "",
                        headers[1][1].decode() if headers else "", None, 1_700_000_000_000, origin)


def _problem(entry: Entry, source: SourceRecord | None, instructions: dict[str, str] | None = None) -> str:
    return derivation_problem(_row(entry), source, TRUST, JOURNAL, instructions or {})


def test_an_entry_derived_from_the_verifiers_signed_instruction_is_proven() -> None:
    assert _problem(entry_for(INSTRUCTION), _source(INSTRUCTION.model_dump_json().encode(), VERIFIER)) == ""


def test_an_entry_without_a_source_or_with_a_source_nobody_entitled_signed_is_unproven() -> None:
    value = INSTRUCTION.model_dump_json().encode()
    assert "no signed source record" in _problem(entry_for(INSTRUCTION), None)
    for forger in (RecordSigner.development("finance:dev"), LEDGER):
        assert "unauthenticated_instruction" in _problem(entry_for(INSTRUCTION), _source(value, forger))
    other_topic = _source(value, VERIFIER, topic="elsewhere.payments.v1")
    assert "not the journal" in _problem(entry_for(INSTRUCTION), other_topic)


def test_an_entry_that_differs_from_what_its_signed_source_posts_is_unproven() -> None:
    raised = INSTRUCTION.model_copy(update={"amount_minor": INSTRUCTION.amount_minor * 100})
    genuine_source = _source(INSTRUCTION.model_dump_json().encode(), VERIFIER)
    assert "differs from what its signed source record posts" in _problem(entry_for(raised), genuine_source)
    other_payee = INSTRUCTION.model_copy(update={"payee": "made-up-payee"})
    assert "differs" in _problem(entry_for(other_payee), genuine_source)


def test_a_settlement_entry_must_settle_the_payments_own_instruction() -> None:
    source = _source(SETTLEMENT.model_dump_json().encode(), LEDGER, original_by=FINANCE)
    genuine = {INSTRUCTION.payment_id: entry_for(INSTRUCTION).content_hash()}
    assert _problem(settlement_entry(INSTRUCTION, SETTLEMENT), source, genuine) == ""
    # The forwarder's key alone proves nothing: without finance's original, or with an
    # original the forwarder signed itself, the entry is unproven.
    for original_by in (None, LEDGER):
        alone = _source(SETTLEMENT.model_dump_json().encode(), LEDGER, original_by=original_by)
        assert "unproven_entry" in _problem(settlement_entry(INSTRUCTION, SETTLEMENT), alone, genuine)
        assert "original" in _problem(settlement_entry(INSTRUCTION, SETTLEMENT), alone, genuine)
    # The same signed settlement, booked against an instruction the payment's entry does not hold.
    redirected = INSTRUCTION.model_copy(update={"payee": "made-up-payee"})
    assert "not payment" in _problem(settlement_entry(redirected, SETTLEMENT), source, genuine)
    assert "a settled entry whose source is an instruction" in _problem(
        settlement_entry(INSTRUCTION, SETTLEMENT), _source(INSTRUCTION.model_dump_json().encode(), VERIFIER), genuine)
