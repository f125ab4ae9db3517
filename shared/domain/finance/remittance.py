"""Remittance advice: what one transfer pays, for the payee to reconcile (pure).

A run pays each payee one transfer per currency (shared/domain/finance/payouts.py); its
bank statement shows one amount. The advice lists every payment in it (payment id,
contract, outcome, date, amount) with the transfer's end-to-end id and total, as CSV for
the payee's system and as HTML for a person (print it to PDF from a browser).
"""

from __future__ import annotations

import datetime as dt
import html

from shared.domain.finance.csv_style import PLAIN, CsvStyle
from shared.domain.finance.payouts import PayoutLine, Transfer, transfers_of

ADVICE_COLUMNS = ("transfer_id", "run_id", "execution_date", "payer", "payee", "payee_name", "payment_id",
                  "contract_id", "outcome_id", "occurred_on", "currency", "amount", "amount_minor")


def advice_csv(transfer: Transfer, run_id: str, execution_date: dt.date, style: CsvStyle = PLAIN) -> str:
    rows: list[list[object]] = [
        [transfer.transfer_id, run_id, execution_date.isoformat(), x.payer, x.payee, x.payee_name, x.payment_id,
         x.contract_id, x.outcome_id, x.occurred_on.isoformat(), x.currency,
         style.amount(x.amount_minor, x.currency), x.amount_minor] for x in transfer.lines]
    first = transfer.first
    rows.append([transfer.transfer_id, run_id, execution_date.isoformat(), first.payer, first.payee, first.payee_name,
                 "total", "", "", "", transfer.currency, style.amount(transfer.amount_minor, transfer.currency),
                 transfer.amount_minor])
    return style.render(ADVICE_COLUMNS, rows)


def advice_html(transfer: Transfer, run_id: str, execution_date: dt.date) -> str:
    first = transfer.first
    e = html.escape
    rows = "\n".join(
        f"<tr><td><code>{e(x.payment_id)}</code></td><td>{e(x.contract_id)}</td><td>{e(x.outcome_id)}</td>"
        f"<td>{x.occurred_on.isoformat()}</td><td class=n>{PLAIN.amount(x.amount_minor, x.currency)} {e(x.currency)}</td></tr>"
        for x in transfer.lines)
    return f"""<!doctype html>
<html lang="da"><head><meta charset="utf-8"><title>Betalingsadvis {e(transfer.transfer_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px}}
.n{{text-align:right;font-variant-numeric:tabular-nums}}</style></head><body>
<h1>Betalingsadvis / remittance advice</h1>
<p>Til / to: <b>{e(first.payee_name)}</b> ({e(first.payee)}{", CVR " + e(first.payee_cvr) if first.payee_cvr else ""})<br>
Fra / from: {e(first.payer_name)} ({e(first.payer)})<br>
Overførsel / transfer (end-to-end id): <code>{e(transfer.transfer_id)}</code><br>
Betalingskørsel / run: <code>{e(run_id)}</code>, udførelsesdato / execution date {execution_date.isoformat()}</p>
<table><tr><th>Betaling / payment id</th><th>Kontrakt / contract</th><th>Udfald / outcome</th><th>Dato / date</th>
<th>Beløb / amount</th></tr>
{rows}
<tr><th colspan=4>I alt / total ({len(transfer.lines)})</th>
<th class=n>{PLAIN.amount(transfer.amount_minor, transfer.currency)} {e(transfer.currency)}</th></tr></table>
</body></html>
"""


def advice_files(lines: tuple[PayoutLine, ...], run_id: str, execution_date: dt.date,
                 style: CsvStyle = PLAIN) -> dict[str, bytes]:
    """Per transfer: `<payee>-<transfer id>.csv` and `.html`."""
    files: dict[str, bytes] = {}
    for transfer in transfers_of(lines):
        stem = f"{transfer.first.payee}-{transfer.transfer_id}"
        files[f"{stem}.csv"] = advice_csv(transfer, run_id, execution_date, style).encode("utf-8")
        files[f"{stem}.html"] = advice_html(transfer, run_id, execution_date).encode("utf-8")
    return files
