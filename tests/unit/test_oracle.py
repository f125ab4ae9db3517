"""The independent oracle checked against DOMAIN.md's two worked examples (the numbers
are copied from the domain description, not computed), and on small cases by hand."""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction

import pytest

from shared.platform.settings import REPO_ROOT
from tests import oracle
from tests.oracle import NOT_ACCRUED, UNALLOCATED, Stay

D = dt.date
MOBILITY_RULE = {"year_basis": {"kind": "calendar"}, "weights": {"0-19": "0.05"}}
FIFA_RULE = {"year_basis": {"kind": "calendar"}, "weights": {"12-15": "0.05", "16-23": "0.10"}}


def test_worked_example_1_fifa_splits_the_pot_4_to_1() -> None:
    # Fee 1,000,000.00; pot 5 % = 50,000.00; A 12-15, B 16-23 (calendar years).
    contract = oracle.load_contract_yaml(REPO_ROOT / "examples" / "contracts" / "fifa-solidarity.yaml")
    fact = oracle.Fact("t", D(2024, 1, 1), "x", "x", {"type": "transfer", "compensation_minor": 100_000_000})
    pot = oracle.price_of(contract["outcomes"][0], fact)
    assert pot == 5_000_000
    whole = oracle.solidarity_whole(FIFA_RULE, D(2000, 5, 5), [
        Stay("club-a", D(2012, 1, 1), D(2015, 12, 31)), Stay("club-b", D(2016, 1, 1), D(2023, 12, 31))],
        pot, D(2024, 1, 1))
    assert whole == {"club-a": 1_000_000, "club-b": 4_000_000, UNALLOCATED: 0, NOT_ACCRUED: 0}


WORKED_EXAMPLE_2 = {"daycare": 1_000_000, "school-a": 1_383_014, "school-b": 573_432, "college": 574_031,
                    UNALLOCATED: 364_866, NOT_ACCRUED: 104_657}


def test_worked_example_2_mobility_bonus_to_the_ore() -> None:
    history = json.loads((REPO_ROOT / "examples" / "histories" / "mobility-worked-example-2.json").read_text())
    stays = [Stay(r["institution"], D.fromisoformat(r["start"]), D.fromisoformat(r["end"]))
             for r in history["registrations"]]
    whole = oracle.solidarity_whole(MOBILITY_RULE, D(2004, 9, 15), stays, 4_000_000, D(2023, 6, 23))
    assert whole == WORKED_EXAMPLE_2
    assert sum(whole.values()) == 4_000_000


def test_worked_example_2_from_the_sample_events_under_the_mobility_bonus_contract() -> None:
    # Subject a-* of examples/events/sample.jsonl is worked example 2's child; its exam
    # (10,000.00 over school years) and its completion (40,000.00) fill the 50,000.00 cap.
    lines = [ln for ln in (REPO_ROOT / "examples" / "events" / "sample.jsonl").read_bytes().splitlines() if ln.strip()]
    kinds = oracle.registry_kinds(REPO_ROOT / "examples" / "institutions.yaml")
    contract = oracle.load_contract_yaml(REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml")
    subjects = oracle.subjects_from_lines(lines, kinds)
    paid = oracle.payments([contract], subjects, D(2024, 12, 31))
    completed = {p.payee: p.amount_minor for p in paid if p.outcome_id == "youth-education-completed"}
    names = {"bornehuset-solsikken": "daycare", "alsskolen": "school-a", "nordborg-skole": "school-b",
             "sonderborg-gymnasium": "college"}
    assert {names[k]: v for k, v in completed.items()} == \
        {k: v for k, v in WORKED_EXAMPLE_2.items() if k not in (UNALLOCATED, NOT_ACCRUED)}
    assert {p.subject for p in paid} == {"150904-4321"}  # b's maths grade is 0.0; c has no education
    assert sum(p.amount_minor for p in paid) <= 5_000_000


def test_a_day_shared_by_two_institutions_is_halved_and_an_institution_counts_once() -> None:
    rule = {"year_basis": {"kind": "calendar"}, "weights": {"10": "1"}}
    birth = D(2000, 1, 1)
    stays = [Stay("a", D(2010, 1, 1), D(2010, 12, 31)), Stay("b", D(2010, 1, 1), D(2010, 1, 2)),
             Stay("b", D(2010, 1, 2), D(2010, 1, 2))]  # b reported twice for 2 Jan
    exact = oracle.solidarity_exact(rule, birth, stays, 365, D(2010, 12, 31))
    assert exact == {"a": 364, "b": 1}  # 1 and 2 Jan halved: 363 + 2 * 1/2


def test_days_after_the_trigger_are_not_accrued_and_uncovered_days_unallocated() -> None:
    rule = {"year_basis": {"kind": "calendar"}, "weights": {"10": "1"}}
    exact = oracle.solidarity_exact(rule, D(2000, 1, 1), [Stay("a", D(2010, 3, 1), None)], 365, D(2010, 3, 31))
    assert exact == {UNALLOCATED: 59, "a": 31, NOT_ACCRUED: 275}


def test_ties_go_to_the_lower_institution_id_then_unallocated_then_not_accrued() -> None:
    third = Fraction(1, 3)
    assert oracle.largest_remainder(1, {"b": third, "a": third, "u": third}, ["a", "b", "u"]) == {"a": 1, "b": 0, "u": 0}
    assert oracle.largest_remainder(2, {"b": third * 2, "a": third * 2, "u": third * 2}, ["a", "b", "u"]) == \
        {"a": 1, "b": 1, "u": 0}


def test_school_years_start_on_the_given_day() -> None:
    assert oracle.year_of_age({"kind": "school", "starts": "08-01"}, D(2004, 9, 15), 6) == (D(2010, 8, 1), D(2011, 7, 31))


@pytest.mark.parametrize(("cpr", "born"), [("150904-4321", D(2004, 9, 15)), ("020306-1238", D(1906, 3, 2)),
                                           ("201195-1115", D(1995, 11, 20)), ("010160-5000", D(1860, 1, 1)),
                                           ("010140-4000", D(1940, 1, 1))])
def test_the_century_of_a_cpr_number_comes_from_its_seventh_digit(cpr: str, born: dt.date) -> None:
    # 020306-1238 (sample.jsonl's second child) encodes 1906 by the CPR table, not 2006.
    assert oracle.birth_date_of_cpr(cpr) == born


def test_features_the_oracle_does_not_model_are_refused_not_guessed() -> None:
    with pytest.raises(NotImplementedError):
        oracle.load_contract_yaml(REPO_ROOT / "examples" / "contracts" / "employment-pbr.yaml")
