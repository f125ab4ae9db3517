"""`stafet audit`'s comparison: every instruction in the ledger must be yielded by the signed
facts, and every one they yield must be in the ledger (cli/audit.py)."""

from __future__ import annotations

import datetime as dt

from cli.audit import compare
from shared.domain.contracts.indicator_outcomes import POPULATION_PREFIX
from shared.domain.events import PaymentInstruction, PaymentKind


def _instruction(n: int, amount_minor: int = 1000, payee: str = "alsskolen", subject: str = "k1:" + "1" * 64,
                 kind: PaymentKind = PaymentKind.PAYMENT) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=f"{n:032x}", kind=kind, contract_id="pbr", contract_version=1, outcome_id="job", subject=subject,
        payer="sonderborg-kommune", payee=payee, amount_minor=amount_minor, currency="DKK",
        occurred_on=dt.date(2024, 1, 2), reverses_payment_id=f"{n - 1:032x}" if kind == PaymentKind.CLAWBACK else None)


def test_the_same_instructions_agree() -> None:
    both = [_instruction(1), _instruction(2, 500, "jobvejen")]
    report = compare(both, list(reversed(both)))
    assert report.ok
    assert (report.in_ledger, report.from_facts) == (2, 2)


def test_an_instruction_no_fact_yields_and_one_the_ledger_lacks_are_named() -> None:
    report = compare([_instruction(1), _instruction(9, 75_000_00)], [_instruction(1), _instruction(2)])
    assert not report.ok
    assert len(report.not_from_facts) == 1
    assert report.not_from_facts[0].startswith(f"{9:032x}: payment 7500000 DKK")
    assert report.not_from_facts[0].endswith("no fact yields it")
    assert report.missing == (f"{2:032x}: payment 1000 DKK (minor units) sonderborg-kommune -> alsskolen, pbr@v1 job",)


def test_an_instruction_the_facts_yield_otherwise_is_named() -> None:
    raised, redirected = _instruction(1, 1_000_000), _instruction(2, payee="made-up-payee")
    report = compare([raised, redirected], [_instruction(1), _instruction(2)])
    assert [line.split(":")[0] for line in report.not_from_facts] == [f"{1:032x}", f"{2:032x}"]
    assert all("yielded otherwise" in line for line in report.not_from_facts)
    assert report.missing == ()


def test_indicator_instructions_compare_by_their_net_per_payee() -> None:
    population = POPULATION_PREFIX + "ab" * 32
    ledger = [_instruction(1, 300, subject=population), _instruction(2, 200, subject=population)]
    facts = [_instruction(7, 500, subject=population)]  # another path to the same net
    assert compare(ledger, facts).ok
    more = compare([*ledger, _instruction(3, 1, subject=population)], facts)
    assert more.not_from_facts == ("net pbr/job/alsskolen/institution: ledger 501, facts 500 (minor units)",)
