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

Across outputs: an indicator contract's payment is its price per point times the
measured improvement, and a contract's terms are public, so a payment gives back the
cells it was decided on (9 of 10 pupils passing: 18,750,000 øre at 2,500,000 a point
against a published 82.5 % is exactly 90.0 %, a cell the indicator table suppresses).
`revealing_payments` finds every indicator outcome decided on a cell the publication's
rule suppresses; `publishable` leaves those contracts' money out of the publication (no
amount, no budget left, no institution total or business case that includes it, a note
saying why), so no combination of the published figures gives the cell back. The ledger,
statements, payout files and the analysts' exports stay exact.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TypeVar

from cli.reporting.data import ReportData
from shared.domain.contracts.indicator_outcomes import Cell, cells_needed, memberships, tally_cells
from shared.domain.contracts.model import Contract
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.indicators.compute import Suppression, suppression

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


# Hidden cells of a group its members read: two besides any reader's own.
HIDDEN_WITH_A_MEMBER_MIN = 3


def group_read_by_members(subjects: Mapping[Key, int], minimum_cell: int) -> tuple[dict[Key, Suppression], bool]:
    """The suppressed cells of a group whose readers include each cell's own member (a
    tenant reading the national table knows its own exact row), and whether the total
    may be shown.

    `group`'s one complementary cell is not enough against such a reader: with the total
    shown and two cells hidden, the member owning one of them gets the other back (total -
    shown - own). So while any cell is hidden, at least three are (two besides any
    reader's own: it learns only their sum), adding the smallest non-empty others; where
    the group has too few non-empty cells for that, the total is withheld instead (and
    only the cells too small are hidden). The marks say which hidden cells are small, so
    their sum can still pin one down (two small cells summing to 2 are 1 and 1): more
    complements are added until none is (`pinned_by_marks`)."""
    return hidden_for_members(subjects, {key: reason for key, count in subjects.items()
                                         if (reason := cell(count, minimum_cell))}, minimum_cell)


def hidden_for_members(sizes: Mapping[Key, int], small: Mapping[Key, Suppression], minimum_cell: int,
                       still_pinned: Callable[[Mapping[Key, Suppression]], bool] | None = None,
                       ) -> tuple[dict[Key, Suppression], bool]:
    """`group_read_by_members` for cells judged small by another rule (an indicator's
    row is small for its numerator or its complement too, not only its size): `small`
    names them with their reasons, `sizes` orders the others as complements (the smallest
    non-empty first). `still_pinned` says whether, with these cells hidden, some reader
    pins a small value from the marks and the totals of another column the rows carry (an
    indicator's numerators); the sizes are checked here. Returns every hidden cell and
    whether the total may be shown."""
    hidden = dict(small)
    if not hidden:
        return hidden, True
    others = sorted((count, str(key), key) for key, count in sizes.items() if key not in hidden and count)
    if len(hidden) + len(others) < HIDDEN_WITH_A_MEMBER_MIN:
        return hidden, False
    chosen = max(0, HIDDEN_WITH_A_MEMBER_MIN - len(hidden))
    for _, _, key in others[:chosen]:
        hidden[key] = Suppression.COMPLEMENTARY

    def pinned() -> bool:
        allowed = {key: [(1, minimum_cell - 1)] if reason == Suppression.TOO_FEW_SUBJECTS else [(minimum_cell, None)]
                   for key, reason in hidden.items()}
        protected = [key for key, reason in hidden.items() if reason == Suppression.TOO_FEW_SUBJECTS]
        return pinned_by_marks(sizes, allowed, protected) or (still_pinned is not None and still_pinned(hidden))

    for _, _, key in others[chosen:]:
        if not pinned():
            return hidden, True
        hidden[key] = Suppression.COMPLEMENTARY
    return hidden, not pinned()


Interval = tuple[int, int | None]  # inclusive; None: no upper bound


def _merged(intervals: Iterable[Interval]) -> list[Interval]:
    result: list[Interval] = []
    for low, high in sorted(intervals, key=lambda i: i[0]):
        last_high = result[-1][1] if result else -2
        if result and (last_high is None or low <= last_high + 1):
            result[-1] = (result[-1][0], None if last_high is None or high is None else max(last_high, high))
        else:
            result.append((low, high))
    return result


