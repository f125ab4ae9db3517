"""The demo's "Money by state" table is a publication too: a contract whose money would
give back a suppressed cell (issue 30's disclosure rule) is marked there as well."""

from __future__ import annotations

from cli.reporting.finality import ContractMoney, print_money_by_state


def test_a_withheld_contracts_money_is_marked_and_the_others_are_shown_with_whole_names() -> None:
    long_id = "a-contract-id-longer-than-the-old-thirty-three-characters"
    states = {
        "housing-area-exam-indicator": ContractMoney(instructed_minor=9_451_545, paid_minor=4_725_772),
        long_id: ContractMoney(instructed_minor=240_000_000, clawed_back_minor=1_000,
                               clawbacks_by_reason={"retraction": 1_000}),
    }
    lines: list[str] = []

    print_money_by_state(states, lines.append, withheld={"housing-area-exam-indicator"})

    text = "\n".join(lines)
    housing = next(line for line in lines if "housing-area-exam-indicator" in line)
    assert "94,515.45" not in text
    assert "47,257.72" not in text
    assert housing.count("suppressed (reveals_suppressed_cell)") == 4
    assert long_id in text
    assert "2,399,990.00" in text
    assert "retraction 10.00" in text
