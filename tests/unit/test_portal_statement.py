"""An institution's statement and a line opened: states, totals, and only its own part."""

from __future__ import annotations

import datetime as dt

from services.frontdoor.portal.drilldown import line_detail
from services.frontdoor.portal.statement import (
    LedgerRow,
    OutcomeNow,
    PaymentState,
    PayoutRow,
    assemble,
    statement_lines,
)
from shared.domain.contracts.loader import load_contract
from shared.platform.settings import REPO_ROOT
from tests.unit.builders import SUBJECT, enrolled, left, transition

MOBILITY = load_contract(REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml")


def row(kind: str, payment_id: str, amount: int, on: str = "2023-06-23", reverses: str | None = None,
        contract: str = "mobility-bonus", **settlement: object) -> LedgerRow:
    return LedgerRow(kind, payment_id, reverses, contract, 1, "youth-education-completed", SUBJECT, "DKK",
                     amount, dt.date.fromisoformat(on), **settlement)  # type: ignore[arg-type]


def test_each_instruction_is_one_line_in_the_state_its_settlement_and_payout_put_it() -> None:
    rows = [
        row("payment", "p1", 1000), row("payment", "p2", 2000), row("payment", "p3", 3000),
        row("payment", "p4", 4000, on="2023-07-02"),
        row("settled", "p1", 1000, settled_on=dt.date(2023, 8, 1), bank_reference="BANK-1"),
        row("failed", "p2", 2000, settled_on=dt.date(2023, 8, 2), failure_reason="AC04"),
        row("clawback", "c4", 4000, on="2023-09-01", reverses="p4"),
    ]
    payouts = {"p3": PayoutRow("p3", "STAFET-1", dt.date(2023, 8, 3))}
    outcomes = {"p4": OutcomeNow("rejected", "evidence_withdrawn", 0)}
    lines = statement_lines(rows, payouts, outcomes)
    assert [(x.payment_id, x.state, x.amount_minor, x.reference) for x in lines] == [
        ("p1", PaymentState.PAID, 1000, "BANK-1"),
        ("p2", PaymentState.REFUSED, 2000, "AC04"),
        ("p3", PaymentState.IN_PAYOUT, 3000, "STAFET-1"),
        ("p4", PaymentState.PENDING, 4000, ""),
        ("c4", PaymentState.ADJUSTMENT, -4000, ""),
    ]
    assert lines[4].adjustment_reason == "evidence_withdrawn"
    assert lines[4].reverses_payment_id == "p4"
    statement = assemble("alsskolen", lines)
    # The refused payment is void (the ledger put it back in the budget): not in the total.
    assert [(t.key, t.amount_minor) for t in statement.total] == [((), 4000)]
    by_state = {t.key[0]: t.amount_minor for t in statement.totals_by_state}
    assert by_state == {"paid": 1000, "refused": 2000, "in_payout": 3000, "pending": 4000, "adjustment": -4000}
    by_month = {t.key: t.amount_minor for t in statement.totals_by_month_and_contract}
    assert by_month == {("2023-06", "mobility-bonus"): 4000, ("2023-07", "mobility-bonus"): 4000,
                        ("2023-09", "mobility-bonus"): -4000}


def test_a_clawback_whose_outcome_still_holds_says_the_amount_was_recomputed() -> None:
    rows = [row("payment", "p1", 1000), row("clawback", "c1", 1000, reverses="p1")]
    lines = statement_lines(rows, {}, {"p1": OutcomeNow("verified", None, 800)})
    assert lines[1].adjustment_reason == "amount_recomputed"
    assert statement_lines(rows, {}, {})[1].adjustment_reason == "outcome_unknown"


def chain() -> list:  # type: ignore[type-arg]
    """Worked example 2's chain (DOMAIN.md): daycare, two schools, a college, then the exam."""
    return [
        enrolled("a-1", "2005-08-01", "bornehuset-solsikken", "daycare"),
        left("a-2", "2010-07-31", "bornehuset-solsikken", "daycare"),
        enrolled("a-3", "2010-08-01", "alsskolen"), left("a-4", "2017-06-30", "alsskolen"),
        enrolled("a-5", "2017-08-15", "nordborg-skole"), left("a-6", "2020-06-26", "nordborg-skole"),
        enrolled("a-8", "2020-08-10", "sonderborg-gymnasium", "youth_education"),
        left("a-9", "2023-06-23", "sonderborg-gymnasium", "youth_education"),
        transition("a-10", "2023-06-23", "exam-authority", "exam_authority",
                   {"type": "education_completed", "programme": "stx", "level": "youth"}),
    ]


DECISION = {"status": "verified", "reason": None, "occurred_on": "2023-06-23", "owed_minor": 3_531_477,
            "payees": [["alsskolen", 1_383_014], ["bornehuset-solsikken", 1_000_000],
                       ["nordborg-skole", 573_432], ["sonderborg-gymnasium", 574_031]]}


def test_a_line_opened_shows_the_institutions_own_stay_days_and_share_and_nothing_of_the_others() -> None:
    line = statement_lines([row("payment", "p1", 1_383_014)], {}, {})[0]
    detail = line_detail(line, "alsskolen", DECISION, MOBILITY, chain())
    assert [(s.start, s.end, s.event_ids) for s in detail.stays] == [
        (dt.date(2010, 8, 1), dt.date(2017, 6, 30), ("a-3", "a-4"))]
    assert [e.event_id for e in detail.events] == ["a-3", "a-4"]
    assert detail.days_counted == (dt.date(2017, 6, 30) - dt.date(2010, 8, 1)).days + 1
    assert (detail.own_minor, detail.others_minor, detail.outcome_total_minor) == (1_383_014, 2_148_463, 3_531_477)
    assert detail.contract_title == "Social mobility bonus, youth education completed"
    assert detail.outcome_description == "Completed a youth education before age 25"
    assert detail.counts_on == dt.date(2023, 6, 23)
    # Nothing in it names another institution or its events.
    text = repr(detail)
    for other in ("bornehuset-solsikken", "nordborg-skole", "sonderborg-gymnasium", "exam-authority", SUBJECT):
        assert other not in text
    assert {e.event_id for e in detail.events} | {i for s in detail.stays for i in s.event_ids} == {"a-3", "a-4"}


def test_only_the_weighted_years_up_to_the_outcome_count_as_days() -> None:
    # The college's stay runs to the day of the outcome; a stay still open counts up to it too.
    line = statement_lines([row("payment", "p1", 574_031)], {}, {})[0]
    stays = [*chain()[:-2], transition("a-10", "2023-06-23", "exam-authority", "exam_authority",
                                       {"type": "education_completed", "programme": "stx", "level": "youth"})]
    detail = line_detail(line, "sonderborg-gymnasium", DECISION, MOBILITY, stays)
    assert detail.stays[0].end is None
    assert detail.days_counted == (dt.date(2023, 6, 23) - dt.date(2020, 8, 10)).days + 1
    # Without the contract (no weighted years known) the stay up to the outcome still counts.
    assert line_detail(line, "sonderborg-gymnasium", DECISION, None, stays).days_counted == detail.days_counted


def test_a_payment_the_bank_returned_after_booking_is_returned_with_its_reason() -> None:
    rows = [row("payment", "p1", 1000),
            row("settled", "p1", 1000, settled_on=dt.date(2023, 8, 1), bank_reference="BANK-1"),
            row("returned", "p1", 1000, settled_on=dt.date(2023, 8, 9), bank_reference="BANK-2", failure_reason="AC04")]
    (line,) = statement_lines(rows, {}, {})
    assert (line.state, line.reference, line.state_on) == (PaymentState.RETURNED, "AC04", dt.date(2023, 8, 9))


def test_a_provisional_outcome_is_the_institutions_part_with_the_days_left_until_it_is_final() -> None:
    from services.frontdoor.portal.statement import provisional_line

    decision = {**DECISION, "status": "pending_review", "contract_id": "mobility-bonus", "contract_version": 1,
                "outcome_id": "youth-education-completed", "currency": "DKK"}
    line = provisional_line("r" * 32, "alsskolen", decision, 15, dt.date(2023, 6, 30))
    assert line is not None
    assert (line.counts_on, line.decided_on, line.days_left) == (dt.date(2023, 6, 23), dt.date(2023, 7, 8), 8)
    assert (line.own_minor, line.others_minor) == (1_383_014, 3_531_477 - 1_383_014)
    # Past the decision date (the verifier has not decided it yet): no days left, never negative.
    assert provisional_line("r" * 32, "alsskolen", decision, 15, dt.date(2023, 7, 20)).days_left == 0  # type: ignore[union-attr]
    assert provisional_line("r" * 32, "jobvejen", decision, 15, dt.date(2023, 6, 30)) is None