def _sums(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    return _merged((al + bl, None if ah is None or bh is None else ah + bh) for al, ah in a for bl, bh in b)


def pinned_by_marks(values: Mapping[Key, int], allowed: Mapping[Key, Sequence[Interval]], protected: Iterable[Key]
                    ) -> bool:
    """Whether some reader (each member knowing its own cell, or anyone) pins a protected
    hidden cell to one value: it knows the hidden cells besides its own add up to their
    sum (the shown total less the shown cells and its own), and what each hidden cell's
    mark allows (`allowed`: e.g. 1 to the minimum less one for a cell too small, the
    minimum or more for a complement). Exact over unions of intervals."""
    shielded = set(protected)
    # A reader whose own cell is shown knows what anyone knows: one check for all of them.
    for reader in (None, *(k for k in values if k in allowed)):
        unknown = [k for k in allowed if k != reader]
        total = sum(values[k] for k in unknown)
        for key in unknown:
            if key not in shielded:
                continue
            rest: list[Interval] = [(0, 0)]
            for other in unknown:
                if other != key:
                    rest = _sums(rest, allowed[other])
            # x is allowed and total - x is a sum the others allow: x in [total - high, total - low].
            options = 0
            for low, high in allowed[key]:
                for rest_low, rest_high in rest:
                    lowest = low if rest_high is None else max(low, total - rest_high)
                    highest = total - rest_low if high is None else min(high, total - rest_low)
                    options += max(0, highest - lowest + 1)
            if options <= 1:
                return True
    return False


def mark(reason: Suppression) -> str:
    """How a suppressed figure reads wherever it would have been."""
    return f"suppressed ({reason.value})"


def shown(text: str, subjects: int, minimum_cell: int) -> str:
    """`text` if a figure about `subjects` subjects may be shown, else the mark."""
    reason = cell(subjects, minimum_cell)
    return text if reason is None else mark(reason)


IndicatorCells = Mapping[tuple[str, str], Mapping[str, Cell]]  # (contract, indicator outcome) -> cells


@dataclass(frozen=True)
class Withheld:
    """An indicator outcome whose payment a publication must not show."""

    contract_id: str
    outcome_id: str
    cell: str  # the cell it would give back, e.g. area:2022
    reason: Suppression  # why the indicator table suppresses that cell

    def note(self) -> str:
        return (f"{self.contract_id}: the money of {self.outcome_id} is not shown, nor in any total: with the "
                f"contract's price per point it would give back the {self.cell} cell, which is suppressed "
                f"({self.reason.value}); the ledger and the payout files hold it exactly")


def indicator_cells(contracts: Iterable[Contract],
                    timelines: Sequence[SubjectTimeline]) -> dict[tuple[str, str], dict[str, Cell]]:
    """Each indicator outcome's cells, counted as the verifier counts them."""
    found: dict[tuple[str, str], dict[str, Cell]] = {}
    for contract in contracts:
        for outcome in contract.indicator_outcomes:
            parts = [part for timeline in timelines for part in memberships(outcome, timeline)]
            found[(contract.contract_id, outcome.id)] = tally_cells(parts)
    return found


def revealing_payments(contracts: Iterable[Contract], cells: IndicatorCells, minimum_cell: int) -> tuple[Withheld, ...]:
    """Every indicator outcome decided on a cell that the publication's rule suppresses
    (the same rule as the indicator tables: `shared/domain/indicators/compute.py`)."""
    withheld: dict[tuple[str, str], Withheld] = {}
    for contract in contracts:
        for outcome in contract.indicator_outcomes:
            key = (contract.contract_id, outcome.id)
            measured = cells.get(key, {})
            for name in cells_needed(outcome):
                known = measured.get(name, Cell())
                reason = suppression(known.numerator, known.denominator, minimum_cell)
                if reason is not None and key not in withheld:
                    withheld[key] = Withheld(contract.contract_id, outcome.id, name, reason)
    return tuple(withheld[k] for k in sorted(withheld))


def publishable(data: ReportData, withheld: Sequence[Withheld]) -> ReportData:
    """`data` as a publication may show it: the withheld outcomes' money left out of
    every row (so of every total), their decisions kept without an amount, and the
    contracts marked with why."""
    if not withheld:
        return data
    hidden = {(w.contract_id, w.outcome_id) for w in withheld}
    notes: dict[str, str] = {}
    for w in withheld:
        notes[w.contract_id] = f"{notes[w.contract_id]}; {w.note()}" if w.contract_id in notes else w.note()
    return replace(
        data,
        money=tuple(m for m in data.money if (m.contract_id, m.outcome_id) not in hidden),
        outcomes=tuple(replace(o, owed_minor=0) if (o.contract_id, o.outcome_id) in hidden else o
                       for o in data.outcomes),
        withheld={**data.withheld, **notes})


TableCell = Hashable  # a published table's cell, e.g. (column, place)
Identity = Mapping[TableCell, int]  # a linear identity over cells a reader knows holds (right-hand side known)


def pinned_cells(unknown: Sequence[TableCell], equations: Iterable[Identity]) -> set[TableCell]:
    """The unknown cells a reader computes exactly from `equations` (each a sum of cells
    whose value it knows: a shown total, an identity such as "what leaves arrives"; the
    coefficients on cells it knows are moved to the right-hand side and dropped here).

    Exact elimination over fractions to reduced row echelon form: a cell is pinned when a
    row of it has that cell alone. Few equations (a table's totals and identities) make
    this cheap however many cells there are."""
    index = {cell: n for n, cell in enumerate(unknown)}
    rows: list[list[Fraction]] = []
    for equation in equations:
        row = [Fraction(0)] * len(index)
        for cell, coefficient in equation.items():
            if cell in index:
                row[index[cell]] += coefficient
        if any(row):
            rows.append(row)
    pivot_row = 0
    for column in range(len(index)):
        found = next((r for r in range(pivot_row, len(rows)) if rows[r][column]), None)
        if found is None:
            continue
        rows[pivot_row], rows[found] = rows[found], rows[pivot_row]
        lead = rows[pivot_row][column]
        rows[pivot_row] = [value / lead for value in rows[pivot_row]]
        for r in range(len(rows)):
            if r != pivot_row and rows[r][column]:
                factor = rows[r][column]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[pivot_row], strict=True)]
        pivot_row += 1
        if pivot_row == len(rows):
            break
    return {unknown[row.index(next(v for v in row if v))] for row in rows[:pivot_row]
            if sum(1 for v in row if v) == 1}
