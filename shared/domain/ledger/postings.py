"""Ledger postings: the pure double-entry core of the ledger projector.

Accounts (names from the domain, owner second):
- `budget:<payer>:<contract>`: the payer's spending under a contract (debit = spent);
- `receivable:<payee>:pending`: owed to the payee, not yet paid (negative: owed back);
- `receivable:<payee>:paid`: paid to the payee;
- `fallback:<account>:pending|paid`: the same for a contract's fallback account.

| record                 | debit                     | credit                    |
|------------------------|---------------------------|---------------------------|
| payment                | budget                    | pending                   |
| clawback               | pending                   | budget                    |
| payment settled (paid) | pending                   | paid                      |
| payment failed         | pending                   | budget (voided)           |
| clawback settled       | paid                      | pending (money came back) |
| clawback failed        | budget (payer bears it)   | pending                   |
| payment returned       | paid                      | pending (owed again)      |

A payment takes one `settled` or `failed` entry; a `returned` entry (the bank sent a
paid transfer back) undoes a `settled` one, after which the payment may be settled
again. The first settlement entry of a payment is `settlement:<payment id>`, the n-th
(n > 1) `settlement:<payment id>:<n>`, so replaying the journal gives the same ids.

Each entry's hash covers its content and its predecessor's hash, so altering any row
breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus

GENESIS_HASH = "0" * 64


def budget_account(payer: str, contract_id: str) -> str:
    return f"budget:{payer}:{contract_id}"


def pending_account(payee: str, role: str = "institution") -> str:
    return f"{'fallback' if role == 'fallback' else 'receivable'}:{payee}:pending"


def paid_account(payee: str, role: str = "institution") -> str:
    return f"{'fallback' if role == 'fallback' else 'receivable'}:{payee}:paid"


@dataclass(frozen=True)
class Line:
    account: str
    debit_minor: int
    credit_minor: int
    currency: str


@dataclass(frozen=True)
class Entry:
    entry_id: str
    kind: str  # payment | clawback | settled | failed | returned
    instruction: PaymentInstruction
    lines: tuple[Line, ...]
    settlement: Settlement | None = None

    def content(self) -> dict[str, object]:
        data = self.instruction.model_dump(mode="json")
        data.update(entry_id=self.entry_id, entry_kind=self.kind,
                    lines=[[ln.account, ln.debit_minor, ln.credit_minor, ln.currency]
                           for ln in self.lines])
        if self.settlement is not None:
            # Who settled is proven by the signed journal record, not hashed: an entry's
            # hash stays what it was before settlements named their signer.
            data["settlement"] = self.settlement.model_dump(mode="json", exclude={"settled_by"})
        return data

    def content_hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class UnbalancedEntry(RuntimeError):
    """A bug: an entry whose debits and credits differ must never be written."""


def chain_hash(previous_hash: str, content_hash: str) -> str:
    return hashlib.sha256(f"{previous_hash}{content_hash}".encode()).hexdigest()


def _two_lines(debit: str, credit: str, amount: int, currency: str) -> tuple[Line, ...]:
    return (Line(debit, amount, 0, currency), Line(credit, 0, amount, currency))


def _checked(entry: Entry) -> Entry:
    if sum(ln.debit_minor for ln in entry.lines) != sum(ln.credit_minor for ln in entry.lines):
        raise UnbalancedEntry(entry.entry_id)
    if len({ln.currency for ln in entry.lines}) != 1:
        raise UnbalancedEntry(f"{entry.entry_id} mixes currencies")
    return entry


def entry_for(instruction: PaymentInstruction) -> Entry:
    budget = budget_account(instruction.payer, instruction.contract_id)
    pending = pending_account(instruction.payee, instruction.payee_role)
    amount, currency = instruction.amount_minor, instruction.currency
    if instruction.kind == PaymentKind.PAYMENT:
        lines = _two_lines(budget, pending, amount, currency)
    else:
        lines = _two_lines(pending, budget, amount, currency)
    return _checked(Entry(instruction.payment_id, instruction.kind.value, instruction, lines))


def settlement_entry_id(payment_id: str, number: int = 1) -> str:
    return f"settlement:{payment_id}" if number == 1 else f"settlement:{payment_id}:{number}"


def settlement_entry(instruction: PaymentInstruction, settlement: Settlement, number: int = 1) -> Entry:
    """The `number`-th settlement entry of the instruction (1 for the first)."""
    budget = budget_account(instruction.payer, instruction.contract_id)
    pending = pending_account(instruction.payee, instruction.payee_role)
    paid = paid_account(instruction.payee, instruction.payee_role)
    is_payment = instruction.kind == PaymentKind.PAYMENT
    if settlement.status == SettlementStatus.PAID:
        debit, credit = (pending, paid) if is_payment else (paid, pending)
        kind = "settled"
    elif settlement.status == SettlementStatus.RETURNED:
        if not is_payment:
            raise UnbalancedEntry(f"{instruction.payment_id}: a clawback is never returned")
        debit, credit = paid, pending
        kind = "returned"
    else:
        debit, credit = (pending, budget) if is_payment else (budget, pending)
        kind = "failed"
    lines = _two_lines(debit, credit, instruction.amount_minor, instruction.currency)
    return _checked(Entry(settlement_entry_id(instruction.payment_id, number), kind, instruction,
                          lines, settlement))
