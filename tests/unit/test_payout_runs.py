"""Payout runs, bank answers and the files people open, pure: run states, one transfer per
payee reconciled back to its payments, returns after booking in one file and across
files, idempotency by bank reference, pain.002 status reports, internal postings that
balance, remittance advice, CSV for Danish Excel."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from shared.domain.events import PaymentInstruction, PaymentKind, SettlementStatus
from shared.domain.finance.bank_csv import payout_csv
from shared.domain.finance.csv_style import EXCEL_DA, PLAIN, style_for
from shared.domain.finance.iso20022 import Iso20022Error, blocks_of, pain001, parse_camt054, parse_pain002
from shared.domain.finance.payouts import LeftOut, Payable, PayoutFormat, plan_payout, run_id_of, transfers_of
from shared.domain.finance.postings import POSTING_COLUMNS, PostingsError, balanced, load_chart, postings_csv, postings_of
from shared.domain.finance.remittance import advice_csv, advice_files
from shared.domain.finance.runs import RunRefusal, RunState, refusal
from shared.domain.finance.settlements import ImportRefusal, Known, PaymentState, reconcile
from shared.domain.finance.simulated_bank import camt054, pain002, transfers_in
from shared.domain.institutions import Institution, InstitutionRegistry
from shared.domain.ledger.journal import KnownPayment, SettlementRejection, plan_journal
from shared.platform.settings import REPO_ROOT

EXAMPLES = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
PAYER = "sonderborg-kommune"
OWN_SCHOOL = Institution(id="egen-skole", name="Egen Skole", kind="primary_school", municipality="sonderborg",
                         owned_by=PAYER, cost_centre="310200")
REGISTRY = InstitutionRegistry((*EXAMPLES.all(), OWN_SCHOOL))
NOW = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
DAY = dt.date(2024, 3, 4)


def pid(n: int) -> str:
    return f"{n:032x}"


def payable(n: int, payee: str, amount_minor: int) -> Payable:
    return Payable(pid(n), "mobility-bonus", f"o{n}", PAYER, payee, amount_minor, "DKK", dt.date(2024, 2, n))


PAYABLES = [payable(1, "alsskolen", 100_000), payable(2, "alsskolen", 23_456), payable(3, "alsskolen", 1),
            payable(4, "jobvejen", 5_000), payable(5, "egen-skole", 70_000), payable(6, "egen-skole", 1_000)]


def known(plan_lines: object, state: PaymentState = PaymentState.PENDING) -> dict[str, Known]:
    return {x.payment_id: Known(x.amount_minor, x.currency, state) for x in plan_lines}  # type: ignore[attr-defined]


# -- runs --------------------------------------------------------------------------------

def test_a_run_is_voided_until_the_bank_acknowledges_it_and_never_after() -> None:
    assert refusal(RunState.WRITTEN, RunState.VOIDED) is None
    assert refusal(RunState.SENT, RunState.VOIDED) is None
    assert refusal(RunState.ACKNOWLEDGED, RunState.VOIDED) == RunRefusal.RUN_ACKNOWLEDGED
    assert refusal(RunState.VOIDED, RunState.VOIDED) == RunRefusal.RUN_VOIDED
    assert refusal(RunState.REJECTED, RunState.VOIDED) == RunRefusal.RUN_REJECTED
    assert refusal(RunState.WRITTEN, RunState.SENT) is None
    assert refusal(RunState.SENT, RunState.SENT) == RunRefusal.WRONG_STATE
    assert refusal(RunState.VOIDED, RunState.ACKNOWLEDGED) == RunRefusal.RUN_VOIDED


def test_a_run_voided_and_made_again_gets_a_new_id_and_pays_the_same_payments() -> None:
    first = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001, run_number=1)
    again = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001, run_number=2)
    assert [x.payment_id for x in again.lines] == [x.payment_id for x in first.lines]
    assert again.run_id != first.run_id
    assert first.run_id == run_id_of([pid(1), pid(2), pid(3), pid(4)], PayoutFormat.PAIN_001, 1)
    out = {x.payment_id: first.run_id for x in first.lines}
    later = plan_payout([*PAYABLES, payable(7, "jobvejen", 9)], REGISTRY, out, PayoutFormat.PAIN_001, run_number=2)
    assert [x.payment_id for x in later.lines] == [pid(7)]
    assert dict(later.already_exported) == dict.fromkeys([pid(1), pid(2), pid(3), pid(4)], first.run_id)


# -- one transfer per payee --------------------------------------------------------------

def test_one_transfer_per_payee_carries_every_payment_id_and_is_reconciled_back_to_each() -> None:
    plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001)
    assert dict(plan.left_out) == {pid(5): LeftOut.PAYEE_INTERNAL, pid(6): LeftOut.PAYEE_INTERNAL}
    transfers = {t.first.payee: t for t in plan.transfers}
    assert set(transfers) == {"alsskolen", "jobvejen"}
    assert transfers["alsskolen"].payment_ids == (pid(1), pid(2), pid(3))
    assert transfers["alsskolen"].amount_minor == 123_457
    document = pain001(plan.lines, plan.run_id, NOW, DAY, "Sønderborg Kommune")
    assert sorted(transfers_in(document)) == sorted([
        (transfers["alsskolen"].transfer_id, "1234.57", "DKK"), (transfers["jobvejen"].transfer_id, "50.00", "DKK")])
    answers, _ = parse_camt054(camt054(transfers_in(document), booked_on=DAY))
    mapping = {t.transfer_id: t.payment_ids for t in plan.transfers}
    result = reconcile(answers, known(plan.lines), mapping)
    assert result.refused == ()
    assert sorted((s.payment_id, s.status.value) for s in result.settlements) == [
        (pid(n), "paid") for n in (1, 2, 3, 4)]
    # An aggregated transfer must move exactly the sum of its payments.
    short = [(transfers["alsskolen"].transfer_id, "1234.56", "DKK")]
    answers, _ = parse_camt054(camt054(short, booked_on=DAY))
    assert [r.reason for r in reconcile(answers, known(plan.lines), mapping).refused] == [ImportRefusal.AMOUNT_MISMATCH]


# -- returns -----------------------------------------------------------------------------

def test_a_return_after_booking_in_a_later_file_makes_the_payment_owed_again_and_imports_are_idempotent() -> None:
    plan = plan_payout(PAYABLES[:4], REGISTRY, {}, PayoutFormat.PAIN_001)
    mapping = {t.transfer_id: t.payment_ids for t in plan.transfers}
    jobvejen = next(t for t in plan.transfers if t.first.payee == "jobvejen")
    booked = camt054(transfers_in(pain001(plan.lines, plan.run_id, NOW, DAY, "x")), booked_on=DAY, message_id="N1")
    first = reconcile(parse_camt054(booked)[0], known(plan.lines), mapping)
    assert len(first.settlements) == 4
    # The ledger now holds them: the same notification again is already imported, not refused.
    ledger = {s.payment_id: Known(x.amount_minor, "DKK", PaymentState.PAID, frozenset({s.settlement_id}))
              for s, x in zip(first.settlements, sorted(plan.lines, key=lambda y: y.payment_id), strict=True)}
    ledger = {p: ledger[p] for p in ledger}
    again = reconcile(parse_camt054(booked)[0], ledger, mapping)
    assert (again.settlements, again.refused, len(again.already_imported)) == ((), (), 4)
    # A week later jobvejen's bank sends it back: closed account.
    back = camt054([(jobvejen.transfer_id, "50.00", "DKK")], booked_on=DAY + dt.timedelta(days=7),
                   returned={jobvejen.transfer_id: "AC04"}, book=False, message_id="N2")
    returned = reconcile(parse_camt054(back)[0], ledger, mapping)
    assert [(s.payment_id, s.status.value, s.reason) for s in returned.settlements] == [(pid(4), "returned", "AC04")]
    # A return of a payment that was never booked is refused.
    pending = {p: Known(k.amount_minor, "DKK", PaymentState.PENDING) for p, k in ledger.items()}
    assert [r.reason for r in reconcile(parse_camt054(back)[0], pending, mapping).refused] == [ImportRefusal.NOT_PAID]


def test_the_ledger_takes_paid_returned_paid_again_and_refuses_what_does_not_fit() -> None:
    from shared.domain.events import Settlement

    payment = PaymentInstruction(payment_id=pid(1), kind=PaymentKind.PAYMENT, contract_id="c", contract_version=1,
                                 outcome_id="o", subject="k1:" + "0" * 64, payer=PAYER, payee="alsskolen",
                                 amount_minor=500, currency="DKK", occurred_on=dt.date(2024, 2, 1))

    def settlement(n: int, status: SettlementStatus) -> Settlement:
        return Settlement(settlement_id=f"s{n}", payment_id=pid(1), status=status, settled_on=DAY,
                          bank_reference=f"R{n}", reason=None if status == SettlementStatus.PAID else "AC04")

    records = [payment, settlement(1, SettlementStatus.RETURNED), settlement(2, SettlementStatus.PAID),
               settlement(2, SettlementStatus.PAID), settlement(3, SettlementStatus.RETURNED),
               settlement(4, SettlementStatus.RETURNED), settlement(5, SettlementStatus.PAID),
               settlement(6, SettlementStatus.FAILED)]
    plan = plan_journal(records, {})
    assert [(e.entry_id, e.kind) for e in plan.entries] == [
        (pid(1), "payment"), (f"settlement:{pid(1)}", "settled"), (f"settlement:{pid(1)}:2", "returned"),
        (f"settlement:{pid(1)}:3", "settled")]
    assert [(r.settlement.settlement_id, r.reason) for r in plan.rejected] == [
        ("s1", SettlementRejection.NOT_PAID), ("s4", SettlementRejection.NOT_PAID),
        ("s6", SettlementRejection.ALREADY_SETTLED)]
    assert plan.duplicates == 1
    returned = plan.entries[2]
    assert [(ln.account, ln.debit_minor, ln.credit_minor) for ln in returned.lines] == [
        ("receivable:alsskolen:paid", 500, 0), ("receivable:alsskolen:pending", 0, 500)]
    # Batched differently, the same entries: the store hands over what it holds.
    head = plan_journal(records[:3], {})
    held = {pid(1): KnownPayment(payment, None).applied(records[2])}  # type: ignore[arg-type]
    tail = plan_journal(records[3:], held)
    assert [e.entry_id for e in (*head.entries, *tail.entries)] == [e.entry_id for e in plan.entries]


# -- pain.002 ----------------------------------------------------------------------------

def test_a_pain002_is_read_accepted_rejected_whole_or_per_transaction() -> None:
    plan = plan_payout(PAYABLES[:4], REGISTRY, {}, PayoutFormat.PAIN_001)
    document = pain001(plan.lines, plan.run_id, NOW, DAY, "x")
    jobvejen = next(t for t in plan.transfers if t.first.payee == "jobvejen")
    accepted = parse_pain002(pain002(document, message_id="PSR-1", created_on=DAY))
    assert (accepted.original_message_id, accepted.group_status, accepted.rejected) == (plan.run_id, "ACCP", False)
    part = parse_pain002(pain002(document, message_id="PSR-2", created_on=DAY, rejected={jobvejen.transfer_id: "AC01"}))
    assert [(t.reference, t.rejected, t.reason) for t in part.transactions] == [(jobvejen.transfer_id, True, "AC01")]
    whole = parse_pain002(pain002(document, message_id="PSR-3", created_on=DAY, reject_all="DU01"))
    assert (whole.rejected, whole.group_reason) == (True, "DU01")
    assert sorted(x for ids in blocks_of(document).values() for x in ids) == sorted(t.transfer_id for t in plan.transfers)
    with pytest.raises(Iso20022Error, match=r"not a pain\.002"):
        parse_pain002(document)


# -- internal postings -------------------------------------------------------------------

def test_internal_postings_balance_per_payment_and_per_run_on_the_institutions_cost_centre() -> None:
    plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.POSTINGS)
    assert [x.payment_id for x in plan.lines] == [pid(5), pid(6)]
    assert {p for p, _ in plan.left_out} == {pid(n) for n in (1, 2, 3, 4)}
    chart = load_chart()
    postings = postings_of(plan.lines, chart)
    assert balanced(postings)
    assert sum(p.debit_minor for p in postings) == sum(p.credit_minor for p in postings) == 71_000
    assert {(p.cost_centre, p.cost_type, p.function) for p in postings} == {
        (chart.budget_cost_centre, chart.expense_cost_type, "3.22.01"), ("310200", chart.income_cost_type, "3.22.01")}
    rows = list(csv.DictReader(io.StringIO(postings_csv(plan.lines, plan.run_id, DAY, chart))))
    assert tuple(rows[0]) == POSTING_COLUMNS
    assert sum(int(r["debit_minor"]) - int(r["credit_minor"]) for r in rows) == 0
    assert rows[1]["credit"] == "700.00"
    unknown_kind = [x.__class__(**{**x.__dict__, "payee_kind": "zoo"}) for x in plan.lines]
    with pytest.raises(PostingsError, match="zoo"):
        postings_of(unknown_kind, chart)


def test_an_owned_institution_needs_a_cost_centre() -> None:
    with pytest.raises(ValueError, match="cost_centre"):
        Institution(id="x", name="x", kind="daycare", owned_by=PAYER)


# -- files people open -------------------------------------------------------------------

def test_excel_csv_is_semicolon_separated_with_decimal_commas_and_a_bom() -> None:
    plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.CSV)
    text = payout_csv(plan.lines, plan.run_id, DAY, EXCEL_DA)
    assert text.startswith("\ufeffend_to_end_id;export_id;")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    amounts = {r[0]: r[14] for r in rows[1:]}
    assert amounts[pid(2)] == "234,56"
    assert text.encode("utf-8")[:3] == b"\xef\xbb\xbf"
    assert "Børnehuset" not in text  # no such payee here; names pass through unchanged:
    assert "Alsskolen" in text
    assert style_for(False, "da") == EXCEL_DA
    assert style_for(False, None) == PLAIN
    with pytest.raises(ValueError, match="locale"):
        style_for(False, "fr")


def test_a_remittance_advice_lists_each_payment_of_the_transfer_and_its_total() -> None:
    plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001)
    school = next(t for t in transfers_of(plan.lines) if t.first.payee == "alsskolen")
    rows = list(csv.DictReader(io.StringIO(advice_csv(school, plan.run_id, DAY))))
    assert [r["payment_id"] for r in rows] == [pid(1), pid(2), pid(3), "total"]
    assert sum(int(r["amount_minor"]) for r in rows[:-1]) == int(rows[-1]["amount_minor"]) == 123_457
    files = advice_files(plan.lines, plan.run_id, DAY)
    assert sorted(files) == sorted(f"{t.first.payee}-{t.transfer_id}.{x}" for t in plan.transfers for x in ("csv", "html"))
    assert pid(2).encode() in files[f"alsskolen-{school.transfer_id}.html"]
