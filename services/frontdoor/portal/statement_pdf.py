"""The statement as a PDF file an institution files or prints: the same lines, totals and
expected money as the statement page, in the reader's language.

Why fpdf2: it writes PDF in pure Python (no system libraries, no browser to print from), is
maintained, and its tables break across pages with their header repeated. The PDF uses the
standard Helvetica font, which every PDF reader has (nothing embedded): its encoding
(Latin-1) covers Danish; a character outside it (a narrow space some locales write in
numbers) is written as the nearest Latin-1 one, never dropped silently.

What the file holds is what the page shows (services/frontdoor/portal/statement.py): an
institution's own lines only, the child named by the institution's own reference, other
institutions' shares as one amount; never a CPR number or a pseudonym.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.fonts import FontFace

from services.frontdoor.portal import i18n
from services.frontdoor.portal.statement import ProvisionalLine, Statement

# Characters Babel may write that the standard fonts' Latin-1 lacks, and what stands in.
_LATIN1_STAND_INS = str.maketrans({"\u202f": "\xa0", "\u2009": " ", "\u2212": "-", "\u2013": "-", "\u2014": "-",
                                   "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "..."})
HEADING = FontFace(emphasis="BOLD", fill_color=(230, 230, 230))


def latin1(text: str) -> str:
    """`text` as the standard PDF fonts can write it."""
    return text.translate(_LATIN1_STAND_INS).encode("latin-1", errors="replace").decode("latin-1")


@dataclass(frozen=True)
class Reader:
    """How the reader reads: its language, its words, and the names of contracts and payers."""
    language: str
    gettext: Callable[[str], str]
    state_words: Callable[[str], str]
    reason_words: Callable[[str], str]
    contract_titles: Mapping[str, str]
    payer_name: Callable[[str], str]

    def money(self, amount_minor: int, currency: str) -> str:
        return i18n.money(amount_minor, currency, self.language)

    def day(self, value: dt.date) -> str:
        return i18n.day(value, self.language)

    def contract(self, contract_id: str) -> str:
        return self.contract_titles.get(contract_id, contract_id)


def statement_pdf(statement: Statement, provisional: Sequence[ProvisionalLine], *, institution_name: str,
                  made_on: dt.date, event_time: dt.date | None, reader: Reader, truncated_at: int | None = None
                  ) -> bytes:
    """The statement of `statement.institution` as PDF bytes (A4, landscape for the wide tables)."""
    _ = reader.gettext
    pdf = _Pages(orientation="landscape", format="A4")
    pdf.footer_text = latin1(f"Stafet · {institution_name} · {reader.day(made_on)}")
    pdf.set_title(latin1(_("Statement for %(institution)s") % {"institution": institution_name}))
    pdf.set_author("Stafet")
    pdf.set_creation_date(dt.datetime.combine(made_on, dt.time(), tzinfo=dt.UTC))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(text=latin1(_("Statement for %(institution)s") % {"institution": institution_name}),
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    made = _("Made on %(day)s.") % {"day": reader.day(made_on)}
    if event_time is not None:
        made += " " + _("Event time now: %(day)s.") % {"day": reader.day(event_time)}
    pdf.multi_cell(0, 5, latin1(made + " " + _(
        "Every amount your institution has earned under outcome contracts, and where the money is.")),
        new_x="LMARGIN", new_y="NEXT")
    if truncated_at is not None:
        pdf.multi_cell(0, 5, latin1(_("Only the newest %(count)s entries are shown.") % {"count": truncated_at}),
                       new_x="LMARGIN", new_y="NEXT")

    _section(pdf, _("Totals"))
    if not statement.lines:
        _paragraph(pdf, _("Nothing has been paid or instructed yet."))
    else:
        rows = [(reader.state_words(total.key[0]), reader.money(total.amount_minor, total.currency))
                for total in statement.totals_by_state]
        rows += [(_("Total"), reader.money(total.amount_minor, total.currency)) for total in statement.total]
        _table(pdf, (_("State"), _("Amount")), rows, widths=(3, 1), amounts=(1,))

    if provisional:
        _section(pdf, _("Expected, in the review window"))
        _paragraph(pdf, _("Outcomes that will pay your institution once their review window closes. Nothing is "
                          "paid before; check each line while there is time."))
        _table(pdf, (_("Counts from"), _("Contract"), _("Outcome"), _("Your amount"), _("Other institutions"),
                     _("Final on"), _("Days left")),
               [(reader.day(line.counts_on), reader.contract(line.contract_id), line.outcome_id,
                 reader.money(line.own_minor, line.currency), reader.money(line.others_minor, line.currency),
                 reader.day(line.decided_on), str(line.days_left)) for line in provisional],
               widths=(2, 4, 3, 2, 2, 2, 1), amounts=(3, 4, 6))

    if statement.lines:
        _section(pdf, _("Lines"))
        line_rows: list[tuple[str, ...]] = []
        for line in statement.lines:
            state = reader.state_words(line.state.value) + (f" {reader.day(line.state_on)}" if line.state_on else "")
            if line.held:
                state += "; " + _("Held: the outcome is disputed")
            if line.adjustment_reason:
                state += "; " + reader.reason_words(line.adjustment_reason)
            line_rows.append((reader.day(line.occurred_on), reader.contract(line.contract_id), reader.payer_name(line.payer),
                         line.outcome_id, reader.money(line.amount_minor, line.currency), state))
        _table(pdf, (_("Date"), _("Contract"), _("Paid by"), _("Outcome"), _("Amount"), _("State")), line_rows,
               widths=(2, 4, 3, 3, 2, 5), amounts=(4,))
        _section(pdf, _("Per month and contract"))
        _table(pdf, (_("Month"), _("Contract"), _("Amount")),
               [(i18n.month(dt.date.fromisoformat(total.key[0] + "-01"), reader.language),
                 reader.contract(total.key[1]), reader.money(total.amount_minor, total.currency))
                for total in statement.totals_by_month_and_contract],
               widths=(2, 4, 2), amounts=(2,))
    return bytes(pdf.output())


class _Pages(FPDF):
    """Pages numbered "n/N" in the footer, with whose statement it is."""

    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.cell(0, 5, f"{self.footer_text}    {self.page_no()}/{{nb}}", align="C")


def _section(pdf: FPDF, heading: str) -> None:
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(text=latin1(heading), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)


def _paragraph(pdf: FPDF, text: str) -> None:
    pdf.multi_cell(0, 5, latin1(text), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, header: Sequence[str], rows: Sequence[Sequence[str]], *, widths: Sequence[int],
           amounts: Sequence[int] = ()) -> None:
    """A table whose header repeats on each page it runs onto; amounts right-aligned."""
    align = tuple("RIGHT" if column in amounts else "LEFT" for column in range(len(header)))
    with pdf.table(col_widths=tuple(widths), text_align=align, headings_style=HEADING, line_height=5,
                   first_row_as_headings=True, repeat_headings=1) as table:
        table.row([latin1(cell) for cell in header])
        for row in rows:
            table.row([latin1(cell) for cell in row])
