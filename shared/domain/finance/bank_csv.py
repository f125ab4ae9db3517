"""The plain CSV payout file and the plain CSV settlement file.

For the systems that take no ISO 20022: an ERP's payment run, the NemKonto run, a
spreadsheet. Columns are documented in the README ("For finance") and fixed here; the
payment id is the end-to-end reference in both directions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from shared.domain.finance.csv_style import PLAIN, CsvStyle
from shared.domain.finance.money import AmountError, to_minor
from shared.domain.finance.payouts import PayoutLine
from shared.domain.finance.settlements import AnswerStatus

PAYOUT_COLUMNS = ("end_to_end_id", "export_id", "line", "payment_method", "payer", "payer_name", "payer_iban",
                  "payee", "payee_name", "payee_cvr", "payee_ean", "payee_iban", "payee_bic", "currency",
                  "amount", "amount_minor", "execution_date", "contract_id", "outcome_id", "occurred_on",
                  "transfer_id")

SETTLEMENT_COLUMNS = ("end_to_end_id", "status", "booked_on", "amount", "currency", "bank_reference", "reason")
MAX_SETTLEMENT_LINES = 1_000_000  # explicit limit: larger files are split by the sender


def payout_csv(lines: Sequence[PayoutLine], export_id: str, execution_date: dt.date,
               style: CsvStyle = PLAIN) -> str:
    """One row per payment (its payment id is the end-to-end id), with the transfer it is
    paid in when a bank file aggregates the payee's payments."""
    return style.render(PAYOUT_COLUMNS, (
        [x.payment_id, export_id, n, x.payment_method.value, x.payer, x.payer_name,
         x.payer_iban or "", x.payee, x.payee_name, x.payee_cvr or "", x.payee_ean or "",
         x.payee_iban or "", x.payee_bic or "", x.currency, style.amount(x.amount_minor, x.currency),
         x.amount_minor, execution_date.isoformat(), x.contract_id, x.outcome_id, x.occurred_on.isoformat(),
         x.transfer_id or ""]
        for n, x in enumerate(lines, start=1)))


@dataclass(frozen=True)
class CsvAnswer:
    line: int
    end_to_end_id: str
    status: AnswerStatus
    amount_minor: int
    currency: str
    booked_on: dt.date
    bank_reference: str
    reason: str | None

    @property
    def paid(self) -> bool:
        return self.status == AnswerStatus.PAID


class SettlementCsvError(ValueError):
    pass


def parse_settlement_csv(text: str) -> tuple[list[CsvAnswer], list[tuple[int, str]]]:
    """Answers, and (line, problem) for every line that is not one."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("end_to_end_id", "status", "booked_on", "amount", "currency")
               if c not in (reader.fieldnames or ())]
    if missing:
        raise SettlementCsvError(f"the header lacks {', '.join(missing)} (columns: {', '.join(SETTLEMENT_COLUMNS)})")
    answers: list[CsvAnswer] = []
    problems: list[tuple[int, str]] = []
    for row in reader:
        line = reader.line_num
        if line > MAX_SETTLEMENT_LINES:
            raise SettlementCsvError(f"more than {MAX_SETTLEMENT_LINES} lines: split the file")
        try:
            answers.append(_answer(line, row))
        except (ValueError, AmountError) as error:
            problems.append((line, str(error)))
    return answers, problems


def _answer(line: int, row: dict[str, str]) -> CsvAnswer:
    status = (row.get("status") or "").strip().lower()
    if status not in ("paid", "failed", "returned"):
        raise ValueError(f"status {status!r} is not paid, failed or returned")
    reference = (row.get("bank_reference") or "").strip()
    reason = (row.get("reason") or "").strip() or None
    if status in ("paid", "returned") and not reference:
        raise ValueError(f"a {status} line needs a bank_reference")
    if status in ("failed", "returned") and not reason:
        raise ValueError(f"a {status} line needs a reason")
    currency = (row.get("currency") or "").strip()
    try:
        booked = dt.date.fromisoformat((row.get("booked_on") or "").strip())
    except ValueError:
        raise ValueError(f"booked_on {row.get('booked_on')!r} is not a date (YYYY-MM-DD)") from None
    return CsvAnswer(line, (row.get("end_to_end_id") or "").strip(), AnswerStatus(status),
                     to_minor(row.get("amount") or "", currency), currency, booked,
                     reference[:64] or f"failed-{booked.isoformat()}", reason)
