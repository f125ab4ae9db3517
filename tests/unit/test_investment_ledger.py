"""The ledger's decisions on investment records (shared/domain/ledger/investments.py): each
record one balanced entry, redeliveries no-ops, bad records refused with a named reason,
a fund kept within its budget and what came back, and the verdict at close."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from shared.domain.investment.position import Repayment
from shared.domain.investment.records import (
    INVESTMENT_RECORD,
    FundEstablished,
    InvestmentClosed,
    InvestmentCommitted,
    InvestmentDisbursed,
    InvestmentRecord,
    SavingsReturned,
)
from shared.domain.ledger.investments import (
    Context,
    InvestmentBook,
    InvestmentEntry,
    InvestmentRefusal,
    investment_entry,
    plan_investments,
)

DAY = dt.date(2022, 1, 3)
INVESTOR, FUND, SIB, PILOT = "nordic-impact-investor", "fund", "sib", "pilot"


def commit(cid: str, amount: int, investor: str = INVESTOR, contract: str = SIB) -> InvestmentCommitted:
    return InvestmentCommitted(commitment_id=cid, investor=investor, provider="jobvejen", contract_id=contract,
                               amount_minor=amount, currency="DKK", committed_on=DAY)


def disburse(did: str, cid: str, amount: int, investor: str = INVESTOR) -> InvestmentDisbursed:
    return InvestmentDisbursed(disbursement_id=did, commitment_id=cid, investor=investor, amount_minor=amount,
                               currency="DKK", disbursed_on=DAY)


def closing(investor: str = INVESTOR, contract: str = SIB, guarantee: int = 0) -> InvestmentClosed:
    return InvestmentClosed(investor=investor, contract_id=contract, closed_on=dt.date(2030, 12, 31),
                            max_return=Decimal("0.20"), guarantor="foundation" if guarantee else None,
                            guarantee_minor=guarantee)


def balances(book_entries: list[InvestmentEntry]) -> dict[str, int]:
    result: dict[str, int] = {}
    for entry in book_entries:
        for line in entry.lines:
            result[line.account] = result.get(line.account, 0) + line.credit_minor - line.debit_minor
    return {k: v for k, v in result.items() if v}


def test_commitment_tranches_and_close_are_balanced_entries_and_the_verdict_is_the_rules() -> None:
    book = InvestmentBook()
    plan = plan_investments([commit("c1", 1000), disburse("d1", "c1", 600), disburse("d2", "c1", 300)], book)
    assert [e.kind for e in plan.entries] == ["investment_committed", "investment_disbursed", "investment_disbursed"]
    book.repayments.append(Repayment(INVESTOR, SIB, dt.date(2024, 1, 1), 500))
    closed = plan_investments([closing(guarantee=100)], book)
    verdict = closed.entries[0].context.verdict
    assert verdict is not None
    assert (verdict.disbursed_minor, verdict.repaid_minor, verdict.loss_minor, verdict.guarantee_minor) == (
        900, 500, 300, 100)
    all_entries = [*plan.entries, *closed.entries]
    for entry in all_entries:
        assert sum(ln.debit_minor for ln in entry.lines) == sum(ln.credit_minor for ln in entry.lines)
    assert balances(all_entries) == {
        f"investor:{INVESTOR}:{SIB}:repaid": -500, f"investor:{INVESTOR}:{SIB}:loss": -300,
        f"guarantee:foundation:{SIB}": -100, "provider:jobvejen:sib:financed": 900}
    # Closed: the undrawn 100 lapsed, and nothing more is taken for this investor and contract.
    after = plan_investments([disburse("d3", "c1", 100), commit("c2", 5)], book)
    assert [r.reason for r in after.refused] == [InvestmentRefusal.ALREADY_CLOSED] * 2


def test_a_redelivery_is_a_no_op_and_an_id_reused_for_other_content_is_refused() -> None:
    book = InvestmentBook()
    plan_investments([commit("c1", 1000), disburse("d1", "c1", 600)], book)
    again = plan_investments([commit("c1", 1000), disburse("d1", "c1", 600), disburse("d1", "c1", 601)], book)
    assert (len(again.entries), again.duplicates) == (0, 2)
    assert [r.reason for r in again.refused] == [InvestmentRefusal.CONFLICTING]


def test_bad_records_are_refused_with_their_reason() -> None:
    book = InvestmentBook()
    plan = plan_investments([
        disburse("d0", "nowhere", 1),
        commit("c1", 1000),
        disburse("d1", "c1", 1001),
        disburse("d2", "c1", 10, investor="someone-else"),
        closing(contract="other"),
        SavingsReturned(return_id="s1", fund=FUND, contract_id=PILOT, payer="kommune", amount_minor=5,
                        currency="DKK", returned_on=DAY),
    ], book)
    assert [r.reason for r in plan.refused] == [
        InvestmentRefusal.UNKNOWN_COMMITMENT, InvestmentRefusal.OVER_COMMITMENT, InvestmentRefusal.INVESTOR_MISMATCH,
        InvestmentRefusal.NOTHING_DISBURSED, InvestmentRefusal.UNKNOWN_FUND]
    assert [e.kind for e in plan.entries] == ["investment_committed"]


def test_a_fund_commits_within_its_budget_plus_what_came_back_and_shows_what_it_recycled() -> None:
    book = InvestmentBook()
    fund = FundEstablished(fund=FUND, payer="kommune", budget_minor=1000, currency="DKK", established_on=DAY)
    plan = plan_investments([fund, commit("p1", 700, FUND, "pilot-1"), disburse("p1-1", "p1", 700, FUND),
                             commit("p2", 400, FUND, "pilot-2")], book)
    assert [r.reason for r in plan.refused] == [InvestmentRefusal.OVER_BUDGET]  # 700 + 400 > 1000
    savings = SavingsReturned(return_id="s1", fund=FUND, contract_id="pilot-1", payer="kommune", amount_minor=250,
                              currency="DKK", returned_on=dt.date(2023, 1, 1))
    book.repayments.append(Repayment(FUND, "pilot-1", dt.date(2023, 6, 1), 300))  # an outcome payment to the fund
    later = plan_investments([savings, commit("p2", 400, FUND, "pilot-2"), disburse("p2-1", "p2", 400, FUND)], book)
    assert later.refused == ()
    from shared.domain.investment.position import fold

    pool = fold(book.records, book.verdicts, book.repayments).funds[0]
    assert (pool.budget_minor, pool.disbursed_minor, pool.received_minor) == (1000, 1100, 550)
    assert (pool.available_minor, pool.recycled_minor) == (450, 100)


def test_an_entry_rebuilds_from_its_stored_record_and_context_alone() -> None:
    book = InvestmentBook()
    plan = plan_investments([commit("c1", 1000), disburse("d1", "c1", 600)], book)
    book.repayments.append(Repayment(INVESTOR, SIB, dt.date(2024, 1, 1), 900))
    entries = [*plan.entries, *plan_investments([closing()], book).entries]
    for entry in entries:
        stored = json.loads(entry.stored())
        record: InvestmentRecord = INVESTMENT_RECORD.validate_python(stored["record"])
        rebuilt = investment_entry(record, Context.from_json(stored["context"]), entry.currency, entry.contract_id)
        assert rebuilt == entry
        assert rebuilt.content_hash() == entry.content_hash()


# ---- whom the ledger believes (services/ledger/authenticity.py) ---------------------------

def test_the_ledger_believes_commitments_from_their_investor_and_the_rest_from_finance() -> None:
    from services.ledger.authenticity import Refused, admit_investment, admit_journal
    from shared.domain.signing import RecordSigner
    from tests.unit.test_signing import TRUST, consumed, forwarded

    topic, journal = "ns.investments.v1", "ns.payments.v1"
    investor, finance = RecordSigner.development(f"investor:{INVESTOR}"), RecordSigner.development("finance:dev")
    fund_key, ledger = RecordSigner.development("investor:sonderborg-social-investment-fund"), \
        RecordSigner.development("service:ledger")
    def reason(admitted: object) -> str:
        assert isinstance(admitted, Refused)
        return admitted.reason

    tranche = disburse("d1", "c1", 600).model_dump_json().encode()
    assert isinstance(admit_investment(consumed(topic, b"k", tranche, investor), TRUST), InvestmentDisbursed)
    for forger in (None, finance, fund_key, ledger):  # unsigned, finance, another investor, a service
        assert reason(admit_investment(consumed(topic, b"k", tranche, forger), TRUST)) == "unauthenticated_investment"
    closed = closing().model_dump_json().encode()
    assert isinstance(admit_investment(consumed(topic, b"k", closed, finance), TRUST), InvestmentClosed)
    assert reason(admit_investment(consumed(topic, b"k", closed, investor), TRUST)) == "unauthenticated_investment"
    malformed = b'{"kind": "investment_disbursed", "amount_minor": -5}'
    assert reason(admit_investment(consumed(topic, b"k", malformed, investor), TRUST)) == "schema_violation"
    # On the journal only the ledger's forwarder is believed: the investor's own signature
    # is for the investments topic.
    assert isinstance(admit_journal(forwarded(journal, b"k", tranche, ledger, consumed(topic, b"k", tranche, investor)),
                                    TRUST), InvestmentDisbursed)
    # ... and only with the investor's signed original: not on the forwarder's key alone.
    assert reason(admit_journal(forwarded(journal, b"k", tranche, ledger, None), TRUST)) == "unauthenticated_investment"
    assert reason(admit_journal(forwarded(journal, b"k", tranche, ledger, consumed(topic, b"k", tranche, finance)),
                                TRUST)) == "unauthenticated_investment"
    assert reason(admit_journal(consumed(journal, b"k", tranche, investor), TRUST)) == "unauthenticated_investment"


def test_the_report_section_shows_the_investor_and_the_fund() -> None:
    from cli.reporting.investors import investors_section
    from shared.domain.investment.position import fold

    book = InvestmentBook()
    fund = FundEstablished(fund=FUND, payer="kommune", budget_minor=1000, currency="DKK", established_on=DAY)
    plan_investments([fund, commit("c1", 1000), disburse("d1", "c1", 1000), commit("p1", 500, FUND, PILOT),
                      disburse("p1-1", "p1", 500, FUND)], book)
    book.repayments.append(Repayment(INVESTOR, SIB, dt.date(2024, 1, 1), 1100))
    plan_investments([closing()], book)
    page = investors_section(fold(book.records, book.verdicts, book.repayments))
    assert "<h2>Investors</h2>" in page
    # 1,100 øre back on 1,000: a return of 1.00 DKK, a multiple of 1.10.
    assert "return 1.00 DKK" in page
    assert "1.10x" in page
    assert "Social investment funds" in page
    assert investors_section(fold([], {}, [])) == ""


def test_the_example_fund_recycles_what_its_pilots_saved() -> None:
    from shared.domain.investment.position import fold
    from shared.platform.settings import REPO_ROOT

    def read(name: str) -> list[InvestmentRecord]:
        path = REPO_ROOT / "examples" / "investments" / name
        return [INVESTMENT_RECORD.validate_json(line) for line in path.read_text(encoding="utf-8").splitlines()]

    established, pilots, savings, recycled = (read(f"fund-{n}.jsonl") for n in
                                              ("1-established", "2-pilots", "3-savings", "4-recycled-pilot"))
    early = InvestmentBook()
    too_soon = plan_investments([*established, *pilots, *recycled], early)
    assert [r.reason for r in too_soon.refused] == [InvestmentRefusal.OVER_BUDGET, InvestmentRefusal.UNKNOWN_COMMITMENT]
    book = InvestmentBook()
    plan = plan_investments([*established, *pilots, *savings, *recycled], book)
    assert plan.refused == ()
    fund = fold(book.records, book.verdicts, book.repayments).funds[0]
    assert (fund.budget_minor, fund.disbursed_minor, fund.received_minor) == (
        30_000_000_00, 34_000_000_00, 9_000_000_00)
    assert (fund.available_minor, fund.recycled_minor, len(fund.pilots)) == (5_000_000_00, 4_000_000_00, 7)
