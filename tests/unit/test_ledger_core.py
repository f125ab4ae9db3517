"""The ledger's pure core: journal planning, double-entry postings, the hash chain and
the audit's check of each stored row (every hashed column, the link to the predecessor).

The hashes are recomputed here with hashlib from the definitions in docs/ledger.md, not
only through the functions the projector and the auditor share: a content hash that
left a column out, or a chain hash that ignored its predecessor, would otherwise agree
with itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import Any

import pytest

from services.ledger.audit import _check, rebuild_entry
from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.ledger.journal import KnownPayment, SettlementRejection, plan_journal
from shared.domain.ledger.postings import (
    GENESIS_HASH,
    Entry,
    Line,
    UnbalancedEntry,
    _checked,
    chain_hash,
    entry_for,
    settlement_entry,
)

PAYMENT = PaymentInstruction(
    payment_id="a" * 32, kind=PaymentKind.PAYMENT, contract_id="c", contract_version=1,
    outcome_id="o", subject="k1:" + "0" * 64, payer="municipality", payee="school",
    amount_minor=12_345, currency="DKK", occurred_on=dt.date(2024, 1, 1), trigger_event_id="t-1")
OTHER = PAYMENT.model_copy(update={"payment_id": "b" * 32, "payee": "college", "amount_minor": 500})
CLAWBACK = PAYMENT.model_copy(update={"payment_id": "c" * 32, "kind": PaymentKind.CLAWBACK,
                                      "reverses_payment_id": "a" * 32})
PAID = Settlement(settlement_id="s-1", payment_id="a" * 32, status=SettlementStatus.PAID,
                  settled_on=dt.date(2024, 2, 1), bank_reference="BANK-1")
PAID_AGAIN = PAID.model_copy(update={"settlement_id": "s-2", "bank_reference": "BANK-2"})
FAILED = Settlement(settlement_id="s-3", payment_id="b" * 32, status=SettlementStatus.FAILED,
                    settled_on=dt.date(2024, 2, 1), reason="account closed")


# -- journal planning ------------------------------------------------------------------

def test_each_new_instruction_becomes_one_entry_in_journal_order() -> None:
    plan = plan_journal([PAYMENT, OTHER, CLAWBACK], {})
    assert [e.entry_id for e in plan.entries] == ["a" * 32, "b" * 32, "c" * 32]
    assert [e.kind for e in plan.entries] == ["payment", "payment", "clawback"]
    assert (plan.rejected, plan.duplicates) == ((), 0)


def test_an_instruction_already_in_the_ledger_or_twice_in_a_batch_is_written_once() -> None:
    plan = plan_journal([PAYMENT, OTHER, OTHER], {PAYMENT.payment_id: KnownPayment(PAYMENT, None)})
    assert [e.entry_id for e in plan.entries] == [OTHER.payment_id]
    assert plan.duplicates == 2


def test_a_settlement_of_a_payment_in_the_same_batch_settles_it() -> None:
    plan = plan_journal([PAYMENT, PAID], {})
    assert [e.kind for e in plan.entries] == ["payment", "settled"]
    assert plan.entries[1].settlement == PAID


def test_a_settlement_for_an_unknown_payment_is_rejected_as_unknown_payment() -> None:
    plan = plan_journal([PAID], {})
    assert plan.entries == ()
    assert [(r.settlement, r.reason) for r in plan.rejected] == [(PAID, SettlementRejection.UNKNOWN_PAYMENT)]


def test_the_same_settlement_twice_is_a_duplicate_and_another_one_is_rejected_as_already_settled() -> None:
    known = {PAYMENT.payment_id: KnownPayment(PAYMENT, None).applied(PAID)}
    plan = plan_journal([PAID, PAID_AGAIN], known)
    assert plan.entries == ()
    assert plan.duplicates == 1
    assert [(r.settlement, r.reason) for r in plan.rejected] == [
        (PAID_AGAIN, SettlementRejection.ALREADY_SETTLED)]


def test_a_second_settlement_in_the_same_batch_is_rejected_as_already_settled() -> None:
    plan = plan_journal([PAYMENT, PAID, PAID_AGAIN], {})
    assert [e.kind for e in plan.entries] == ["payment", "settled"]
    assert [r.reason for r in plan.rejected] == [SettlementRejection.ALREADY_SETTLED]


def test_planning_does_not_change_what_it_was_told_is_known() -> None:
    known = {PAYMENT.payment_id: KnownPayment(PAYMENT, None)}
    plan_journal([PAID, OTHER], known)
    assert known == {PAYMENT.payment_id: KnownPayment(PAYMENT, None)}


# -- postings --------------------------------------------------------------------------

def lines_of(entry: Entry) -> list[tuple[str, int, int]]:
    return [(ln.account, ln.debit_minor, ln.credit_minor) for ln in entry.lines]


def test_settling_moves_a_payment_from_pending_to_paid_and_a_failure_back_to_the_budget() -> None:
    assert lines_of(settlement_entry(PAYMENT, PAID)) == [
        ("receivable:school:pending", 12_345, 0), ("receivable:school:paid", 0, 12_345)]
    assert lines_of(settlement_entry(OTHER, FAILED)) == [
        ("receivable:college:pending", 500, 0), ("budget:municipality:c", 0, 500)]


def test_a_settled_clawback_moves_money_back_from_paid_to_pending() -> None:
    back = PAID.model_copy(update={"payment_id": CLAWBACK.payment_id})
    assert lines_of(settlement_entry(CLAWBACK, back)) == [
        ("receivable:school:paid", 12_345, 0), ("receivable:school:pending", 0, 12_345)]
    failed = FAILED.model_copy(update={"payment_id": CLAWBACK.payment_id})
    assert lines_of(settlement_entry(CLAWBACK, failed)) == [
        ("budget:municipality:c", 12_345, 0), ("receivable:school:pending", 0, 12_345)]


def test_a_fallback_payee_is_booked_on_a_fallback_account() -> None:
    fallback = PAYMENT.model_copy(update={"payee": "youth-fund", "payee_role": "fallback"})
    assert lines_of(entry_for(fallback)) == [
        ("budget:municipality:c", 12_345, 0), ("fallback:youth-fund:pending", 0, 12_345)]


def test_an_unbalanced_entry_or_one_mixing_currencies_is_refused() -> None:
    unbalanced = Entry("x", "payment", PAYMENT, (Line("a", 10, 0, "DKK"), Line("b", 0, 9, "DKK")))
    with pytest.raises(UnbalancedEntry):
        _checked(unbalanced)
    mixed = Entry("x", "payment", PAYMENT, (Line("a", 10, 0, "DKK"), Line("b", 0, 10, "EUR")))
    with pytest.raises(UnbalancedEntry):
        _checked(mixed)


# -- hashes, recomputed independently --------------------------------------------------

def test_the_chain_hash_is_sha256_of_the_predecessor_then_the_content() -> None:
    content = entry_for(PAYMENT).content_hash()
    assert chain_hash(GENESIS_HASH, content) == hashlib.sha256((GENESIS_HASH + content).encode()).hexdigest()
    assert chain_hash("1" * 64, content) != chain_hash("2" * 64, content)


def test_the_content_hash_is_sha256_of_the_canonical_json_of_every_field() -> None:
    expected = {**PAYMENT.model_dump(mode="json"), "entry_id": PAYMENT.payment_id, "entry_kind": "payment",
                "lines": [["budget:municipality:c", 12_345, 0, "DKK"], ["receivable:school:pending", 0, 12_345, "DKK"]]}
    canonical = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert entry_for(PAYMENT).content_hash() == hashlib.sha256(canonical.encode()).hexdigest()


INSTRUCTION_CHANGES: dict[str, Any] = {
    "payment_id": "d" * 32, "contract_id": "c2", "contract_version": 2, "outcome_id": "o2",
    "subject": "k1:" + "1" * 64, "payer": "other-payer", "payee": "other-school", "payee_role": "fallback",
    "amount_minor": 1, "currency": "EUR", "occurred_on": dt.date(2024, 1, 2), "trigger_event_id": "t-2",
}


@pytest.mark.parametrize("field", sorted(INSTRUCTION_CHANGES))
def test_changing_any_instruction_field_changes_the_content_hash(field: str) -> None:
    assert set(INSTRUCTION_CHANGES) | {"kind", "reverses_payment_id", "schema_version"} == \
        set(PaymentInstruction.model_fields)
    altered = PAYMENT.model_copy(update={field: INSTRUCTION_CHANGES[field]})
    assert entry_for(altered).content_hash() != entry_for(PAYMENT).content_hash()


@pytest.mark.parametrize(("field", "value"), [
    ("settlement_id", "s-9"), ("settled_on", dt.date(2024, 2, 2)), ("bank_reference", "BANK-9"),
    ("reason", "late")])
def test_changing_any_settlement_field_changes_the_content_hash(field: str, value: object) -> None:
    altered = PAID.model_copy(update={field: value})
    assert settlement_entry(PAYMENT, altered).content_hash() != settlement_entry(PAYMENT, PAID).content_hash()


# -- the audit's check of stored rows --------------------------------------------------

def stored_row(entry: Entry, sequence: int, previous: str) -> dict[str, Any]:
    """The row as the ledger store writes it (services/ledger/store.py `_append`)."""
    i, s = entry.instruction, entry.settlement
    content = entry.content_hash()
    return {
        "sequence": sequence, "entry_id": entry.entry_id, "kind": entry.kind, "payment_id": i.payment_id,
        "reverses_payment_id": i.reverses_payment_id, "contract_id": i.contract_id,
        "contract_version": i.contract_version, "outcome_id": i.outcome_id, "subject": i.subject,
        "payer": i.payer, "payee": i.payee, "payee_role": i.payee_role, "currency": i.currency,
        "amount_minor": i.amount_minor, "occurred_on": i.occurred_on, "content_hash": content,
        "previous_hash": previous, "entry_hash": hashlib.sha256((previous + content).encode()).hexdigest(),
        "settlement_id": s.settlement_id if s else None, "bank_reference": s.bank_reference if s else None,
        "settled_on": s.settled_on if s else None, "failure_reason": s.reason if s else None,
        "trigger_event_id": i.trigger_event_id,
    }


def stored_lines(entry: Entry) -> list[tuple[str, int, int, str]]:
    return [(ln.account, ln.debit_minor, ln.credit_minor, ln.currency) for ln in entry.lines]


def chain_of(entries: list[Entry]) -> list[dict[str, Any]]:
    rows, previous = [], GENESIS_HASH
    for n, entry in enumerate(entries, start=1):
        rows.append(stored_row(entry, n, previous))
        previous = rows[-1]["entry_hash"]
    return rows


ENTRIES = [entry_for(PAYMENT), entry_for(OTHER), settlement_entry(PAYMENT, PAID), settlement_entry(OTHER, FAILED)]


def test_an_untouched_chain_passes_every_check() -> None:
    previous = GENESIS_HASH
    for n, (row, entry) in enumerate(zip(chain_of(ENTRIES), ENTRIES, strict=True), start=1):
        assert _check(row, stored_lines(entry), previous, n) == ""
        assert rebuild_entry(row) == entry
        previous = row["entry_hash"]


ROW_CHANGES: dict[str, Any] = {
    **{k: v for k, v in INSTRUCTION_CHANGES.items() if k not in ("payment_id",)},
    "payment_id": "d" * 32,
}


@pytest.mark.parametrize("column", sorted(ROW_CHANGES))
def test_altering_any_hashed_column_of_a_payment_row_is_named(column: str) -> None:
    entry = ENTRIES[1]
    row = {**chain_of(ENTRIES)[1], column: ROW_CHANGES[column]}
    problem = _check(row, stored_lines(entry), chain_of(ENTRIES)[0]["entry_hash"], 2)
    assert problem, f"altering {column} went unnoticed"


@pytest.mark.parametrize(("column", "value"), [
    ("settlement_id", "s-9"), ("settled_on", dt.date(2024, 2, 2)), ("bank_reference", "BANK-9"),
    ("kind", "failed")])
def test_altering_any_hashed_column_of_a_settlement_row_is_named(column: str, value: object) -> None:
    rows = chain_of(ENTRIES)
    row = {**rows[2], column: value}
    assert _check(row, stored_lines(ENTRIES[2]), rows[1]["entry_hash"], 3)


def test_a_failure_reason_altered_is_named() -> None:
    rows = chain_of(ENTRIES)
    row = {**rows[3], "failure_reason": "something else"}
    assert _check(row, stored_lines(ENTRIES[3]), rows[2]["entry_hash"], 4)


def test_a_row_whose_content_and_hashes_were_rewritten_together_breaks_the_link_of_the_next() -> None:
    rows = chain_of(ENTRIES)
    forged_entry = entry_for(OTHER.model_copy(update={"amount_minor": 499}))
    forged = stored_row(forged_entry, 2, rows[0]["entry_hash"])
    assert _check(forged, stored_lines(forged_entry), rows[0]["entry_hash"], 2) == ""
    # ... but the next entry still links to the original hash of entry 2.
    assert "previous_hash" in _check(rows[2], stored_lines(ENTRIES[2]), forged["entry_hash"], 3)


def test_an_entry_hash_that_does_not_cover_its_predecessor_is_named() -> None:
    rows = chain_of(ENTRIES)
    content = rows[1]["content_hash"]
    unlinked = {**rows[1], "entry_hash": hashlib.sha256(content.encode()).hexdigest()}
    assert _check(unlinked, stored_lines(ENTRIES[1]), rows[0]["entry_hash"], 2) == "entry_hash does not match"


def test_altered_lines_and_sequence_gaps_are_named() -> None:
    rows = chain_of(ENTRIES)
    lines = stored_lines(ENTRIES[0])
    lines[1] = (lines[1][0], 0, lines[1][2] - 1, lines[1][3])
    assert "lines differ" in _check(rows[0], lines, GENESIS_HASH, 1)
    assert "sequence gap" in _check(rows[1], stored_lines(ENTRIES[1]), rows[0]["entry_hash"], 3)


def test_stored_rows_carry_every_field_the_entry_hashes() -> None:
    # If an instruction field had no column, the audit could not rebuild the entry.
    row = chain_of(ENTRIES)[0]
    rebuilt = rebuild_entry(row)
    assert dataclasses.asdict(rebuilt) == dataclasses.asdict(ENTRIES[0])


# -- gaps found by mutation testing (docs/testing.md) ----------------------------------

def test_a_clawback_and_every_settlement_line_carry_the_instructions_currency() -> None:
    entries = [entry_for(CLAWBACK), settlement_entry(PAYMENT, PAID), settlement_entry(OTHER, FAILED)]
    assert {ln.currency for e in entries for ln in e.lines} == {"DKK"}


def test_a_fallback_payee_is_settled_on_its_fallback_accounts() -> None:
    fallback = PAYMENT.model_copy(update={"payee": "youth-fund", "payee_role": "fallback"})
    assert lines_of(settlement_entry(fallback, PAID)) == [
        ("fallback:youth-fund:pending", 12_345, 0), ("fallback:youth-fund:paid", 0, 12_345)]
    failed = FAILED.model_copy(update={"payment_id": fallback.payment_id})
    assert lines_of(settlement_entry(fallback, failed)) == [
        ("fallback:youth-fund:pending", 12_345, 0), ("budget:municipality:c", 0, 12_345)]


def test_a_settlement_entrys_content_hash_is_sha256_of_the_canonical_json_with_the_settlement() -> None:
    entry = settlement_entry(PAYMENT, PAID)
    expected = {**PAYMENT.model_dump(mode="json"), "entry_id": f"settlement:{PAYMENT.payment_id}",
                "entry_kind": "settled", "settlement": PAID.model_dump(mode="json", exclude={"settled_by"}),
                "lines": [["receivable:school:pending", 12_345, 0, "DKK"], ["receivable:school:paid", 0, 12_345, "DKK"]]}
    canonical = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert entry.content_hash() == hashlib.sha256(canonical.encode()).hexdigest()
    # Who signed it (docs/tenancy.md) is proven by the signed journal record, not hashed:
    # entries chained before settlements named their signer keep their hashes.
    signed = settlement_entry(PAYMENT, PAID.model_copy(update={"settled_by": "finance:dev"}))
    assert signed.content_hash() == entry.content_hash()


def test_every_repeat_is_counted_and_every_rejection_names_the_payment() -> None:
    plan = plan_journal([PAYMENT, PAID, PAID, PAID, PAID_AGAIN, FAILED], {})
    assert plan.duplicates == 2
    assert [r.reason for r in plan.rejected] == [SettlementRejection.ALREADY_SETTLED, SettlementRejection.UNKNOWN_PAYMENT]
    assert all(r.settlement.payment_id in r.message for r in plan.rejected)
    assert PAID.settlement_id in plan.rejected[0].message


def test_a_refused_entry_names_itself() -> None:
    with pytest.raises(UnbalancedEntry, match="x"):
        _checked(Entry("x", "payment", PAYMENT, (Line("a", 10, 0, "DKK"), Line("b", 0, 9, "DKK"))))
    with pytest.raises(UnbalancedEntry, match="x mixes currencies"):
        _checked(Entry("x", "payment", PAYMENT, (Line("a", 10, 0, "DKK"), Line("b", 0, 10, "EUR"))))
