"""An independent oracle: what the ledger must hold, written from the domain description
(../shared/spec/DOMAIN.md), not from the code under test.

It imports nothing from `shared/` or `services/` but the event schemas, reads contracts
straight from their YAML, and works per day with fractions: slow and obvious on purpose,
so that a bug in the services' interval arithmetic, rounding, payee choice or caps shows
up as a disagreement instead of being repeated here. It supports the contract features
the end-to-end tests use (fixed and rate prices; direct payees `institution` and
`previous_institution`; solidarity over calendar or school years; trust by reporter
kind; age limits; eligibility by birth year and by residence, on a day or on each trigger
date; contract period; max per subject; the per-subject cap; a contract-wide cap only
while it does not bind) and refuses the rest
(sustainment, prerequisites, split shares, per-period caps, eligibility by enrolment)
with NotImplementedError instead of guessing. Indicator outcomes: see their section.

Where DOMAIN.md is silent, the reading chosen is written next to the code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from shared.domain.events import InstitutionEvent

ONE_DAY = dt.timedelta(days=1)
UNALLOCATED = "unallocated"
NOT_ACCRUED = "not accrued"


# -- subjects and their facts ------------------------------------------------------------

def birth_date_of_cpr(cpr: str) -> dt.date:
    """DDMMYY-SSSS; the century from the 7th digit (the CPR office's published table)."""
    digits = cpr.replace("-", "")
    day, month, year2, seventh = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6])
    if seventh <= 3:
        century = 1900
    elif seventh in (4, 9):
        century = 2000 if year2 <= 36 else 1900
    else:
        century = 2000 if year2 <= 57 else 1800
    return dt.date(century + year2, month, day)


@dataclass(frozen=True)
class Fact:
    event_id: str
    occurred_on: dt.date
    reported_by: str
    reporter_kind: str
    body: Mapping[str, Any]

    @property
    def type(self) -> str:
        return str(self.body["type"])


@dataclass(frozen=True)
class Subject:
    key: str  # the CPR number: the oracle never pseudonymises, and no account names a subject
    birth_date: dt.date
    facts: tuple[Fact, ...]  # effective facts (retractions and amendments applied), by date


