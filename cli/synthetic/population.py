"""A deterministic synthetic population: institutions, subjects and their events.

Seeded (`random.Random(seed)`), so the same arguments give the same events, byte for
byte. Chains: daycare, primary school (sometimes a change of school), the 9th-grade
exam, youth education or not, completion or not, employment or NEET spells, with
absence reports, late reports, duplicates and retractions. Default rates follow
published Danish figures for a municipality as a whole (a Sønderborg housing-area
agreement), see `Rates`; all names are synthetic.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from shared.domain.institutions import Institution, synthetic_payee_fields

D = dt.date
GENERATED_UNTIL = D(2026, 6, 30)


@dataclass(frozen=True)
class Rates:
    # 9th-grade exam with at least 2.0 in Danish and maths: 91.4 % municipality-wide
    # (82.5 % in the housing area).
    exam_pass: float = 0.914
    # 18-29-year-olds with an education beyond primary school: 59.2 % (45.3 %).
    youth_education_completed: float = 0.592
    # Pupils with more than 9 days of unlawful absence: 1.9 % (4.6 %).
    high_absence: float = 0.019
    # 15-24-year-olds in neither job nor education: 8.49 % (11.65 %).
    neet: float = 0.0849
    school_change: float = 0.15
    youth_education_started: float = 0.85
    employment_actor_for_neet: float = 0.7
    job_found: float = 0.6
    job_lost_early: float = 0.3
    # Completers who go on to a job within months (0: the chain ends at completion, as
    # the contract tests and the demo assume; the indicator baselines need it > 0).
    onward_after_completion: float = 0.0
    # Early leavers (no youth education started, or dropped out) who find a job soon
    # after leaving instead of a spell at the jobcentre (0: never, as the pinned tests
    # assume; the NEET baseline needs it > 0).
    early_job: float = 0.0
    late_report: float = 0.05
    duplicate: float = 0.01
    retraction: float = 0.005


@dataclass(frozen=True)
class Area:
    """A housing area inside the municipality: `share` of the subjects grow up in it,
    attend its daycare and school (index 0 of each kind) and follow `rates`; everyone
    else attends the others and follows the generator's own rates."""

    share: float
    rates: Rates


@dataclass(frozen=True)
class Effect:
    """A known effect injected for an experiment's tests: from the exam year `from_year`
    on, pupils of the treated schools pass the 9th-grade exam with `exam_pass_change`
    added to the probability (clamped to 0-1)."""

    from_year: int
    exam_pass_change: float
    schools: frozenset[str]


@dataclass(frozen=True)
class Population:
    institutions: tuple[Institution, ...]
    subjects: int


@dataclass
class _Emitter:
    until: dt.date
    rates: Rates
    chance: random.Random
    events: list[dict[str, object]] = field(default_factory=list)
    counter: int = 0

    def emit(self, on: dt.date, by: str, cpr: str, body: dict[str, object]) -> str | None:
        if on > self.until:
            return None
        self.counter += 1
        event_id = f"ev-{self.counter:09d}"
        event: dict[str, object] = {"event_id": event_id, "occurred_on": on.isoformat(), "reported_by": by,
                 "subject": {"cpr": cpr}, "body": body}
        self.events.append(event)
        if self.chance.random() < self.rates.duplicate:
            self.events.append(event)  # the same event id twice: one event
        return event_id


def institutions(municipalities: int, seed: int) -> tuple[Institution, ...]:
    chance = random.Random(seed)
    result = [Institution(id="exam-authority", name="Exam authority (synthetic)", kind="exam_authority"),
              Institution(id="income-register", name="Income register (synthetic)", kind="income_register"),
              Institution(id="nordic-impact-investor", name="Nordic Impact Investor (synthetic)", kind="investor",
                          **synthetic_payee_fields("nordic-impact-investor"))]
    streets = ["Skovvej", "Bakken", "Møllen", "Solsikken", "Engen", "Havnen", "Kirkebakken", "Åparken"]
    for m in range(municipalities):
        town = f"kommune-{m:03d}"
        result.append(Institution(id=town, name=f"Kommune {m:03d} (synthetic)", kind="municipality",
                                  municipality=town, **synthetic_payee_fields(town)))
        for kind, count, label in (("daycare", 6, "Børnehuset"), ("primary_school", 4, "Skolen"),
                                   ("youth_education", 2, "Gymnasium"), ("employment_actor", 1, "Jobcenter"),
                                   ("social_enterprise", 1, "Værkstedet")):
            for n in range(count):
                street = chance.choice(streets)
                institution_id = f"{town}-{kind.replace('_', '-')}-{n}"
                result.append(Institution(id=institution_id,
                                          name=f"{label} {street} {m:03d}-{n} (synthetic)", kind=kind,
                                          municipality=town, **synthetic_payee_fields(institution_id)))
    return tuple(result)


