"""The business case: payments against estimated public savings, assumptions listed.

For each verified outcome with an assumption: yearly saving x (1 - deadweight), counted
for min(years, horizon) years and discounted at the stated rate. Exact fractions until
the result is rounded down to whole minor units.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from cli.reporting.data import ReportData, summarise
from shared.domain.events import Currency


class OutcomeAssumption(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    yearly_saving_minor: int = Field(ge=0)
    years: int = Field(ge=1, le=80)
    deadweight: Decimal = Field(ge=0, le=1)
    source: str


class Assumptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    # The currency the savings are estimated in: a contract paying in another currency
    # is not netted against them (no conversion).
    currency: Currency = "DKK"
    horizon_years: int = Field(ge=1, le=80)
    discount_rate: Decimal = Field(ge=0, le=1)
    outcomes: dict[str, OutcomeAssumption]


def load_assumptions(path: Path) -> Assumptions:
    return Assumptions.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def present_value_minor(assumption: OutcomeAssumption, horizon_years: int, rate: Decimal) -> int:
    factor = Fraction(1) - Fraction(assumption.deadweight)
    discount = Fraction(1) + Fraction(rate)
    total = sum((Fraction(assumption.yearly_saving_minor) * factor / discount**year
                 for year in range(1, min(assumption.years, horizon_years) + 1)), Fraction(0))
    return total.numerator // total.denominator


@dataclass(frozen=True)
class BusinessCase:
    contract_id: str
    currency: str
    paid_minor: int
    # None: the contract pays in another currency than the savings are estimated in.
    savings_minor: int | None
    lines: tuple[tuple[str, int, int], ...]  # (outcome id, verified count, savings)

    @property
    def net_minor(self) -> int | None:
        return None if self.savings_minor is None else self.savings_minor - self.paid_minor


def business_cases(data: ReportData, assumptions: Assumptions) -> list[BusinessCase]:
    verified = Counter((r.contract_id, r.outcome_id) for r in data.outcomes if r.status == "verified")
    cases = []
    for summary in summarise(data):
        lines = []
        for (contract_id, outcome_id), count in sorted(verified.items()):
            assumption = assumptions.outcomes.get(outcome_id)
            if contract_id != summary.contract_id or assumption is None:
                continue
            each = present_value_minor(assumption, assumptions.horizon_years, assumptions.discount_rate)
            lines.append((outcome_id, count, each * count))
        comparable = summary.currency == assumptions.currency
        cases.append(BusinessCase(summary.contract_id, summary.currency, summary.paid_minor,
                                  sum(x[2] for x in lines) if comparable else None, tuple(lines)))
    return cases