def subjects_from_lines(lines: Iterable[bytes], kinds: Mapping[str, str]) -> list[Subject]:
    """Institution events in clear (as in an institution's file) to subjects with their
    effective facts. An event id is its reporter's own: the same (reporter, event id)
    twice is one event (the first one counts). A correction applies only to an event of
    its own reporter (DOMAIN.md: an institution touches only its own facts; the oracle
    knows no registry authorities), and an amendment only to an event of the same type."""
    raw: dict[str, list[tuple[InstitutionEvent, dict[str, Any]]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for line in lines:
        event = InstitutionEvent.model_validate_json(line)
        if (event.reported_by, event.event_id) in seen:
            continue
        seen.add((event.reported_by, event.event_id))
        assert event.subject.cpr is not None, "the oracle reads events with the CPR in clear"
        raw[event.subject.cpr].append((event, json.loads(line)["body"]))
    subjects = []
    for cpr, events in sorted(raw.items()):
        retracted = {(e.reported_by, body["retracts_event_id"]) for e, body in events if body["type"] == "retraction"
                     and body.get("retracts_reported_by", e.reported_by) == e.reported_by}
        bodies = {(e.reported_by, e.event_id): body for e, body in events
                  if body["type"] not in ("retraction", "amendment") and (e.reported_by, e.event_id) not in retracted}
        # An amendment replaces the body of the event it names (the latest amendment wins).
        for event, body in sorted(events, key=lambda pair: (pair[0].occurred_on, pair[0].event_id)):
            target = (event.reported_by, body.get("amends_event_id"))
            if body["type"] == "amendment" and (event.reported_by, event.event_id) not in retracted \
                    and body.get("amends_reported_by", event.reported_by) == event.reported_by \
                    and target in bodies and bodies[target]["type"] == body["body"]["type"]:
                bodies[target] = body["body"]
        facts = sorted((Fact(e.event_id, e.occurred_on, e.reported_by, kinds[e.reported_by],
                             bodies[(e.reported_by, e.event_id)])
                        for e, _ in events if (e.reported_by, e.event_id) in bodies),
                       key=lambda f: (f.occurred_on, f.event_id, f.reported_by))
        subjects.append(Subject(cpr, birth_date_of_cpr(cpr), tuple(facts)))
    return subjects


@dataclass(frozen=True)
class Stay:
    institution: str
    start: dt.date
    end: dt.date | None  # inclusive; None: still there

    def covers(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


def stays(facts: Sequence[Fact]) -> list[Stay]:
    """Per institution in date order: `enrolled` opens a stay, `left` ends the open one on
    its date (the last day there, inclusive, as in worked example 2). An enrolment at an
    institution where the subject already is, or a `left` without one, changes nothing."""
    result: list[Stay] = []
    open_since: dict[str, dt.date] = {}
    for fact in facts:
        if fact.type not in ("enrolled", "left"):
            continue
        institution = str(fact.body["institution"])
        if fact.type == "enrolled":
            open_since.setdefault(institution, fact.occurred_on)
        elif institution in open_since:
            result.append(Stay(institution, open_since.pop(institution), fact.occurred_on))
    result.extend(Stay(institution, start, None) for institution, start in open_since.items())
    return result


# -- money ---------------------------------------------------------------------------------

def largest_remainder(total: int, exact: Mapping[str, Fraction], order: Sequence[str]) -> dict[str, int]:
    """Floors, then one more unit to each of the largest remainders until the total is
    reached; among equal remainders the one earlier in `order` first."""
    whole = {key: int(value // 1) for key, value in exact.items()}
    leftover = total - sum(whole.values())
    ranked = sorted(exact, key=lambda key: (-(exact[key] - whole[key]), order.index(key)))
    for key in ranked[:leftover]:
        whole[key] += 1
    assert sum(whole.values()) == total
    return whole


def age_weights(weights: Mapping[str, Any]) -> dict[int, Fraction]:
    """{"0-19": "0.05"} -> every age 0..19 weighs 1/20; {"0": ...} -> that age alone."""
    result: dict[int, Fraction] = {}
    for ages, weight in weights.items():
        first, _, last = str(ages).partition("-")
        for age in range(int(first), int(last or first) + 1):
            result[age] = Fraction(Decimal(str(weight)))
    return result


def year_of_age(basis: Mapping[str, Any], birth: dt.date, age: int) -> tuple[dt.date, dt.date]:
    year = birth.year + age
    if basis["kind"] == "calendar":
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    month, day = (int(part) for part in str(basis["starts"]).split("-"))
    return dt.date(year, month, day), dt.date(year + 1, month, day) - ONE_DAY


def solidarity_exact(rule: Mapping[str, Any], birth: dt.date, subject_stays: Sequence[Stay], pot: int,
                     trigger: dt.date) -> dict[str, Fraction]:
    """DOMAIN.md steps 1-4, one day at a time."""
    excluded = set(rule.get("exclude_institutions", ()))
    shares: dict[str, Fraction] = defaultdict(Fraction)
    for age, weight in sorted(age_weights(rule["weights"]).items()):
        first, last = year_of_age(rule["year_basis"], birth, age)
        days_in_year = (last - first).days + 1
        per_day = pot * weight / days_in_year
        day = first
        while day <= last:
            if day > trigger:
                shares[NOT_ACCRUED] += per_day
            else:
                holders = sorted({s.institution for s in subject_stays
                                  if s.covers(day) and s.institution not in excluded})
                for holder in holders or [UNALLOCATED]:
                    shares[holder] += per_day / len(holders or [UNALLOCATED])
            day += ONE_DAY
    assert sum(shares.values()) == pot
    return dict(shares)


def solidarity_whole(rule: Mapping[str, Any], birth: dt.date, subject_stays: Sequence[Stay], pot: int,
                     trigger: dt.date) -> dict[str, int]:
    """Step 5: whole minor units by largest remainder, ties by institution id with
    unallocated and then not accrued last."""
    exact = solidarity_exact(rule, birth, subject_stays, pot, trigger)
    exact.setdefault(UNALLOCATED, Fraction(0))
    exact.setdefault(NOT_ACCRUED, Fraction(0))
    order = [*sorted(k for k in exact if k not in (UNALLOCATED, NOT_ACCRUED)), UNALLOCATED, NOT_ACCRUED]
    return largest_remainder(pot, exact, order)


# -- contracts -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Payment:
    contract_id: str
    payer: str
    payee: str
    role: str  # institution | fallback
    amount_minor: int
    subject: str
    outcome_id: str
    trigger_event_id: str


UNSUPPORTED_OUTCOME_KEYS = ("sustainment", "prerequisites", "deadline")


def load_contract_yaml(path: Path) -> dict[str, Any]:
    contract: dict[str, Any] = yaml.safe_load(path.read_text())
    caps = contract.get("caps") or {}
    if caps.get("per_period") or (contract.get("eligibility") or {}).get("enrolled_on"):
        raise NotImplementedError(f"{path.name}: the oracle does not model per-period caps or enrolment eligibility")
    for outcome in contract.get("outcomes") or ():
        if any(outcome.get(key) for key in UNSUPPORTED_OUTCOME_KEYS) or outcome["distribution"]["kind"] == "split":
            raise NotImplementedError(f"{path.name}: outcome {outcome['id']} uses what the oracle does not model")
    return contract


def date_of(value: object) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def age_on(birth: dt.date, day: dt.date) -> int:
    """Completed years on `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def field(body: Mapping[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def condition_holds(condition: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    actual, expected, op = field(body, condition["field"]), condition["value"], condition["op"]
    if actual is None:
        return False
    if op in ("eq", "ne"):
        return (str(actual) == str(expected)) == (op == "eq")
    if op == "in":
        return str(actual) in [str(v) for v in expected]
    left, right = Fraction(Decimal(str(actual))), Fraction(Decimal(str(expected)))
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


def previous_institution(subject_stays: Sequence[Stay], on: dt.date) -> str | None:
    """The institution the subject left last, on or before `on` (ties: the larger id)."""
    ended = [s for s in subject_stays if s.end is not None and s.end <= on]
    return max(ended, key=lambda s: (s.end, s.institution)).institution if ended else None


def price_of(outcome: Mapping[str, Any], fact: Fact) -> int:
    price = outcome["price"]
    if price["kind"] == "fixed":
        return int(price["amount_minor"])
    carried = field(fact.body, price["of_field"])
    if not isinstance(carried, int):
        return 0
    pot = Fraction(Decimal(str(price["rate"]))) * carried
    return int(pot // 1)  # a pot that is not whole minor units is rounded down


def payees_of(contract: Mapping[str, Any], outcome: Mapping[str, Any], subject: Subject, fact: Fact,
              pot: int) -> list[tuple[str, str, int]]:
    """(payee, role, amount) for one verified trigger."""
    rule = outcome["distribution"]
    subject_stays = stays(subject.facts)
    if rule["kind"] == "direct":
        payee = rule["payee"]
        name = payee["institution"] if payee["role"] == "institution" else \
            previous_institution(subject_stays, fact.occurred_on) if payee["role"] == "previous_institution" else None
        if payee["role"] not in ("institution", "previous_institution"):
            raise NotImplementedError(f"payee role {payee['role']}")
        return [(name, "institution", pot)] if name else []
    whole = solidarity_whole(rule, subject.birth_date, subject_stays, pot, fact.occurred_on)
    paid = [(k, "institution", v) for k, v in sorted(whole.items()) if k not in (UNALLOCATED, NOT_ACCRUED) and v > 0]
    fallback = contract.get("fallback_account")
    if fallback and whole[UNALLOCATED] > 0:
        paid.append((fallback, "fallback", whole[UNALLOCATED]))
    return paid


def residence_on(subject: Subject, day: dt.date) -> str | None:
    """Where the subject lived on `day`, by the CPR register's moves (only a `cpr_register`
    reports them): the latest move dated on or before the day, so a move on the day itself
    counts (docs/contracts.md; two on one day: the larger event id). None: none known."""
    moves = [f for f in subject.facts if f.type == "residence" and f.reporter_kind == "cpr_register"
             and f.occurred_on <= day]
    return str(max(moves, key=lambda f: (f.occurred_on, f.event_id)).body["municipality"]) if moves else None


def verified_triggers(contract: Mapping[str, Any], subject: Subject, today: dt.date
                      ) -> list[tuple[Mapping[str, Any], Fact, list[tuple[str, str, int]]]]:
    eligibility = contract.get("eligibility") or {}
    born = subject.birth_date.year
    if born < eligibility.get("birth_year_from", born) or born > eligibility.get("birth_year_to", born):
        return []
    # Residence: on one day for every outcome, or on each outcome's trigger date (`at: trigger`).
    resident = eligibility.get("resident_on") or {}
    if "date" in resident and residence_on(subject, date_of(resident["date"])) != resident["municipality"]:
        return []
    on_trigger = resident.get("at") == "trigger"
    period_start, period_end = date_of(contract["period"]["start"]), date_of(contract["period"]["end"])
    verified = []
    for outcome in contract.get("outcomes") or ():
        trigger, counted = outcome["trigger"], 0
        for fact in subject.facts:
            if fact.type != trigger["event"] or fact.occurred_on > today:
                continue
            age = age_on(subject.birth_date, fact.occurred_on)
            if not all(condition_holds(c, fact.body) for c in trigger.get("where", ())) \
                    or (trigger.get("reported_by_kinds") and fact.reporter_kind not in trigger["reported_by_kinds"]) \
                    or not period_start <= fact.occurred_on <= period_end \
                    or ("age_below" in trigger and age >= trigger["age_below"]) \
                    or ("age_at_least" in trigger and age < trigger["age_at_least"]) \
                    or counted >= outcome.get("max_per_subject", 1) \
                    or (on_trigger and residence_on(subject, fact.occurred_on) != resident["municipality"]):
                continue
            pot = price_of(outcome, fact)
            payees = payees_of(contract, outcome, subject, fact, pot) if pot > 0 else []
            # No payee, or evidence from the institution that would be paid: not verified.
            if not payees or any(p == fact.reported_by for p, _, _ in payees):
                continue
            counted += 1
            verified.append((outcome, fact, payees))
    return verified


def within_cap(cap: int | None, triggers: list[tuple[Mapping[str, Any], Fact, list[tuple[str, str, int]]]]
               ) -> list[tuple[Mapping[str, Any], Fact, list[tuple[str, str, int]]]]:
    """The per-subject cap, in the order the outcomes happened: what still fits is paid
    (shared over the payees by largest remainder), the rest is capped."""
    if cap is None:
        return triggers
    result, used = [], 0
    for outcome, fact, payees in sorted(triggers, key=lambda t: (t[1].occurred_on, t[0]["id"], t[1].event_id)):
        owed = sum(a for _, _, a in payees)
        room = cap - used
        if room <= 0:
            continue
        if owed > room:
            exact = {p: Fraction(a * room, owed) for p, _, a in payees}
            whole = largest_remainder(room, exact, sorted(exact))
            roles = {p: r for p, r, _ in payees}
            payees = [(p, roles[p], whole[p]) for p in sorted(whole) if whole[p] > 0]
        used += sum(a for _, _, a in payees)
        result.append((outcome, fact, payees))
    return result


def payments(contracts: Sequence[Mapping[str, Any]], subjects: Sequence[Subject], today: dt.date) -> list[Payment]:
    paid: list[Payment] = []
    for contract in contracts:
        caps = contract.get("caps") or {}
        for_contract = []
        for subject in subjects:
            triggers = within_cap(caps.get("per_subject_minor"), verified_triggers(contract, subject, today))
            for outcome, fact, payees in triggers:
                for_contract.extend(Payment(contract["contract_id"], contract["payer"], payee, role, amount,
                                            subject.key, outcome["id"], fact.event_id)
                                    for payee, role, amount in payees)
        total_cap = caps.get("total_minor")
        if total_cap is not None and sum(p.amount_minor for p in for_contract) > total_cap:
            raise NotImplementedError("a binding contract-wide cap depends on processing order")
        paid.extend(for_contract)
        for measured in contract.get("indicator_outcomes") or ():
            if date_of(measured["review_on"]) <= today:
                paid.extend(indicator_payments(contract, measured, subjects))
    return paid


# -- indicator outcomes ----------------------------------------------------------------------
# From docs/contracts.md ("Indicator outcomes") and docs/indicators.md. Modelled: calendar-
# year indicators whose numerator and denominator are `has_fact` counts of facts dated in
# the year, populations by catchment, a published or measured baseline, a comparison
# population, the floor, the cap, the small-cell minimum, self-reported evidence, and
# `area` or `direct` payees. Anything else raises NotImplementedError.

def indicator_share(indicator: Mapping[str, Any], members: Sequence[Subject], year: int,
                    payees: set[str]) -> tuple[int, int, bool]:
    """(numerator, denominator, a payee reported a counted fact) for subjects in a year."""
    def counted(count: Mapping[str, Any], subject: Subject) -> list[Fact]:
        if count["kind"] != "has_fact" or count.get("up_to_reference_day"):
            raise NotImplementedError("the oracle counts has_fact within the period only")
        return [f for f in subject.facts if f.type == count["event"] and f.occurred_on.year == year
                and all(condition_holds(c, f.body) for c in count.get("where", ()))]

    numerator = denominator = 0
    self_reported = False
    for subject in members:
        in_denominator = counted(indicator["denominator"], subject)
        if not in_denominator:
            continue
        in_numerator = counted(indicator["numerator"], subject)
        denominator += 1
        numerator += bool(in_numerator)
        self_reported |= any(f.reported_by in payees for f in in_denominator + in_numerator)
    return numerator, denominator, self_reported


def in_catchment(subject: Subject, institutions: Sequence[str], year: int) -> bool:
    """Registered at one of them at any time up to 31 December of the year."""
    return any(s.institution in institutions and s.start <= dt.date(year, 12, 31) for s in stays(subject.facts))


def indicator_payments(contract: Mapping[str, Any], measured: Mapping[str, Any],
                       subjects: Sequence[Subject]) -> list[Payment]:
    indicator = measured["indicator"]
    if indicator["period"]["kind"] != "calendar_year" or indicator.get("population"):
        raise NotImplementedError("the oracle models calendar-year indicators over catchments only")
    area = list(measured["area"]["institutions"])
    distribution = measured["distribution"]
    if distribution["kind"] == "area":
        payees = sorted(set(area))
    elif distribution["kind"] == "direct":
        payees = [distribution["payee"]["institution"]]
    else:
        raise NotImplementedError("the oracle pays indicator outcomes to the area or one payee")
    year, base_year = int(measured["year"]), int(measured["baseline"]["year"])
    comparison = measured.get("comparison")

    def share(population: str, when: int) -> tuple[int, int, bool]:
        if population == "area":
            members = [s for s in subjects if in_catchment(s, area, when)]
        else:
            others = list((comparison or {}).get("institutions") or ())
            members = [s for s in subjects if not in_catchment(s, area, when)
                       and (not others or in_catchment(s, others, when))]
        return indicator_share(indicator, members, when, set(payees))

    cells = [share("area", year)]
    if "percent" not in measured["baseline"]:
        cells.append(share("area", base_year))
    if comparison is not None:
        cells += [share("comparison", year), share("comparison", base_year)]
    if any(d < measured.get("minimum_cell", 5) for _, d, _ in cells) or any(r for _, _, r in cells):
        return []  # a population too small to pay on, or evidence from a payee

    def percent(cell: tuple[int, int, bool]) -> Fraction:
        return Fraction(100 * cell[0], cell[1])

    change = percent(cells[0]) - (Fraction(Decimal(str(measured["baseline"]["percent"])))
                                  if "percent" in measured["baseline"] else percent(cells[1]))
    if comparison is not None:
        change -= percent(cells[-2]) - percent(cells[-1])
    points = change if indicator["better"] == "higher" else -change
    if points <= 0 or points < Fraction(Decimal(str(measured.get("floor_points", "0")))):
        return []
    amount = min(int(points * int(measured["price_per_point_minor"]) // 1), int(measured["cap_minor"]))
    whole = largest_remainder(amount, {p: Fraction(amount, len(payees)) for p in payees}, payees)
    return [Payment(contract["contract_id"], contract["payer"], payee, "institution", whole[payee],
                    "population", measured["id"], "") for payee in payees if whole[payee] > 0]


def balances(paid: Iterable[Payment]) -> dict[str, int]:
    """Net balance (credits minus debits) per ledger account (docs/ledger.md's names):
    the payer's budget per contract is debited, the payee's pending receivable credited."""
    result: dict[str, int] = defaultdict(int)
    for payment in paid:
        result[f"budget:{payment.payer}:{payment.contract_id}"] -= payment.amount_minor
        kind = "fallback" if payment.role == "fallback" else "receivable"
        result[f"{kind}:{payment.payee}:pending"] += payment.amount_minor
    return {k: v for k, v in result.items() if v != 0}


def expected_balances(contract_files: Sequence[Path], lines: Sequence[bytes], kinds: Mapping[str, str],
                      today: dt.date | None = None) -> dict[str, int]:
    subjects = subjects_from_lines(lines, kinds)
    today = today or max(f.occurred_on for s in subjects for f in s.facts)
    return balances(payments([load_contract_yaml(p) for p in contract_files], subjects, today))


def registry_kinds(path: Path) -> dict[str, str]:
    """Institution id -> kind, from a registry file."""
    return {row["id"]: row["kind"] for row in yaml.safe_load(path.read_text())["institutions"]}
