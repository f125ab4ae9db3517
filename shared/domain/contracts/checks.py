"""Checks a contract version must pass before it may pay anyone, beyond what the model
itself validates: against the institution registry, against the other versions of the
same contract, and for windows no subject can ever fall into.

A contract that names a payee the registry does not know instructs money to an account
no payout can reach (`ghost-provider-ltd`); two versions with one `effective_from` leave
the lower one silently never in force; an age window like "at least 30 and below 20", or
a deadline before the version takes effect, makes an outcome that never pays. Each is a
`ContractIssue`: a reason code, the field it is about (as the contract file spells it),
and one line of text. Pure: the registry comes in as a mapping of institution id to
kind.

Who runs them: `stafet contract check [--registry FILE]` and `stafet contract apply`
(all of them), and the verifier when a version is applied (`VERIFIER_REFUSES`: the
registry's payees and fallback, the versions and the windows; not the payer or the
kinds, which its registry may not list when it is a synthetic one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from shared.domain.contracts.model import (
    AreaDistribution,
    Contract,
    DirectDistribution,
    Payee,
    SolidarityDistribution,
    SplitDistribution,
    effective_from,
)


class ContractProblem(StrEnum):
    UNKNOWN_PAYER = "unknown_payer"
    UNKNOWN_PAYEE = "unknown_payee"
    UNKNOWN_FALLBACK = "unknown_fallback"
    UNKNOWN_INSTITUTION = "unknown_institution"  # an area, comparison or exclusion names one
    UNKNOWN_KIND = "unknown_kind"  # no institution in the registry is of this kind
    WRONG_KIND = "wrong_kind"  # the institution exists but cannot play this part
    SAME_EFFECTIVE_FROM = "same_effective_from"
    EMPTY_AGE_RANGE = "empty_age_range"
    IMPOSSIBLE_WINDOW = "impossible_window"
    DEADLINE_BEFORE_EFFECTIVE_FROM = "deadline_before_effective_from"


# The kinds that report evidence (exams, jobs, benefits, growth, parents' education): an
# institution paid for an outcome is never the source of its evidence, so none of these
# is ever a payer, payee or fallback.
EVIDENCE_KINDS = frozenset({"exam_authority", "income_register", "benefit_register", "business_register",
                            "education_register"})
INVESTOR_KINDS = frozenset({"investor", "fund"})
VERIFIER_REFUSES = frozenset({
    ContractProblem.UNKNOWN_PAYEE, ContractProblem.UNKNOWN_FALLBACK, ContractProblem.SAME_EFFECTIVE_FROM,
    ContractProblem.EMPTY_AGE_RANGE, ContractProblem.IMPOSSIBLE_WINDOW,
    ContractProblem.DEADLINE_BEFORE_EFFECTIVE_FROM,
})


@dataclass(frozen=True)
class ContractIssue:
    code: ContractProblem
    field: str  # dotted, as in the file: outcomes.0.distribution.payee.institution
    text: str  # one line

    def line(self) -> str:
        return f"{self.field}: {self.code.value}: {self.text}"


def _named_payees(contract: Contract) -> Iterable[tuple[str, Payee]]:
    for index, outcome in enumerate(contract.outcomes):
        rule = outcome.distribution
        if isinstance(rule, DirectDistribution):
            yield f"outcomes.{index}.distribution.payee", rule.payee
        elif isinstance(rule, SplitDistribution):
            for n, share in enumerate(rule.shares):
                yield f"outcomes.{index}.distribution.shares.{n}.payee", share.payee
    for index, measured in enumerate(contract.indicator_outcomes):
        measured_rule = measured.distribution
        if isinstance(measured_rule, DirectDistribution):
            yield f"indicator_outcomes.{index}.distribution.payee", measured_rule.payee
        elif isinstance(measured_rule, SplitDistribution):
            for n, share in enumerate(measured_rule.shares):
                yield f"indicator_outcomes.{index}.distribution.shares.{n}.payee", share.payee


def _paid(identifier: str, field: str, kinds: Mapping[str, str], unknown: ContractProblem,
          what: str) -> list[ContractIssue]:
    """An institution money goes to (or comes from) must be registered and not an
    evidence source."""
    if identifier not in kinds:
        return [ContractIssue(unknown, field, f"{what} {identifier!r} is not in the institution registry")]
    if kinds[identifier] in EVIDENCE_KINDS:
        return [ContractIssue(ContractProblem.WRONG_KIND, field,
                              f"{what} {identifier!r} is a {kinds[identifier]}, an evidence source, never paid")]
    return []


def registry_issues(contract: Contract, kinds: Mapping[str, str]) -> list[ContractIssue]:
    """Every institution and kind the contract names, against the registry."""
    issues = _paid(contract.payer, "payer", kinds, ContractProblem.UNKNOWN_PAYER, "payer")
    if contract.fallback_account is not None:
        issues += _paid(contract.fallback_account, "fallback_account", kinds, ContractProblem.UNKNOWN_FALLBACK,
                        "fallback account")
    known_kinds = set(kinds.values())
    for field, payee in _named_payees(contract):
        if payee.role == "institution" and payee.institution is not None:
            issues += _paid(payee.institution, f"{field}.institution", kinds, ContractProblem.UNKNOWN_PAYEE, "payee")
        if payee.role == "registered_kind" and payee.kind is not None:
            if payee.kind not in known_kinds:
                issues.append(ContractIssue(ContractProblem.UNKNOWN_KIND, f"{field}.kind",
                                            f"no registered institution is of kind {payee.kind!r}"))
            elif payee.kind in EVIDENCE_KINDS:
                issues.append(ContractIssue(ContractProblem.WRONG_KIND, f"{field}.kind",
                                            f"kind {payee.kind!r} is an evidence source, never paid"))
    issues += _kinds_named(contract, known_kinds)
    issues += _institutions_named(contract, kinds)
    rule = contract.investment
    if rule is not None:
        if rule.investor not in kinds:
            issues.append(ContractIssue(ContractProblem.UNKNOWN_PAYEE, "investment.investor",
                                        f"investor {rule.investor!r} is not in the institution registry"))
        elif kinds[rule.investor] not in INVESTOR_KINDS:
            issues.append(ContractIssue(ContractProblem.WRONG_KIND, "investment.investor",
                                        f"investor {rule.investor!r} is a {kinds[rule.investor]}, not an investor "
                                        "or fund"))
        if rule.guarantee is not None and rule.guarantee.guarantor not in kinds:
            issues.append(ContractIssue(ContractProblem.UNKNOWN_INSTITUTION, "investment.guarantee.guarantor",
                                        f"guarantor {rule.guarantee.guarantor!r} is not in the institution registry"))
    return issues


def _kinds_named(contract: Contract, known_kinds: set[str]) -> list[ContractIssue]:
    issues = []
    named = [(f"outcomes.{i}.trigger.reported_by_kinds", kind)
             for i, o in enumerate(contract.outcomes) for kind in o.trigger.reported_by_kinds]
    if contract.eligibility.enrolled_on is not None:
        named += [("eligibility.enrolled_on.kinds", kind) for kind in contract.eligibility.enrolled_on.kinds]
    for field, kind in named:
        if kind not in known_kinds:
            issues.append(ContractIssue(ContractProblem.UNKNOWN_KIND, field,
                                        f"no registered institution is of kind {kind!r}"))
    return issues


def _institutions_named(contract: Contract, kinds: Mapping[str, str]) -> list[ContractIssue]:
    """Institutions named as places (an area, a comparison, an exclusion) must exist; the
    area's institutions are payees too when the area is paid."""
    named: list[tuple[str, str, bool]] = []  # field, institution, paid
    for index, outcome in enumerate(contract.outcomes):
        if isinstance(outcome.distribution, SolidarityDistribution):
            named += [(f"outcomes.{index}.distribution.exclude_institutions", i, False)
                      for i in outcome.distribution.exclude_institutions]
    for index, measured in enumerate(contract.indicator_outcomes):
        paid = isinstance(measured.distribution, AreaDistribution)
        named += [(f"indicator_outcomes.{index}.area.institutions", i, paid) for i in measured.area.institutions]
        if measured.comparison is not None:
            named += [(f"indicator_outcomes.{index}.comparison.institutions", i, False)
                      for i in measured.comparison.institutions]
    issues = []
    for field, identifier, paid in named:
        if paid:
            issues += _paid(identifier, field, kinds, ContractProblem.UNKNOWN_PAYEE, "payee (the area is paid)")
        elif identifier not in kinds:
            issues.append(ContractIssue(ContractProblem.UNKNOWN_INSTITUTION, field,
                                        f"institution {identifier!r} is not in the institution registry"))
    return issues


