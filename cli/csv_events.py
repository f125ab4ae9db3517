"""CSV for institution systems that export spreadsheets rather than JSON.

One row per event. Common columns: `event_id, type, occurred_on, reported_by, cpr` (or
`pseudonym` and `birth_date`). Then the columns of the event's type (others blank):

| type                | columns                                                          |
|---------------------|------------------------------------------------------------------|
| enrolled, left      | institution, stage                                               |
| exam_result         | exam, danish, maths (grades on the 7-point scale)                |
| education_completed | programme, level (primary, youth, vocational, higher), institution |
| employment_started  | employer, hours_per_week                                         |
| employment_ended    | employer                                                         |
| absence             | institution, period_start, period_end, days_absent, days_total   |
| transfer            | from_institution, to_institution, compensation_minor, currency   |
| retraction          | retracts_event_id, reason                                        |
| parental_education  | highest_level (primary, youth, vocational, higher)               |
| benefit_started     | benefit (cash_benefit, integration_benefit, ...), municipality   |
| benefit_ended       | benefit                                                          |
| referral            | programme, municipality, cluster                                 |
| company_growth      | company, period_start, period_end, employees_start, employees_end, |
|                     | employees_change, turnover_start_minor, turnover_end_minor,      |
|                     | turnover_change_percent (blank when the start was 0), currency   |
| residence           | municipality (the CPR register's move)                           |

Amendments carry a whole replacement body: send them as JSON Lines. Examples:
`examples/events/sample.csv`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

COMMON = ("event_id", "type", "occurred_on", "reported_by", "cpr", "pseudonym", "birth_date")
BODY_COLUMNS: dict[str, tuple[str, ...]] = {
    "enrolled": ("institution", "stage"),
    "left": ("institution", "stage"),
    "exam_result": ("exam", "danish", "maths"),
    "education_completed": ("programme", "level", "institution"),
    "employment_started": ("employer", "hours_per_week"),
    "employment_ended": ("employer",),
    "absence": ("institution", "period_start", "period_end", "days_absent", "days_total"),
    "transfer": ("from_institution", "to_institution", "compensation_minor", "currency"),
    "retraction": ("retracts_event_id", "reason"),
    "parental_education": ("highest_level",),
    "benefit_started": ("benefit", "municipality"),
    "benefit_ended": ("benefit",),
    "referral": ("programme", "municipality", "cluster"),
    "company_growth": ("company", "period_start", "period_end", "employees_start", "employees_end",
                       "employees_change", "turnover_start_minor", "turnover_end_minor",
                       "turnover_change_percent", "currency"),
    "residence": ("municipality",),
}
NUMBERS = {"danish", "maths", "hours_per_week", "days_absent", "days_total", "compensation_minor",
           "employees_start", "employees_end", "employees_change", "turnover_start_minor",
           "turnover_end_minor", "turnover_change_percent"}


class CsvRowError(ValueError):
    pass


def _number(column: str, text: str) -> float | int:
    try:
        return float(text) if column in ("danish", "maths") else int(text)
    except ValueError:
        raise CsvRowError(f"{column}: {text!r} is not a number") from None


def row_to_event(row: dict[str, str]) -> dict[str, object]:
    kind = (row.get("type") or "").strip()
    if kind not in BODY_COLUMNS:
        raise CsvRowError(f"type: {kind!r} is not one of {', '.join(sorted(BODY_COLUMNS))}")
    body: dict[str, object] = {"type": kind}
    grades: dict[str, object] = {}
    for column in BODY_COLUMNS[kind]:
        text = (row.get(column) or "").strip()
        if not text:
            continue
        value: object = _number(column, text) if column in NUMBERS else text
        if column in ("danish", "maths"):
            grades[column] = value
        else:
            body[column] = value
    if kind == "exam_result":
        body["grades"] = grades
    subject = {k: row[k].strip() for k in ("cpr", "pseudonym", "birth_date") if (row.get(k) or "").strip()}
    return {"event_id": (row.get("event_id") or "").strip(), "occurred_on": (row.get("occurred_on") or "").strip(),
            "reported_by": (row.get("reported_by") or "").strip(), "subject": subject, "body": body}


def csv_lines(path: Path) -> Iterator[tuple[int, bytes | CsvRowError]]:
    """(line number, the event as JSON bytes, or the row's error) for each data row."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("event_id", "type", "occurred_on", "reported_by") if c not in (reader.fieldnames or ())]
        if missing:
            yield 1, CsvRowError(f"header lacks column(s): {', '.join(missing)}")
            return
        for row in reader:
            try:
                yield reader.line_num, json.dumps(row_to_event(row)).encode()
            except CsvRowError as error:
                yield reader.line_num, error


def to_csv(events: list[dict[str, object]]) -> str:
    """Events as CSV rows (the inverse, used to write examples)."""
    columns = list(COMMON[:5]) + sorted({c for cols in BODY_COLUMNS.values() for c in cols})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for event in events:
        body = dict(event["body"])  # type: ignore[call-overload]
        grades = body.pop("grades", {}) or {}
        row = {"event_id": event["event_id"], "type": body.pop("type"), "occurred_on": event["occurred_on"],
               "reported_by": event["reported_by"], "cpr": event["subject"].get("cpr", ""),  # type: ignore[attr-defined]
               **body, **grades}
        writer.writerow(row)
    return out.getvalue()
