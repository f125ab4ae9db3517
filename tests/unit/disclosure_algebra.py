"""What a reader can compute exactly from a published table: a hidden cell is given back
when it is a linear combination of what the reader knows (the shown cells, the shown
totals, its own row, and identities such as "what leaves one municipality arrives in
another"). Exact Gaussian elimination over fractions: a cell is determined when its unit
vector lies in the row space of the equations over the unknown cells."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

Cell = Any  # any hashable name of a cell, e.g. (column, place)
Equation = Mapping[Cell, int]  # cell -> coefficient; the right-hand side is known to the reader


def _rank(rows: list[list[Fraction]]) -> int:
    rows = [row[:] for row in rows]
    rank, columns = 0, len(rows[0]) if rows else 0
    for column in range(columns):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][column] != 0), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for r in range(len(rows)):
            if r != rank and rows[r][column] != 0:
                factor = rows[r][column] / rows[rank][column]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[rank], strict=True)]
        rank += 1
    return rank


def _matrix(index: dict[Cell, int], equations: Iterable[Equation]) -> list[list[Fraction]]:
    matrix = []
    for equation in equations:
        row = [Fraction(0)] * len(index)
        for cell, coefficient in equation.items():
            if cell in index:
                row[index[cell]] += coefficient
        if any(row):
            matrix.append(row)
    return matrix


def determines(unknown: Sequence[Cell], equations: Iterable[Equation], combination: Equation) -> bool:
    """Whether the equations pin down `combination` of the unknown cells (coefficients on
    known cells are dropped: the reader moves them to the right-hand side)."""
    index = {cell: n for n, cell in enumerate(unknown)}
    matrix = _matrix(index, equations)
    [wanted] = _matrix(index, [combination]) or [[Fraction(0)] * len(index)]
    if not any(wanted):
        return True  # a combination of known cells only
    return bool(matrix) and _rank([*matrix, wanted]) == _rank(matrix)


def determined(unknown: Sequence[Cell], equations: Iterable[Equation]) -> set[Cell]:
    """The unknown cells the equations pin down."""
    listed = list(equations)
    return {cell for cell in unknown if determines(unknown, listed, {cell: 1})}
