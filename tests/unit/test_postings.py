"""Ledger postings: balanced entries, clawbacks mirror payments, hashes detect change."""

from __future__ import annotations

import datetime as dt

from shared.domain.events import PaymentInstruction, PaymentKind
from shared.domain.ledger.postings import GENESIS_HASH, chain_hash, entry_for

PAYMENT = PaymentInstruction(
    payment_id="a" * 32, kind=PaymentKind.PAYMENT, contract_id="c", contract_version=1,
    outcome_id="o", subject="k1:" + "0" * 64, payer="municipality", payee="school",
    amount_minor=12_345, currency="DKK", occurred_on=dt.date(2024, 1, 1))


def test_a_payment_debits_the_budget_and_credits_the_pending_receivable() -> None:
    entry = entry_for(PAYMENT)
    assert [(ln.account, ln.debit_minor, ln.credit_minor) for ln in entry.lines] == [
        ("budget:municipality:c", 12_345, 0), ("receivable:school:pending", 0, 12_345)]


def test_a_clawback_is_the_mirror_image_of_its_payment() -> None:
    clawback = PAYMENT.model_copy(update={"payment_id": "b" * 32, "kind": PaymentKind.CLAWBACK,
                                          "reverses_payment_id": "a" * 32})
    pay, back = entry_for(PAYMENT), entry_for(clawback)
    net: dict[str, int] = {}
    for line in pay.lines + back.lines:
        net[line.account] = net.get(line.account, 0) + line.credit_minor - line.debit_minor
    assert set(net.values()) == {0}


def test_changing_any_field_changes_the_content_hash_and_the_chain() -> None:
    original = entry_for(PAYMENT)
    altered = entry_for(PAYMENT.model_copy(update={"amount_minor": 12_346}))
    assert original.content_hash() != altered.content_hash()
    assert chain_hash(GENESIS_HASH, original.content_hash()) != \
        chain_hash(GENESIS_HASH, altered.content_hash())
