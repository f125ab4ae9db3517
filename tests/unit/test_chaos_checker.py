"""The fault schedule's checker compares the live verifier's money with the engine's per
outcome line (outcome, payee, role): a correction moves a line by the difference."""

from __future__ import annotations

from bench.chaos.checker import net_by_line
from shared.domain.contracts.payments import Cause, desired_instructions, reconcile
from tests.unit.test_payments import CONTRACT, decision


def test_a_line_paid_lowered_and_raised_again_nets_to_what_it_owes_now() -> None:
    first = desired_instructions(CONTRACT, [decision("t1", 100)])
    key = first[0].contract_id + "|o|" + first[0].subject + "|t1"
    history = first + reconcile(desired_instructions(CONTRACT, [decision("t1", 60)]), first,
                                {key: Cause("correction", "amend-1")})
    history += reconcile(desired_instructions(CONTRACT, [decision("t1", 90)]), history,
                         {key: Cause("correction", "amend-2")})
    assert net_by_line(history) == {(key, "school", "institution"): 90}
    assert net_by_line(history + history) == net_by_line(history)  # a redelivery is the same line


def test_a_line_clawed_back_entirely_is_no_line() -> None:
    first = desired_instructions(CONTRACT, [decision("t1"), decision("t2")])
    assert len(net_by_line(first + reconcile(desired_instructions(CONTRACT, [decision("t2")]), first))) == 1
