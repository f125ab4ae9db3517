"""CSV as people open it: the plain form for systems, and the form Danish Excel reads.

Danish Excel opens a CSV by the Windows list separator and decimal symbol of a Danish
locale: `;` between fields and `,` before the decimals, and it takes UTF-8 only after a
byte order mark (without one, "ø" shows as "Ã¸"). `--excel` (or `--locale da`) writes
that; the default stays `,`-separated with `.` decimals and no BOM, for programs.
Amounts are exact either way: integer minor units formatted with the currency's
decimals, never a float.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.domain.finance.money import to_decimal_text


@dataclass(frozen=True)
class CsvStyle:
    delimiter: str
    decimal_mark: str
    bom: bool

    def amount(self, amount_minor: int, currency: str) -> str:
        return to_decimal_text(amount_minor, currency).replace(".", self.decimal_mark)

    def render(self, header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.delimiter, lineterminator="\r\n" if self.bom else "\n")
        writer.writerow(header)
        writer.writerows(rows)
        return ("\ufeff" if self.bom else "") + out.getvalue()


PLAIN = CsvStyle(",", ".", bom=False)
EXCEL_DA = CsvStyle(";", ",", bom=True)


def style_for(excel: bool, locale: str | None) -> CsvStyle:
    """`--excel`, or `--locale da`: the Danish Excel form; otherwise the plain one."""
    if locale not in (None, "", "da", "en"):
        raise ValueError(f"unknown locale {locale!r} (da or en)")
    return EXCEL_DA if excel or locale == "da" else PLAIN
