"""Social investment, pure: the money multiple and IRR on hand-computed cash flows, the
return rule's verdict, and the rule holding across contract versions and when outcomes
fall short (docs/investment.md)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from shared.domain.contracts.book import ContractBook, ReturnRuleChanged
from shared.domain.contracts.loader import ContractFileError, load_contract, parse_contract
from shared.domain.events import PaymentKind
from shared.domain.investment.figures import CashFlow, format_multiple, format_rate, irr, money_multiple, present_value
from shared.domain.investment.position import Repayment, fold
from shared.domain.investment.records import InvestmentClosed, InvestmentCommitted, InvestmentDisbursed, InvestmentRecord
from shared.domain.investment.returns import close
from shared.platform.settings import REPO_ROOT
from tests.unit.test_versions import completed
from tests.verifier_model import InMemoryVerifier

SIB_FILE = REPO_ROOT / "examples" / "contracts" / "sib-youth-education.yaml"
INVESTOR = "nordic-impact-investor"


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# ---- figures on hand-computed cash flows ----------------------------------------------

def test_two_years_at_ten_percent_is_an_irr_of_exactly_ten_percent_and_a_multiple_of_1_21() -> None:
    # 2021-01-01 .. 2023-01-01 is 730 days: exactly two years of 365 days; 100 * 1.1**2 = 121.
    flows = [CashFlow(d("2021-01-01"), -100_000), CashFlow(d("2023-01-01"), 121_000)]
    assert irr(flows) == Decimal("0.100000")
    assert money_multiple(flows) == Fraction(121, 100)
    assert format_multiple(money_multiple(flows)) == "1.21x"
    assert format_rate(irr(flows)) == "10.00 %"


def test_two_tranches_solve_the_quadratic_by_hand() -> None:
    # -100 - 100x + 231x**2 = 0 with x = 1/(1+r): x = (100 + 320)/462 = 10/11, r = 10 %.
    flows = [CashFlow(d("2021-01-01"), -100), CashFlow(d("2022-01-01"), -100), CashFlow(d("2023-01-01"), 231)]
    assert irr(flows) == Decimal("0.100000")
    assert money_multiple(flows) == Fraction(231, 200)


def test_a_loss_of_half_in_one_year_is_minus_fifty_percent() -> None:
    flows = [CashFlow(d("2021-01-01"), -200_00), CashFlow(d("2022-01-01"), 100_00)]
    assert irr(flows) == Decimal("-0.500000")
    assert money_multiple(flows) == Fraction(1, 2)


def test_a_total_loss_is_minus_one_hundred_percent_and_nothing_paid_out_has_no_figures() -> None:
    assert irr([CashFlow(d("2021-01-01"), -5)]) == Decimal("-1.000000")
    assert money_multiple([CashFlow(d("2021-01-01"), -5)]) == 0
    assert irr([CashFlow(d("2021-01-01"), 5)]) is None
    assert money_multiple([CashFlow(d("2021-01-01"), 5)]) is None
    assert irr([]) is None


def test_the_irr_zeroes_the_present_value_to_its_stated_precision() -> None:
    # Uneven days (a leap year inside): no closed form, so check the defining property.
    flows = [CashFlow(d("2021-03-15"), -2_000_000_00), CashFlow(d("2023-08-01"), 600_000_00),
             CashFlow(d("2024-02-29"), 900_000_00), CashFlow(d("2026-01-01"), 900_000_00)]
    rate = irr(flows)
    assert rate is not None
    step = Decimal("0.000001")
    assert present_value(flows, rate - step) > 0 > present_value(flows, rate + step)


# ---- the return rule --------------------------------------------------------------------

def test_the_return_is_capped_by_the_rule_and_anything_beyond_is_owed_back() -> None:
    at_cap = close(2_000_000_00, 2_400_000_00, Decimal("0.20"))
    assert (at_cap.return_minor, at_cap.loss_minor, at_cap.owed_back_minor) == (400_000_00, 0, 0)
    beyond = close(1_500_000_00, 2_400_000_00, Decimal("0.20"))
    assert (beyond.return_minor, beyond.owed_back_minor, beyond.recovered_minor) == (
        300_000_00, 600_000_00, 1_800_000_00)


def test_a_shortfall_is_the_investors_loss_less_the_first_loss_guarantee() -> None:
    short = close(2_000_000_00, 1_200_000_00, Decimal("0.20"))
    assert (short.return_minor, short.loss_minor, short.guarantee_minor) == (0, 800_000_00, 0)
    guaranteed = close(2_000_000_00, 1_200_000_00, Decimal("0.20"), guarantee_minor=500_000_00)
    assert (guaranteed.loss_minor, guaranteed.guarantee_minor) == (300_000_00, 500_000_00)
    covered = close(2_000_000_00, 1_900_000_00, Decimal("0.20"), guarantee_minor=500_000_00)
    assert (covered.loss_minor, covered.guarantee_minor) == (0, 100_000_00)


def test_the_allowed_return_rounds_down_in_the_payers_favour() -> None:
    assert close(333, 400, Decimal("0.1")).return_minor == 33
    assert close(333, 400, Decimal("0.1")).owed_back_minor == 34


# ---- the rule in the contract, across versions ------------------------------------------

def sib(version: int = 1, *, price: int = 6_000_000, cap: int = 240_000_000, max_return: str = "0.20",
        effective_from: str | None = None) -> str:
    text = SIB_FILE.read_text(encoding="utf-8").replace("version: 1", f"version: {version}")
    text = text.replace("amount_minor: 6000000", f"amount_minor: {price}")
    text = text.replace("total_minor: 240000000", f"total_minor: {cap}")
    text = text.replace('max_return: "0.20"', f'max_return: "{max_return}"')
    return text + (f"effective_from: {effective_from}\n" if effective_from else "")


def test_the_example_sib_carries_its_return_rule_as_its_cap() -> None:
    contract = load_contract(SIB_FILE)
    assert contract.investment is not None
    assert contract.investment.cap_minor == contract.caps.total_minor == 240_000_000


def test_a_cap_above_principal_plus_the_allowed_return_is_refused() -> None:
    with pytest.raises(ContractFileError, match="principal plus the allowed return"):
        parse_contract(sib(cap=240_000_001))
    with pytest.raises(ContractFileError, match="one budget across versions"):
        parse_contract(sib().replace("total_minor: 240000000", "total_minor: 240000000\n  budget: per_version"))
    with pytest.raises(ContractFileError, match="pays the investor"):
        parse_contract(sib().replace("institution: nordic-impact-investor}", "institution: jobvejen}"))


def test_a_second_version_may_not_raise_the_return_rule() -> None:
    book = ContractBook.of([parse_contract(sib(1))])
    with pytest.raises(ReturnRuleChanged, match="changes the return rule"):
        book.add(parse_contract(sib(2, max_return="0.50", cap=300_000_000, effective_from="2024-01-01")))
    with pytest.raises(ReturnRuleChanged):
        book.add(parse_contract(sib(2, effective_from="2024-01-01").split("# The return rule")[0]))  # dropped
    assert book.add(parse_contract(sib(2, price=9_000_000, effective_from="2024-01-01")))  # same rule: fine


def test_a_repriced_second_version_still_pays_the_investor_no_more_than_the_rule() -> None:
    v1, v2 = parse_contract(sib(1)), parse_contract(sib(2, price=9_000_000, effective_from="2024-01-01"))
    live = InMemoryVerifier(ContractBook.of([v1, v2]), {})
    live.batch([completed(n, "2023-06-01") for n in range(20)] + [completed(n, "2024-06-01") for n in range(20, 60)],
               [dt.date(2025, 1, 1)])
    live.drain()
    paid = sum(live.net_by_payee().values())
    assert v1.investment is not None
    assert paid == v1.investment.cap_minor  # 20 * 60,000 + 40 * 90,000 would be 4,800,000
    assert {payee for (_, _, payee) in live.net_by_payee()} == {INVESTOR}


def test_a_sib_whose_outcomes_fall_short_ends_in_the_investors_loss_and_no_more_from_the_payer() -> None:
    contract = load_contract(SIB_FILE)
    live = InMemoryVerifier(ContractBook.of([contract]), {})
    live.batch([completed(n, "2023-06-01") for n in range(12)], [dt.date(2025, 1, 1)])  # 12 of the hoped-for 40
    live.drain()
    instructions = live.published
    assert all(i.payee == INVESTOR and i.kind == PaymentKind.PAYMENT for i in instructions)
    paid_by_municipality = sum(i.amount_minor for i in instructions)
    assert paid_by_municipality == 12 * 6_000_000
    records: list[InvestmentRecord] = [
        InvestmentCommitted(commitment_id="nii-sib", investor=INVESTOR, provider="jobvejen",
                            contract_id=contract.contract_id, amount_minor=200_000_000, currency="DKK",
                            committed_on=d("2021-01-01")),
        InvestmentDisbursed(disbursement_id="nii-sib-1", commitment_id="nii-sib", investor=INVESTOR,
                            amount_minor=120_000_000, currency="DKK", disbursed_on=d("2021-01-04")),
        InvestmentDisbursed(disbursement_id="nii-sib-2", commitment_id="nii-sib", investor=INVESTOR,
                            amount_minor=80_000_000, currency="DKK", disbursed_on=d("2022-01-03")),
        InvestmentClosed(investor=INVESTOR, contract_id=contract.contract_id, closed_on=d("2031-01-01"),
                         max_return=Decimal("0.20")),
    ]
    repayments = [Repayment(INVESTOR, i.contract_id, i.occurred_on, i.amount_minor) for i in instructions]
    verdict = close(200_000_000, paid_by_municipality, Decimal("0.20"))
    position = fold(records, {(INVESTOR, contract.contract_id): verdict}, repayments).investors[0]
    assert (position.committed_minor, position.disbursed_minor, position.repaid_minor) == (
        200_000_000, 200_000_000, 72_000_000)
    assert (verdict.loss_minor, verdict.return_minor, verdict.guarantee_minor) == (128_000_000, 0, 0)
    assert position.multiple == Fraction(72, 200)
    assert position.irr is not None
    assert position.irr < 0
