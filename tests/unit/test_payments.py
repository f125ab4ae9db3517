"""Deterministic payment ids, clawbacks and contract-wide caps."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from hashlib import sha256

from shared.domain.contracts.evaluation import OutcomeDecision, OutcomeStatus, PayeeAmount
from shared.domain.contracts.payments import (
    Cause,
    IssuedInstruction,
    apply_grants,
    budget_requests,
    clawback_id,
    derived_from,
    desired_instructions,
    grant_budget,
    instruction_outcome_key,
    payment_id,
    reconcile,
)
from shared.domain.events import PaymentInstruction, PaymentKind
from tests.unit.builders import HEADER, SUBJECT, contract

CONTRACT = contract(HEADER + """
outcomes:
  - id: o
    trigger: {event: enrolled}
    price: {kind: fixed, amount_minor: 100}
    distribution: {kind: direct, payee: {role: previous_institution}}
caps: {total_minor: 250}
""")


def decision(trigger: str, amount: int = 100, payee: str = "school",
             subject: str = SUBJECT) -> OutcomeDecision:
    return OutcomeDecision("test", 1, "o", subject, trigger, "reporter", OutcomeStatus.VERIFIED,
                           None, dt.date(2024, 1, 1), amount, (PayeeAmount(payee, amount),))


def test_payment_ids_are_deterministic_across_evaluations() -> None:
    first = desired_instructions(CONTRACT, [decision("t1")])
    again = desired_instructions(CONTRACT, [decision("t1")])
    assert [i.payment_id for i in first] == [i.payment_id for i in again]
    assert first[0].payment_id != desired_instructions(CONTRACT, [decision("t2")])[0].payment_id


def test_reconcile_issues_nothing_twice() -> None:
    wanted = desired_instructions(CONTRACT, [decision("t1")])
    assert reconcile(wanted, wanted) == []


def test_a_withdrawn_outcome_is_clawed_back_and_nets_the_payee_to_zero() -> None:
    issued = desired_instructions(CONTRACT, [decision("t1")])
    clawbacks = reconcile([], issued)
    assert [c.kind for c in clawbacks] == [PaymentKind.CLAWBACK]
    assert clawbacks[0].reverses_payment_id == issued[0].payment_id
    assert clawbacks[0].amount_minor == issued[0].amount_minor
    assert reconcile([], issued + clawbacks) == []


def test_an_amended_amount_moves_only_the_difference_under_an_id_of_its_correcting_event() -> None:
    issued = desired_instructions(CONTRACT, [decision("t1", 100)])
    key = f"test|o|{SUBJECT}|t1"
    lower = reconcile(desired_instructions(CONTRACT, [decision("t1", 80)]), issued,
                      {key: Cause("correction", "amend-1")})
    assert [(c.kind, c.amount_minor, c.reverses_payment_id) for c in lower] == \
        [(PaymentKind.CLAWBACK, 20, issued[0].payment_id)]
    assert lower[0].payment_id == clawback_id(issued[0].payment_id, "amend-1", 1)
    higher = reconcile(desired_instructions(CONTRACT, [decision("t1", 130)]), issued + lower,
                       {key: Cause("correction", "late-2")})
    assert [(c.kind, c.amount_minor) for c in higher] == [(PaymentKind.PAYMENT, 50)]
    assert higher[0].payment_id not in {i.payment_id for i in issued + lower}
    # The unchanged 80 is never reversed and re-issued; the net is the new amount.
    history = issued + lower + higher
    assert sum(i.amount_minor if i.kind == PaymentKind.PAYMENT else -i.amount_minor for i in history) == 130
    assert reconcile(desired_instructions(CONTRACT, [decision("t1", 130)]), history) == []


def test_a_payment_owed_again_after_its_clawback_gets_a_new_id() -> None:
    issued = desired_instructions(CONTRACT, [decision("t1")])
    history = issued + reconcile([], issued)
    again = reconcile(issued, history)
    assert len(again) == 1
    assert again[0].payment_id not in {i.payment_id for i in history}


def test_total_cap_pays_what_fits_and_caps_the_rest() -> None:
    decisions = [decision("t", subject=f"k1:{n:064x}") for n in range(4)]
    grants = grant_budget(budget_requests(CONTRACT, decisions))
    results = apply_grants(decisions, grants)
    assert [r.owed_minor for r in results] == [100, 100, 50, 0]
    assert results[-1].status == OutcomeStatus.CAPPED
    assert sum(grants.values()) == 250


def test_a_withdrawn_outcome_releases_its_share_of_the_total_cap() -> None:
    others = [decision("t", subject=f"k1:{n:064x}") for n in range(1, 4)]
    with_first = grant_budget(budget_requests(CONTRACT, [decision("t1"), *others]))
    without_first = grant_budget(budget_requests(CONTRACT, others))
    assert sorted(with_first.values()) == [0, 50, 100, 100]
    assert sorted(without_first.values()) == [50, 100, 100]


def test_per_year_cap_limits_each_calendar_year_separately() -> None:
    yearly = contract(HEADER + """
