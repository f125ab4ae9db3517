"""What the command line writes depends on where it goes: a progress bar (and anything
else that moves the cursor or colours text) only on a terminal; to a file or a pipe,
plain lines with no escape sequences. `NO_COLOR` (no-color.org) is honoured on a
terminal too: Rich, which draws the bars, leaves colours out when it is set."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def on_terminal() -> bool:
    return sys.stdout.isatty()


def colours() -> bool:
    """Colour only on a terminal, and only when NO_COLOR is not set (to anything)."""
    return on_terminal() and "NO_COLOR" not in os.environ


def progress(show: bool = True) -> Progress:
    """A transient progress bar on a terminal; on anything else, nothing at all (Rich
    would still end a hidden bar with a blank line)."""
    from rich.progress import Progress

    return Progress(transient=True, disable=not (show and on_terminal()))


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left_columns: int = 1,
                align: str | None = None) -> list[str]:
    """A plain-text table whose columns are as wide as their widest cell: a long name
    widens its column instead of being cut, and a mark such as `suppressed
    (too_few_subjects)` widens its own. `align` gives each column's alignment (`l` or
    `r`); without it the first `left_columns` are aligned left (names), the rest right
    (figures). Columns are two spaces apart."""
    widths = [max(len(str(row[n])) for row in [headers, *rows]) for n in range(len(headers))]
    sides = align or "l" * left_columns + "r" * (len(headers) - left_columns)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if side == "l" else str(c).rjust(w)
                         for c, w, side in zip(cells, widths, sides, strict=True)).rstrip()

    return [line(headers), *(line(row) for row in rows)]
