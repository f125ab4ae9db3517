"""Indicators as data: what is counted, over whom, when, and against which baselines.

An indicator is a share: subjects in the numerator over subjects in the denominator,
for one population and one period. Both are counted from the same facts the verifier
keeps (`SubjectTimeline`), so any population and any year can be measured the same
way. Definitions are frozen pydantic models loaded from YAML (`examples/indicators/`).

Two kinds of count, enough for the four Sønderborg indicators and for most register
statistics of the same shape:

- `has_fact`: the subject has an effective fact of a type whose body satisfies every
  predicate, dated in the period (or, with `up_to_reference_day`, on or before it);
- `status_on_day`: on the period's reference day the subject is, or is not, in
  education (registered at an institution of one of `education_kinds`) or in a job
  (an `employment_started` not yet ended).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.domain.contracts.predicate import Predicate
from shared.domain.events import EventType, Identifier

# Statistics Denmark's and the ministries' rule for published tables: a cell over fewer
# subjects than this is not shown (primary discretion). Configurable per call.
DEFAULT_MINIMUM_CELL = 5
MINIMUM_CELL_MAX = 1_000
MONTH_DAY = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Period(Frozen):
    """Which facts and which day a measurement for `year` looks at.

    school_year: facts dated from `starts` in `year` to the day before it in `year + 1`
    (the school year 2019/2020 is year 2019); its reference day is the last day.
    calendar_year: facts dated in `year`; reference day 31 December.
    reference_day: one day, `day` (MM-DD) in `year`; facts dated on or before it.
    """

    kind: Literal["school_year", "calendar_year", "reference_day"]
    starts: Annotated[str, StringConstraints(pattern=MONTH_DAY)] = "08-01"
    day: Annotated[str, StringConstraints(pattern=MONTH_DAY)] = "01-01"

    def window(self, year: int) -> tuple[dt.date, dt.date]:
        """First and last day (inclusive) of the period measured for `year`."""
        if self.kind == "school_year":
            month, day = (int(p) for p in self.starts.split("-"))
            first = dt.date(year, month, day)
            return first, dt.date(year + 1, month, day) - dt.timedelta(days=1)
        if self.kind == "calendar_year":
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
        month, day = (int(p) for p in self.day.split("-"))
        return dt.date.min, dt.date(year, month, day)

    def reference_day(self, year: int) -> dt.date:
        return self.window(year)[1]

    def label(self, year: int) -> str:
        if self.kind == "school_year":
            return f"{year}/{year + 1}"
        if self.kind == "calendar_year":
            return str(year)
        return self.reference_day(year).isoformat()


class Population(Frozen):
    """Who is counted at all: age on the period's reference day, and (for an area or an
    institution) a registration at one of `institutions` at any time up to that day.
    Residence is not a fact Stafet receives yet; an area is the catchment of its
    institutions (docs/indicators.md)."""

    age_from: Annotated[int, Field(ge=0, le=130)] | None = None
    age_to: Annotated[int, Field(ge=0, le=130)] | None = None
    institutions: tuple[Identifier, ...] = ()
    born_from: Annotated[int, Field(ge=1900, le=2100)] | None = None
    born_to: Annotated[int, Field(ge=1900, le=2100)] | None = None


class HasFact(Frozen):
    kind: Literal["has_fact"] = "has_fact"
    event: EventType
    where: tuple[Predicate, ...] = ()
    # Count facts dated on or before the reference day instead of inside the period
    # (a stock, such as "has completed an education", rather than a flow).
    up_to_reference_day: bool = False


class StatusOnDay(Frozen):
    kind: Literal["status_on_day"] = "status_on_day"
    in_education: bool | None = None
    in_job: bool | None = None
    education_kinds: tuple[Identifier, ...] = ("primary_school", "youth_education")


class Everyone(Frozen):
    """The whole population (a denominator)."""

    kind: Literal["everyone"] = "everyone"


Count = Annotated[HasFact | StatusOnDay | Everyone, Field(discriminator="kind")]


class Baseline(Frozen):
    """A published value the indicator is followed against."""

    scope: Annotated[str, StringConstraints(min_length=1, max_length=64)]  # "area", "municipality"
    percent: Decimal
    # The count the source publishes next to the percentage, as published (the source
    # does not always say whether it is the numerator or the denominator).
    count: Annotated[int, Field(ge=0)] | None = None
    year: int
    label: Annotated[str, StringConstraints(max_length=64)] = ""
    source: Annotated[str, StringConstraints(max_length=500)] = ""


class Indicator(Frozen):
    id: Identifier
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    # The definition in the source's words (docs/indicators.md quotes it).
    definition: Annotated[str, StringConstraints(max_length=2000)] = ""
    better: Literal["higher", "lower"]
    period: Period
    population: Population = Population()
    denominator: Count = Everyone()
    numerator: Count
    baselines: tuple[Baseline, ...] = ()
    data_source: Annotated[str, StringConstraints(max_length=500)] = ""

    @model_validator(mode="after")
    def _numerator_is_not_everyone(self) -> Indicator:
        if isinstance(self.numerator, Everyone):
            raise ValueError("numerator: 'everyone' would make the indicator 100 % by definition")
        return self


class Scope(Frozen):
    """A named population the indicators are measured for: the municipality (no
    institutions: everyone), or a housing area (the catchment of its institutions)."""

    name: Identifier
    institutions: tuple[Identifier, ...] = ()


class IndicatorSet(Frozen):
    indicators: tuple[Indicator, ...] = Field(min_length=1, max_length=200)
    scopes: tuple[Scope, ...] = (Scope(name="all"),)

    @model_validator(mode="after")
    def _unique_ids(self) -> IndicatorSet:
        ids = [i.id for i in self.indicators]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"indicator ids must be unique: {', '.join(duplicates)}")
        names = [s.name for s in self.scopes]
        if len(set(names)) != len(names):
            raise ValueError("scope names must be unique")
        return self

    def by_id(self, indicator_id: str) -> Indicator | None:
        return next((i for i in self.indicators if i.id == indicator_id), None)
