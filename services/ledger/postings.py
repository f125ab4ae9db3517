"""Ledger postings: the pure double-entry core of the ledger projector.

A payment instruction becomes one entry of two balanced lines: the payer's budget is
debited and the payee's pending receivable credited. A clawback is the mirror image,
referencing the original. Each entry's hash covers its content and its predecessor's
hash, so altering any row breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from shared.events import PaymentInstruction, PaymentKind

GENESIS_HASH = "0" * 64


def budget_account(payer: str, contract_id: str) -> str:
    return f"budget:{payer}:{contract_id}"


def pending_account(payee: str, role: str = "institution") -> str:
    return f"{'fallback' if role == 'fallback' else 'receivable'}:{payee}:pending"


@dataclass(frozen=True)
class Line:
    account: str
    debit_minor: int
    credit_minor: int
    currency: str


@dataclass(frozen=True)
class Entry:
    entry_id: str
    kind: str
    instruction: PaymentInstruction
    lines: tuple[Line, ...]

    def content(self) -> dict[str, object]:
        data = self.instruction.model_dump(mode="json")
        data.update(entry_id=self.entry_id, kind=self.kind,
                    lines=[[ln.account, ln.debit_minor, ln.credit_minor, ln.currency]
                           for ln in self.lines])
        return data

    def content_hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class UnbalancedEntry(RuntimeError):
    """A bug: an entry whose debits and credits differ must never be written."""


def chain_hash(previous_hash: str, content_hash: str) -> str:
    return hashlib.sha256(f"{previous_hash}{content_hash}".encode()).hexdigest()


def entry_for(instruction: PaymentInstruction) -> Entry:
    budget = budget_account(instruction.payer, instruction.contract_id)
    pending = pending_account(instruction.payee, instruction.payee_role)
    amount, currency = instruction.amount_minor, instruction.currency
    if instruction.kind == PaymentKind.PAYMENT:
        lines = (Line(budget, amount, 0, currency), Line(pending, 0, amount, currency))
    else:
        lines = (Line(pending, amount, 0, currency), Line(budget, 0, amount, currency))
    entry = Entry(instruction.payment_id, instruction.kind.value, instruction, lines)
    if sum(ln.debit_minor for ln in lines) != sum(ln.credit_minor for ln in lines):
        raise UnbalancedEntry(entry.entry_id)
    return entry
