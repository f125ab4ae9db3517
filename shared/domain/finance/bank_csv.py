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

from shared.domain.finance.money import AmountError, to_decimal_text, to_minor
from shared.domain.finance.payouts import PayoutLine

PAYOUT_COLUMNS = ("end_to_end_id", "export_id", "line", "payment_method", "payer", "payer_name", "payer_iban",
                  "payee", "payee_name", "payee_cvr", "payee_ean", "payee_iban", "payee_bic", "currency",
                  "amount", "amount_minor", "execution_date", "contract_id", "outcome_id", "occurred_on")

SETTLEMENT_COLUMNS = ("end_to_end_id", "status", "booked_on", "amount", "currency", "bank_reference", "reason")
MAX_SETTLEMENT_LINES = 1_000_000  # explicit limit: larger files are split by the sender


def payout_csv(lines: Sequence[PayoutLine], export_id: str, execution_date: dt.date) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PAYOUT_COLUMNS)
    for n, x in enumerate(lines, start=1):
        writer.writerow([x.payment_id, export_id, n, x.payment_method.value, x.payer, x.payer_name,
                         x.payer_iban or "", x.payee, x.payee_name, x.payee_cvr or "", x.payee_ean or "",
                         x.payee_iban or "", x.payee_bic or "", x.currency,
                         to_decimal_text(x.amount_minor, x.currency), x.amount_minor,
                         execution_date.isoformat(), x.contract_id, x.outcome_id, x.occurred_on.isoformat()])
    return out.getvalue()


@dataclass(frozen=True)
class CsvAnswer:
    line: int
    end_to_end_id: str
    paid: bool
    amount_minor: int
    currency: str
    booked_on: dt.date
    bank_reference: str
    reason: str | None


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
    if status not in ("paid", "failed"):
        raise ValueError(f"status {status!r} is not paid or failed")
    reference = (row.get("bank_reference") or "").strip()
    reason = (row.get("reason") or "").strip() or None
    if status == "paid" and not reference:
        raise ValueError("a paid line needs a bank_reference")
    if status == "failed" and not reason:
        raise ValueError("a failed line needs a reason")
    currency = (row.get("currency") or "").strip()
    try:
        booked = dt.date.fromisoformat((row.get("booked_on") or "").strip())
    except ValueError:
        raise ValueError(f"booked_on {row.get('booked_on')!r} is not a date (YYYY-MM-DD)") from None
    return CsvAnswer(line, (row.get("end_to_end_id") or "").strip(), status == "paid",
                     to_minor(row.get("amount") or "", currency), currency, booked,
                     reference[:64] or f"failed-{booked.isoformat()}", reason)
