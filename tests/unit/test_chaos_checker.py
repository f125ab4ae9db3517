"""The fault schedule's checker compares the live verifier's outstanding payments with
the engine's as sets; a payment withdrawn and owed again is the same line of money."""

from __future__ import annotations

from bench.chaos.checker import first_generation_ids
from shared.domain.contracts.payments import desired_instructions, reconcile
from tests.unit.test_payments import CONTRACT, decision


def test_a_payment_paid_clawed_back_and_paid_again_maps_to_its_first_id() -> None:
    first = desired_instructions(CONTRACT, [decision("t1")])
    history = first + reconcile([], first)
    history += reconcile(first, history)  # owed again: generation 1
    history += reconcile([], history)  # withdrawn again
    history += reconcile(first, history)  # and owed again: generation 2
    reissues = [i.payment_id for i in history if i.kind == "payment"][1:]
    assert len(reissues) == 2
    assert first_generation_ids(history) == dict.fromkeys(reissues, first[0].payment_id)


def test_a_payment_never_clawed_back_is_its_own_first_id() -> None:
    assert first_generation_ids(desired_instructions(CONTRACT, [decision("t1"), decision("t2")])) == {}