def window_issues(contract: Contract) -> list[ContractIssue]:
    """Outcomes no subject can ever reach: an empty age range, an age window the
    eligible birth years never fall into while the version is in force, a deadline
    before the version takes effect."""
    issues = []
    starts = effective_from(contract)
    for index, outcome in enumerate(contract.outcomes):
        trigger = outcome.trigger
        field = f"outcomes.{index}.trigger"
        low, below = trigger.age_at_least, trigger.age_below
        if below is not None and (below == 0 or (low is not None and below <= low)):
            issues.append(ContractIssue(ContractProblem.EMPTY_AGE_RANGE, f"{field}.age_below",
                                        f"no age is at least {low or 0} and below {below}"))
        last = min(outcome.deadline or contract.period.end, contract.period.end)
        if outcome.deadline is not None and outcome.deadline < starts:
            issues.append(ContractIssue(ContractProblem.DEADLINE_BEFORE_EFFECTIVE_FROM, f"outcomes.{index}.deadline",
                                        f"{outcome.deadline} is before this version takes effect on {starts}"))
            continue
        issues += _ages_never_reached(contract, index, starts, last)
    return issues


def _ages_never_reached(contract: Contract, index: int, first: dt.date, last: dt.date) -> list[ContractIssue]:
    """The ages the eligible birth years can have on a trigger day in [first, last],
    against the trigger's age window (checked only where both are bounded)."""
    trigger = contract.outcomes[index].trigger
    rules = contract.eligibility
    field = f"outcomes.{index}.trigger"
    if trigger.age_below is not None and rules.birth_year_to is not None:
        youngest = first.year - rules.birth_year_to - 1  # born on the last day of the year
        if youngest >= trigger.age_below:
            return [ContractIssue(ContractProblem.IMPOSSIBLE_WINDOW, f"{field}.age_below",
                                  f"born by {rules.birth_year_to}, no one is below {trigger.age_below} on or after "
                                  f"{first}")]
    if trigger.age_at_least is not None and rules.birth_year_from is not None:
        oldest = last.year - rules.birth_year_from
        if oldest < trigger.age_at_least:
            return [ContractIssue(ContractProblem.IMPOSSIBLE_WINDOW, f"{field}.age_at_least",
                                  f"born from {rules.birth_year_from}, no one is {trigger.age_at_least} by {last}")]
    return []


