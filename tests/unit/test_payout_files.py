"""Payout files and bank answers, pure: pain.001 against the ISO 20022 schema, what a
payout leaves out and never repeats, camt.054 and CSV answers reconciled with reason codes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from lxml import etree

from shared.domain.finance.bank_csv import PAYOUT_COLUMNS, parse_settlement_csv, payout_csv
from shared.domain.finance.iso20022 import PAIN_001, XSD_DIR, Iso20022Error, pain001, parse_camt054, validate
from shared.domain.finance.money import AmountError, to_decimal_text, to_minor
from shared.domain.finance.payouts import LeftOut, Payable, PayoutFormat, plan_payout, transfer_id_of
from shared.domain.finance.settlements import AnswerStatus, ImportRefusal, Known, PaymentState, reconcile, settlement_id_of
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT
from tests.bank import camt054, transfers_of

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
NOW = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)


def pid(n: int) -> str:
    return f"{n:032x}"


def payable(n: int, payee: str, amount_minor: int, payer: str = "sonderborg-kommune") -> Payable:
    return Payable(pid(n), "mobility-bonus", "school_ready", payer, payee, amount_minor, "DKK", dt.date(2024, 2, n))


PAYABLES = [payable(1, "alsskolen", 123_456), payable(2, "jobvejen", 1), payable(3, "alsvaerket", 50_000),
            payable(4, "unknown-school", 700), payable(5, "nordborg-skole", 99_999_999)]


def test_a_generated_pain001_validates_against_the_iso_schema_and_names_every_payment() -> None:
    plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001)
    document = pain001(plan.lines, plan.export_id, NOW, dt.date(2024, 3, 4), "Sønderborg Kommune")
    # Validated here with the checked-in XSD directly, not only by the writer's own check.
    schema = etree.XMLSchema(etree.parse(str(XSD_DIR / "pain.001.001.03.xsd")))
    root = etree.fromstring(document)
    assert schema.validate(root), schema.error_log
    transfers = transfers_of(document)
    # One transfer per payee: its end-to-end id derived from the payment it settles.
    assert transfers == [(transfer_id_of([pid(1)]), "1234.56", "DKK"), (transfer_id_of([pid(2)]), "0.01", "DKK"),
                         (transfer_id_of([pid(5)]), "999999.99", "DKK")]
    ns = {"p": PAIN_001}
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=ns) == "1001234.56"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=ns) == plan.export_id
    assert root.findtext(".//p:DbtrAcct/p:Id/p:IBAN", namespaces=ns) == REGISTRY.get("sonderborg-kommune").iban
    assert [x.text for x in root.iterfind(".//p:Strd/p:RfrdDocInf/p:Nb", ns)] == [pid(1), pid(2), pid(5)]


def test_a_payout_leaves_out_what_it_cannot_pay_with_a_reason() -> None:
    pain = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001)
    assert dict(pain.left_out) == {pid(3): LeftOut.PAYEE_NOT_BANK_TRANSFER, pid(4): LeftOut.PAYEE_NOT_REGISTERED}
    csv_plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.CSV)  # without a bank profile, NemKonto goes in the CSV
    assert [x.payment_id for x in csv_plan.lines] == [pid(1), pid(2), pid(3), pid(5)]
    no_payer_account = plan_payout([payable(6, "alsskolen", 10, payer="exam-authority")], REGISTRY, {},
                                   PayoutFormat.PAIN_001)
    assert no_payer_account.left_out == ((pid(6), LeftOut.PAYER_WITHOUT_IBAN),)


def test_a_payment_already_exported_is_never_in_another_file() -> None:
    first = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001)
    exported = {x.payment_id: first.export_id for x in first.lines}
    again = plan_payout([*PAYABLES, payable(7, "alsskolen", 5)], REGISTRY, exported, PayoutFormat.CSV)
    assert [x.payment_id for x in again.lines] == [pid(3), pid(7)]
    assert dict(again.already_exported) == dict.fromkeys([pid(1), pid(2), pid(5)], first.export_id)
    assert again.export_id != first.export_id


def test_the_payout_csv_carries_the_payment_id_and_exact_amounts() -> None:
    plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.CSV)
    rows = [line.split(",") for line in payout_csv(plan.lines, plan.export_id, dt.date(2024, 3, 4)).splitlines()]
    assert {row[-1] for row in rows[1:]} == {x.transfer_id for x in plan.lines}
    assert tuple(rows[0]) == PAYOUT_COLUMNS
    by_id = {row[0]: dict(zip(PAYOUT_COLUMNS, row, strict=True)) for row in rows[1:]}
    assert by_id[pid(1)]["amount"] == "1234.56"
    assert by_id[pid(1)]["amount_minor"] == "123456"
    assert by_id[pid(3)]["payment_method"] == "nemkonto"
    assert by_id[pid(3)]["payee_cvr"] == REGISTRY.get("alsvaerket").cvr


@pytest.mark.parametrize(("text", "currency", "minor"), [("1234.56", "DKK", 123_456), ("0.1", "DKK", 10),
                                                         ("12", "ISK", 12), ("1e2", "DKK", 10_000),
                                                         ("1.234", "BHD", 1_234), ("123456789012.34", "EUR",
                                                                                   12_345_678_901_234)])
def test_decimal_amounts_convert_exactly(text: str, currency: str, minor: int) -> None:
    assert to_minor(text, currency) == minor
    assert Decimal(to_decimal_text(minor, currency)) == Decimal(text)


@pytest.mark.parametrize(("text", "currency"), [("1.005", "DKK"), ("-1", "DKK"), ("x", "DKK"), ("1", "XYZ"),
                                                ("NaN", "DKK"), ("0.5", "ISK")])
def test_inexact_or_odd_amounts_are_refused(text: str, currency: str) -> None:
    with pytest.raises(AmountError):
        to_minor(text, currency)


def ledger(amount_minor: int, currency: str = "DKK", state: PaymentState = PaymentState.PENDING,
           settlement_ids: frozenset[str] = frozenset()) -> Known:
    return Known(amount_minor, currency, state, settlement_ids)


def test_a_camt054_books_paid_and_returned_and_refuses_the_rest_with_reason_codes() -> None:
    document = camt054([(pid(1), "1234.56", "DKK"), (pid(2), "0.01", "DKK"), (pid(5), "1.00", "DKK"),
                        (pid(8), "5.00", "DKK"), ("SALARY-2024-02", "9.00", "DKK"), (pid(1), "1234.56", "DKK"),
                        (pid(9), "1.00", "DKK")],
                       booked_on=dt.date(2024, 3, 5), returned={pid(2): "AC04"})
    answers, skipped = parse_camt054(document)
    assert skipped == []
    known = {pid(1): ledger(123_456), pid(2): ledger(1), pid(5): ledger(99_999_999),
             pid(9): ledger(100, state=PaymentState.PAID)}
    result = reconcile(answers, known)
    # pid(2) is booked, then returned in the same notification: paid, then owed again.
    assert [(s.payment_id, s.status.value, s.bank_reference, s.reason) for s in result.settlements] == [
        (pid(1), "paid", "BANK-NTFCTN-1-000001", None), (pid(2), "paid", "BANK-NTFCTN-1-000002", None),
        (pid(2), "returned", "BANK-NTFCTN-1-000008", "AC04")]
    assert all(s.settlement_id == settlement_id_of(s.payment_id, AnswerStatus(s.status.value), s.bank_reference or "")
               for s in result.settlements)
    assert all(s.settled_on == dt.date(2024, 3, 5) for s in result.settlements)
    assert [(r.end_to_end_id, r.reason) for r in result.refused] == [
        (pid(5), ImportRefusal.AMOUNT_MISMATCH), (pid(8), ImportRefusal.UNKNOWN_PAYMENT),
        ("SALARY-2024-02", ImportRefusal.UNKNOWN_PAYMENT), (pid(1), ImportRefusal.ALREADY_SETTLED),
        (pid(9), ImportRefusal.ALREADY_SETTLED)]


def test_a_file_that_is_not_a_valid_camt054_is_refused_naming_the_problem() -> None:
    with pytest.raises(Iso20022Error, match="not well-formed"):
        parse_camt054(b"<Document>")
    with pytest.raises(Iso20022Error, match=r"not a camt\.054"):
        parse_camt054(pain001(plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001).lines, "M1", NOW,
                              dt.date(2024, 3, 4), "x"))
    broken = camt054([(pid(1), "1.00", "DKK")], booked_on=dt.date(2024, 3, 5)).replace(b"<Sts>BOOK", b"<Sts>BOOKED")
    with pytest.raises(Iso20022Error, match="line"):
        validate(broken, "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02")
    with pytest.raises(Iso20022Error, match="DOCTYPE"):
        parse_camt054(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                      b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">&x;</Document>')


def test_a_settlement_csv_is_read_line_by_line_with_problems_named() -> None:
    text = ("end_to_end_id,status,booked_on,amount,currency,bank_reference,reason\n"
            f"{pid(1)},paid,2024-03-05,1234.56,DKK,REF-1,\n"
            f"{pid(2)},failed,2024-03-05,0.01,DKK,,AC04\n"
            f"{pid(3)},paid,2024-03-05,1.001,DKK,REF-3,\n"
            f"{pid(4)},paid,yesterday,1.00,DKK,REF-4,\n"
            f"{pid(5)},paid,2024-03-05,1.00,DKK,,\n"
            f"{pid(6)},maybe,2024-03-05,1.00,DKK,REF-6,\n"
            f"{pid(7)},returned,2024-03-06,1.00,DKK,REF-7,MD07\n")
    answers, problems = parse_settlement_csv(text)
    assert [(a.end_to_end_id, a.status, a.amount_minor) for a in answers] == [
        (pid(1), AnswerStatus.PAID, 123_456), (pid(2), AnswerStatus.FAILED, 1), (pid(7), AnswerStatus.RETURNED, 100)]
    assert [line for line, _ in problems] == [4, 5, 6, 7]
    assert "more decimals" in problems[0][1]
    assert "not a date" in problems[1][1]
    assert "needs a bank_reference" in problems[2][1]
    assert "not paid, failed or returned" in problems[3][1]


def test_the_example_bank_files_in_the_readme_are_valid() -> None:
    answers, skipped = parse_camt054((REPO_ROOT / "examples" / "finance" / "camt054.xml").read_bytes())
    assert [(a.status.value, a.amount_minor, a.reason) for a in answers] == [
        ("paid", 123_456, None), ("paid", 10_000, None), ("returned", 10_000, "AC04")]
    assert skipped == []
    csv_answers, problems = parse_settlement_csv((REPO_ROOT / "examples" / "finance" / "settlements.csv").read_text())
    assert problems == []
    assert [(a.end_to_end_id, a.status) for a in csv_answers] == [(a.end_to_end_id, a.status) for a in answers]
