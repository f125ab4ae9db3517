"""The contract book: every version of every contract, and which one is in force when.

Operators publish contract versions; none is ever replaced. For a contract id, version
N is in force for triggers dated from its `effective_from` until the day before the
next version's `effective_from`. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.domain.contracts.model import Contract, effective_from

ONE_DAY = dt.timedelta(days=1)


class ContractConflict(ValueError):
    """The same contract id and version was published with different content."""


class ReturnRuleChanged(ContractConflict):
    """A version that changes the contract's return rule: the investment agreement is the
    investor's and the payer's, not a contract version's to change (docs/investment.md)."""


@dataclass
class ContractBook:
    _versions: dict[tuple[str, int], Contract] = field(default_factory=dict)

    @classmethod
    def of(cls, contracts: Iterable[Contract]) -> ContractBook:
        book = cls()
        for contract in contracts:
            book.add(contract)
        return book

    def add(self, contract: Contract) -> bool:
        """Add a version; True if it is new. Re-publishing identical content is a no-op."""
        key = (contract.contract_id, contract.version)
        known = self._versions.get(key)
        if known is not None:
            if known != contract:
                raise ContractConflict(
                    f"{contract.contract_id} v{contract.version} was already published with "
                    "different content; publish a new version instead")
            return False
        for (contract_id, _), other in self._versions.items():
            if contract_id == contract.contract_id and other.investment != contract.investment:
                raise ReturnRuleChanged(
                    f"{contract.contract_id} v{contract.version} changes the return rule of v{other.version}; "
                    "every version of a contract carries the same return rule")
        self._versions[key] = contract
        return True

    def __len__(self) -> int:
        return len(self._versions)

    def all(self) -> tuple[Contract, ...]:
        return tuple(self._versions[k] for k in sorted(self._versions))

    def in_force(self) -> tuple[tuple[Contract, tuple[dt.date, dt.date]], ...]:
        """Every version with the window of trigger dates it decides."""
        by_id: dict[str, list[Contract]] = {}
        for contract in self.all():
            by_id.setdefault(contract.contract_id, []).append(contract)
        result = []
        for versions in by_id.values():
            ordered = sorted(versions, key=lambda c: (effective_from(c), c.version))
            for current, following in zip(ordered, [*ordered[1:], None], strict=True):
                last = effective_from(following) - ONE_DAY if following else dt.date.max
                if last >= effective_from(current):
                    result.append((current, (effective_from(current), last)))
        return tuple(result)