def version_issues(contracts: Sequence[Contract]) -> dict[tuple[str, int], list[ContractIssue]]:
    """Per version: another version of the same contract takes effect on the same day
    (the lower one would never be in force). Named on both versions."""
    issues: dict[tuple[str, int], list[ContractIssue]] = {}
    by_day: dict[tuple[str, dt.date], list[Contract]] = {}
    for contract in sorted(contracts, key=lambda c: (c.contract_id, c.version)):
        by_day.setdefault((contract.contract_id, effective_from(contract)), []).append(contract)
    for (contract_id, day), versions in by_day.items():
        if len(versions) < 2:
            continue
        listed = " and ".join(f"v{c.version}" for c in versions)
        hidden = ", ".join(f"v{c.version}" for c in versions[:-1])
        for contract in versions:
            field = "effective_from" if contract.effective_from is not None else "period.start"
            issues.setdefault((contract_id, contract.version), []).append(ContractIssue(
                ContractProblem.SAME_EFFECTIVE_FROM, field,
                f"{listed} of {contract_id} all take effect on {day}: {hidden} would never be in force"
                if len(versions) > 2 else
                f"{listed} of {contract_id} both take effect on {day}: {hidden} would never be in force"))
    return issues


def issues_of(contract: Contract, others: Sequence[Contract], kinds: Mapping[str, str] | None) -> list[ContractIssue]:
    """Everything wrong with `contract` among `others` (other versions known), against
    the registry when one is given."""
    found = window_issues(contract)
    if kinds is not None:
        found += registry_issues(contract, kinds)
    versions = [c for c in others if (c.contract_id, c.version) != (contract.contract_id, contract.version)]
    found += version_issues([*versions, contract]).get((contract.contract_id, contract.version), [])
    return found
