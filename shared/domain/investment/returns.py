"""A contract's return rule, and its verdict when the investment closes.

The rule (a contract's `investment:` block, docs/investment.md): an investor finances
the work with `principal_minor`; outcome payments go to the investor, at most the
principal plus `max_return` of it (20 %: DKK 2,000,000 becomes at most 2,400,000); when
outcomes fall short the investor bears the loss, unless a guarantor covers the first
part of it (`guarantee`: first-loss cover up to an amount). Nothing else is owed: the
payer never pays beyond the outcome payments the contract prices, capped by the rule.

The verdict (`close`) is computed by the ledger from what it holds when the contract is
over: what the investor disbursed, and what it was repaid (outcome payments settled to
it, and for a fund, savings paid in). Exact integers throughout; the one rounding (the
allowed return of a rate) is down, in the payer's favour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from shared.domain.events import Frozen, Identifier
from shared.domain.investment.records import AMOUNT_MINOR_MAX, Amount, ReturnRate


class Guarantee(Frozen):
    """First-loss cover: the guarantor makes good the investor's shortfall up to this."""

    guarantor: Identifier
    amount_minor: Amount


class ReturnRule(Frozen):
    investor: Identifier
    principal_minor: Amount
    max_return: ReturnRate
    guarantee: Guarantee | None = None

    @property
    def cap_minor(self) -> int:
        """The most the payer ever pays the investor under the contract."""
        return self.principal_minor + allowed_return_minor(self.principal_minor, self.max_return)


def allowed_return_minor(principal_minor: int, max_return: Decimal) -> int:
    """`max_return` of the principal, rounded down to a whole minor unit."""
    return math.floor(principal_minor * Fraction(max_return))


@dataclass(frozen=True)
class Verdict:
    """What the return rule makes of one investor's money under one contract."""

    disbursed_minor: int
    repaid_minor: int
    return_minor: int  # repaid beyond the principal, within the rule
    loss_minor: int  # the shortfall the investor bears
    guarantee_minor: int  # the shortfall the guarantor covers
    owed_back_minor: int  # repaid beyond the rule: the investor owes it back to the payer

    @property
    def recovered_minor(self) -> int:
        """Repaid and kept."""
        return self.repaid_minor - self.owed_back_minor


class ReturnRuleBroken(RuntimeError):
    """A bug: a verdict whose parts do not add up must never be recorded."""


def close(disbursed_minor: int, repaid_minor: int, max_return: Decimal, guarantee_minor: int = 0) -> Verdict:
    """The verdict: disbursed == recovered + loss + guarantee - return, to the øre.

    `repaid_minor` may be negative (clawed back after it was paid) only in theory: a
    contract pays its investor for outcomes, a clawback never exceeds what was paid.
    """
    if disbursed_minor <= 0 or repaid_minor < 0 or guarantee_minor < 0:
        raise ValueError("close needs a positive disbursement and no negative repayment or guarantee")
    if disbursed_minor > AMOUNT_MINOR_MAX or repaid_minor > AMOUNT_MINOR_MAX:
        raise ValueError("amount beyond the limit")
    shortfall = max(0, disbursed_minor - repaid_minor)
    covered = min(guarantee_minor, shortfall)
    surplus = max(0, repaid_minor - disbursed_minor)
    allowed = allowed_return_minor(disbursed_minor, max_return)
    verdict = Verdict(disbursed_minor, repaid_minor, return_minor=min(surplus, allowed),
                      loss_minor=shortfall - covered, guarantee_minor=covered,
                      owed_back_minor=max(0, surplus - allowed))
    if verdict.recovered_minor + verdict.loss_minor + verdict.guarantee_minor - verdict.return_minor \
            != disbursed_minor:
        raise ReturnRuleBroken(str(verdict))
    return verdict
