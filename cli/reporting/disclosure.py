"""Small cells in reports: no figure about fewer subjects than the minimum is shown.

The report is a publication (councils, boards, investors, the public read it), so the
rule for published statistics applies to every figure in it: a count, an amount, a
bar or a flow that is about 1 to `minimum_cell - 1` distinct subjects is replaced by a
mark saying why. Money counts as a statistic here: with a contract's price known, an
amount paid for two children tells what happened to those two. Zero is shown (it is
about no one). Payment statements to a payee, payout files and the ledger are financial
records and are exact; they are not published (docs/privacy.md, "Small cells").

Suppressing one cell of a group whose total is shown is not enough: the total minus
the others gives it back. So when exactly one cell of such a group is suppressed, the
smallest other non-empty cell is suppressed too (complementary suppression, the simple
form statistical offices use for one-dimensional tables).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from shared.domain.indicators.compute import Suppression

Key = TypeVar("Key", bound=Hashable)


def cell(subjects: int, minimum_cell: int) -> Suppression | None:
    """Why a figure about `subjects` distinct subjects is not shown, or None."""
    if minimum_cell < 1:
        raise ValueError("minimum_cell must be at least 1")
    if subjects < 0:
        raise ValueError("subjects cannot be negative")
    return Suppression.TOO_FEW_SUBJECTS if 0 < subjects < minimum_cell else None


def group(subjects: Mapping[Key, int], minimum_cell: int, *, total_shown: bool) -> dict[Key, Suppression]:
    """The suppressed cells of a group (a table's rows that add up to a total), each
    with its reason; the cells not named are shown."""
    hidden = {key: reason for key, count in subjects.items() if (reason := cell(count, minimum_cell))}
    if total_shown and len(hidden) == 1:
        others = sorted((count, str(key), key) for key, count in subjects.items() if key not in hidden and count)
        if others:
            hidden[others[0][2]] = Suppression.COMPLEMENTARY
    return hidden


def mark(reason: Suppression) -> str:
    """How a suppressed figure reads wherever it would have been."""
    return f"suppressed ({reason.value})"


def shown(text: str, subjects: int, minimum_cell: int) -> str:
    """`text` if a figure about `subjects` subjects may be shown, else the mark."""
    reason = cell(subjects, minimum_cell)
    return text if reason is None else mark(reason)