outcomes:
  - id: o
    trigger: {event: enrolled}
    price: {kind: fixed, amount_minor: 100}
    distribution: {kind: direct, payee: {role: previous_institution}}
caps: {per_period: {period: calendar_year, amount_minor: 150}}
""")
    dated = [OutcomeDecision("test", 1, "o", f"k1:{n:064x}", "t", "reporter", OutcomeStatus.VERIFIED, None,
                             dt.date(year, 3, 1), 100, (PayeeAmount("school", 100),))
             for n, year in enumerate([2024, 2024, 2025, 2025])]
    owed = [d.owed_minor for d in apply_grants(dated, grant_budget(budget_requests(yearly, dated)))]
    assert owed == [100, 50, 100, 50]


def test_a_payment_id_is_derived_from_contract_outcome_subject_and_payee_not_the_version() -> None:
    base = decision("t1")
    ids = {
        payment_id(base, "school", "institution"),
        payment_id(base, "college", "institution"),  # another payee of the same outcome
        payment_id(replace(base, contract_id="other"), "school", "institution"),
        payment_id(replace(base, outcome_id="o2"), "school", "institution"),
        payment_id(replace(base, subject="k1:" + "9" * 64), "school", "institution"),
    }
    assert len(ids) == 5
    assert payment_id(base, "school", "institution") == payment_id(base, "school", "institution")
    # Neither the version that decides an outcome nor its amount is part of its identity
    # (docs/contracts.md): a new version or a correction moves it by the difference.
    assert payment_id(replace(base, contract_version=2), "school", "institution") == \
        payment_id(base, "school", "institution")
    assert payment_id(replace(base, payees=(PayeeAmount("school", 7),)), "school", "institution") == \
        payment_id(base, "school", "institution")


def test_two_payees_of_one_outcome_get_two_payments() -> None:
    two = OutcomeDecision("test", 1, "o", SUBJECT, "t1", "reporter", OutcomeStatus.VERIFIED, None,
                          dt.date(2024, 1, 1), 100, (PayeeAmount("college", 50), PayeeAmount("school", 50)))
    wanted = desired_instructions(CONTRACT, [two])
    assert len(reconcile(wanted, [])) == 2


def test_payment_and_clawback_ids_are_the_documented_digests() -> None:
    # Recomputed with hashlib: a changed separator or a dropped part would change every
    # id, and a replay after an upgrade would pay everything again.
    base = decision("t1")
    parts = ["test", "o", SUBJECT, "t1", "school", "institution"]
    expected = sha256("|".join(parts).encode()).hexdigest()[:32]
    assert payment_id(base, "school", "institution") == expected
    assert desired_instructions(CONTRACT, [base])[0].payment_id == expected
    assert clawback_id(expected) == sha256(f"clawback|{expected}".encode()).hexdigest()[:32]
    assert clawback_id(expected, "retract-1", 1) == \
        sha256(f"clawback|{expected}|retract-1|1".encode()).hexdigest()[:32]


def issued(instructions: list[PaymentInstruction]) -> list[IssuedInstruction]:
    return [IssuedInstruction(i.payment_id, i.kind, i.reverses_payment_id, instruction_outcome_key(i), i.payee,
                              i.payee_role) for i in instructions]


def test_an_adjustment_is_known_to_derive_from_its_correcting_event_by_its_id_alone() -> None:
    """What an upheld dispute waits for (services/ledger/payouts.py): the ledger holds an
    instruction whose id reconcile derived from the event the decision names."""
    first = desired_instructions(CONTRACT, [decision("t1")])
    assert not derived_from("fix-1", issued(first))  # the final payment derives from no correction
    lower = reconcile(desired_instructions(CONTRACT, [decision("t1", 80)]), first, {
        instruction_outcome_key(first[0]): Cause("correction", "fix-1")})
    assert [x.kind for x in lower] == [PaymentKind.CLAWBACK]
    assert derived_from("fix-1", issued(first + lower))
    assert not derived_from("fix-2", issued(first + lower))  # another event's adjustment is not this one's
    higher = reconcile(desired_instructions(CONTRACT, [decision("t1", 130)]), first + lower, {
        instruction_outcome_key(first[0]): Cause("correction", "fix-2")})
    assert [x.kind for x in higher] == [PaymentKind.PAYMENT]
    assert derived_from("fix-2", issued(first + lower + higher))
    assert not derived_from("recheck", issued(first + lower))