def _cpr(birth: dt.date, same_birthday: int) -> str:
    """A unique, shape-valid CPR number: the `same_birthday`-th subject born that day.

    The 7th digit goes with the century: 4-9 serve births 2000-2036 (6,000 numbers per
    day), 0-3 the 1900s (4,000)."""
    first = 4 if birth.year >= 2000 else 0
    seventh = first + same_birthday // 1000
    if seventh > 9 or (first == 0 and seventh > 3):
        raise ValueError(f"more subjects born on {birth} than CPR numbers for that day")
    return f"{birth:%d%m%y}-{seventh}{same_birthday % 1000:03d}"


def _subject_events(out: _Emitter, cpr: str, birth: dt.date, town: str, chance: random.Random,
                    area: tuple[Area, bool] | None = None, effect: Effect | None = None) -> None:
    rates = out.rates if area is None or not area[1] else area[0].rates
    y = birth.year

    def at(kind: str, n: int) -> str:
        return f"{town}-{kind}-{n}"

    def pick(count: int) -> int:
        """Without an area: any of `count` (the random stream the pinned tests know).
        With one: index 0 for the area's children, 1..count-1 for everyone else."""
        if area is None:
            return chance.randrange(count)
        return 0 if area[1] else 1 + chance.randrange(count - 1)

    daycare = at("daycare", pick(6))
    start = D(y + 1, 8, 1)
    out.emit(start, daycare, cpr, {"type": "enrolled", "institution": daycare, "stage": "daycare"})
    out.emit(D(y + 6, 7, 31), daycare, cpr, {"type": "left", "institution": daycare, "stage": "daycare"})
    school = at("primary-school", pick(4))
    out.emit(D(y + 6, 8, 1), school, cpr, {"type": "enrolled", "institution": school, "stage": "primary"})
    # With an area or an experiment, children neither move into nor out of a school: a
    # unit is the catchment of its institutions, and a pupil counted in two would blur
    # the comparison (docs/indicators.md).
    if area is None and effect is None and chance.random() < rates.school_change:
        change_year = y + chance.randint(8, 14)
        out.emit(D(change_year, 6, 30), school, cpr, {"type": "left", "institution": school, "stage": "primary"})
        school = at("primary-school", (int(school[-1]) + 1) % 4)
        out.emit(D(change_year, 8, 12), school, cpr, {"type": "enrolled", "institution": school, "stage": "primary"})
    absent_days = chance.randint(10, 30) if chance.random() < rates.high_absence else chance.randint(0, 9)
    out.emit(D(y + 15, 6, 20), school, cpr, {"type": "absence", "institution": school,
                                             "period_start": D(y + 14, 8, 1).isoformat(),
                                             "period_end": D(y + 15, 6, 20).isoformat(),
                                             "days_absent": absent_days, "days_total": 200})
    pass_probability = rates.exam_pass
    if effect is not None and school in effect.schools and y + 16 >= effect.from_year:
        pass_probability = min(1.0, max(0.0, pass_probability + effect.exam_pass_change))
    passed = chance.random() < pass_probability
    grades = [2.0, 4.0, 7.0, 10.0, 12.0] if passed else [-3.0, 0.0]
    out.emit(D(y + 16, 6, 20), "exam-authority", cpr,
             {"type": "exam_result", "exam": "fp9",
              "grades": {"danish": chance.choice(grades), "maths": chance.choice(grades)}})
    out.emit(D(y + 16, 6, 26), school, cpr, {"type": "left", "institution": school, "stage": "primary"})
    last_day = D(y + 16, 6, 26)
    if chance.random() < rates.youth_education_started * (1.0 if passed else 0.6):
        college = at("youth-education", chance.randrange(2))
        out.emit(D(y + 16, 8, 10), college, cpr, {"type": "enrolled", "institution": college, "stage": "youth"})
        completes = chance.random() < rates.youth_education_completed / rates.youth_education_started
        end = D(y + 19, 6, 23) if completes else D(y + 17, chance.randint(1, 12), 1)
        out.emit(end, college, cpr, {"type": "left", "institution": college, "stage": "youth"})
        last_day = end
        if completes:
            out.emit(end, "exam-authority", cpr, {"type": "education_completed", "programme": "stx",
                                                  "level": "youth", "institution": college})
            if rates.onward_after_completion > 0 and chance.random() < rates.onward_after_completion:
                out.emit(end + dt.timedelta(days=chance.randint(30, 120)), "income-register", cpr,
                         {"type": "employment_started", "employer": at("social-enterprise", 0)})
            return
    if rates.early_job > 0 and chance.random() < rates.early_job:
        out.emit(last_day + dt.timedelta(days=chance.randint(14, 120)), "income-register", cpr,
                 {"type": "employment_started", "employer": at("social-enterprise", 0)})
        return
    if chance.random() < rates.employment_actor_for_neet:
        actor = at("employment-actor", 0)
        out.emit(D(y + 19, 9, 1), actor, cpr, {"type": "enrolled", "institution": actor, "stage": "employment"})
        if chance.random() < rates.job_found:
            employer = at("social-enterprise", 0)
            job = D(y + 20, chance.randint(1, 12), 1)
            out.emit(job, "income-register", cpr, {"type": "employment_started", "employer": employer})
            if chance.random() < rates.job_lost_early:
                out.emit(job + dt.timedelta(days=chance.randint(20, 150)), "income-register", cpr,
                         {"type": "employment_ended", "employer": employer})


