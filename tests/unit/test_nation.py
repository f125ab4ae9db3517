"""The synthetic nation (cli/synthetic/nation.py): Denmark's proportions from its data
files, shared out exactly, moves at the data file's rate, the same nation from the same seed."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from cli.synthetic.nation import (
    KINDS,
    MUNICIPALITIES_FILE,
    TOTALS_FILE,
    Nation,
    apportion,
    denmark,
    generate_nation,
    nation_births,
)


def _rows(path: object) -> list[dict[str, str]]:
    with open(str(path), encoding="utf-8", newline="") as lines:
        return list(csv.DictReader(line for line in lines if not line.startswith("#")))


def test_the_data_files_hold_denmarks_98_municipalities_and_every_total_with_its_source() -> None:
    rows = _rows(MUNICIPALITIES_FILE)
    assert len(rows) == 98
    assert len({r["code"] for r in rows}) == 98
    assert Counter(r["region"] for r in rows) == {"Hovedstaden": 29, "Sjælland": 17, "Syddanmark": 22,
                                                  "Midtjylland": 19, "Nordjylland": 11}
    assert {r["source"] for r in rows} == {"published", "assumed"}
    totals = {r["name"]: r for r in _rows(TOTALS_FILE)}
    # The municipalities add up to the national population the file names.
    assert sum(int(r["population"]) for r in rows) == int(totals["population"]["value"])
    for row in totals.values():
        assert row["source"], row["name"]  # a source, or the word "assumption"
    # Largest first: an assumed population never outranks a published one above it.
    populations = [int(r["population"]) for r in rows[:-1]]
    assert populations == sorted(populations, reverse=True)


def test_births_and_institutions_are_the_national_totals_shared_out_by_population() -> None:
    country = denmark()
    births = country.births()
    assert sum(births) == country.total("births") == 57_469
    populations = [m.population for m in country.municipalities]
    for share, population in zip(births, populations, strict=True):
        assert abs(share - country.total("births") * population / sum(populations)) < 1
    for _, total, _ in KINDS:
        counts = country.institutions(total)
        assert sum(counts) == country.total(total)
        assert min(counts) >= 1
    assert births[0] > births[1] > births[-1]  # København, Aarhus, ..., Læsø


def test_the_whole_nation_has_every_institution_of_the_totals() -> None:
    country = denmark()
    nation = generate_nation(98, 98, seed=1, years=1)
    kinds = Counter(i.kind for i in nation.institutions)
    assert kinds == {"municipality": 98, **{kind: country.total(total) for kind, total, _ in KINDS}}
    assert len(nation.tenants) == len(nation.contracts) == 98
    assert nation.names[0] == "København"


def test_a_scaled_nation_shares_its_children_out_by_its_municipalities_births() -> None:
    nation = generate_nation(10, 1000, seed=3)
    first_stay = Counter(nation.municipality_of(str(e["reported_by"])) for e in nation.events
                         if e["body"]["stage"] == "daycare" and e["body"]["type"] == "enrolled")  # type: ignore[index]
    expected = apportion(1000, denmark().births()[:10])
    assert [first_stay[t] for t in nation.municipalities] == expected
    assert nation_births(98, years=1, fraction=1.0) == 57_469
    assert nation_births(98, years=1, fraction=0.1) == 5_747
    assert nation_births(10, years=2, fraction=0.5) == sum(denmark().births()[:10])


def test_children_move_between_municipalities_at_the_data_files_yearly_rate() -> None:
    rate = denmark().move_rate
    towns = _towns(generate_nation(10, 6000, seed=4))
    before_school = sum(t["daycare"] != t["primary"] for t in towns) / len(towns)
    during_school = sum(t["primary"] != t["youth"] for t in towns) / len(towns)
    # Five years before school, ten during it; 6,000 children: within 0.03 is over 5 standard errors.
    assert before_school == pytest.approx(1 - (1 - rate) ** 5, abs=0.03)
    assert during_school == pytest.approx(1 - (1 - rate) ** 10, abs=0.03)
    assert all(len(set(t.values())) == 1 for t in _towns(generate_nation(10, 600, seed=4, move_rate=0.0)))


def _towns(nation: Nation) -> list[dict[str, str]]:
    """Each child's municipality at each stage."""
    towns: dict[str, dict[str, str]] = {}
    for event in nation.events:
        body = event["body"]
        if body["type"] == "enrolled":  # type: ignore[index]
            towns.setdefault(str(event["subject"]), {})[body["stage"]] = (  # type: ignore[index]
                nation.municipality_of(str(event["reported_by"])))
    return list(towns.values())


def test_the_same_seed_makes_the_same_nation_and_another_seed_another() -> None:
    one, again, other = (generate_nation(4, 300, seed=s) for s in (9, 9, 10))
    assert one.events == again.events
    assert one.institutions == again.institutions
    assert one.events != other.events
    assert len({e["subject"]["cpr"] for e in one.events}) == 300  # type: ignore[index]


def test_a_nation_of_one_municipality_has_no_moves_and_too_many_is_refused() -> None:
    alone = generate_nation(1, 50, seed=1)
    assert {nation_town for t in _towns(alone) for nation_town in t.values()} == {"kommune-000"}
    with pytest.raises(ValueError, match="1 to 98"):
        generate_nation(99, 10, seed=1)
    with pytest.raises(ValueError, match="1 to 98"):
        generate_nation(0, 10, seed=1)


def test_apportion_adds_up_exactly_and_keeps_the_minimum() -> None:
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]  # ties go to the earlier
    assert apportion(7, [100, 1], minimum=1) == [6, 1]
    assert sum(apportion(57_469, [549_050, 314_545, 1_897])) == 57_469
    with pytest.raises(ValueError, match="at least 1 each"):
        apportion(2, [1, 1, 1], minimum=1)