def generate(subjects: int, *, seed: int = 1, municipalities: int = 1, born_from: int = 2000,
             born_to: int = 2006, until: dt.date = GENERATED_UNTIL, rates: Rates | None = None,
             area: Area | None = None, effect: Effect | None = None
             ) -> tuple[tuple[Institution, ...], Iterator[dict[str, object]]]:
    """The institutions, and an iterator over the events in publishing order."""
    rates = rates or Rates()
    registry = institutions(municipalities, seed)
    return registry, _events(subjects, seed, municipalities, born_from, born_to, until, rates, area, effect)


def _events(subjects: int, seed: int, municipalities: int, born_from: int, born_to: int,
            until: dt.date, rates: Rates, area: Area | None = None, effect: Effect | None = None
            ) -> Iterator[dict[str, object]]:
    chance = random.Random(seed + 1)
    out = _Emitter(until, rates, chance)
    span = (D(born_to, 12, 31) - D(born_from, 1, 1)).days
    born_on: dict[dt.date, int] = {}
    for _ in range(subjects):
        birth = D(born_from, 1, 1) + dt.timedelta(days=chance.randrange(span + 1))
        town = f"kommune-{chance.randrange(municipalities):03d}"
        cpr = _cpr(birth, born_on.get(birth, 0))
        born_on[birth] = born_on.get(birth, 0) + 1
        first = len(out.events)
        where = None if area is None else (area, chance.random() < area.share)
        _subject_events(out, cpr, birth, town, chance, where, effect)
        if chance.random() < rates.retraction and len(out.events) > first:
            victim = out.events[chance.randrange(first, len(out.events))]
            out.emit(dt.date.fromisoformat(str(victim["occurred_on"])) + dt.timedelta(days=7),
                     str(victim["reported_by"]), cpr,
                     {"type": "retraction", "retracts_event_id": victim["event_id"], "reason": "reported in error"})
        # Bounded memory: hand over this subject's events before the next subject.
        yield from _publishing_order(out.events[first:], chance, rates)
        del out.events[first:]


def _publishing_order(events: list[dict[str, object]], chance: random.Random, rates: Rates
                      ) -> list[dict[str, object]]:
    """Mostly in date order; a few late reports arrive after later facts."""
    ordered = sorted(events, key=lambda e: str(e["occurred_on"]))
    late = [e for e in ordered if chance.random() < rates.late_report]
    return [e for e in ordered if e not in late] + late


def to_json_line(event: dict[str, object]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def write_registry(path: Path, registry: tuple[Institution, ...]) -> None:
    """The institution registry file ingest and the verifier read (INSTITUTIONS_FILE)."""
    rows = [i.model_dump(mode="json", exclude_none=True) for i in registry]
    path.write_text("# Synthetic institutions (stafet generate); names are made up.\n"
                    + yaml.safe_dump({"institutions": rows}, allow_unicode=True, sort_keys=False))
