"""`stafet finance ...`: payout files for the bank, and the bank's answers back in.

`payout` writes the pending payments of a date range as an ISO 20022 pain.001 file or a
plain CSV, and records every payment it wrote in the ledger's database: exporting the
same range again writes only what is new, and says which payments went out before and
in which file. `import` reads the bank's camt.054 notification (or a CSV) and publishes
one settlement per payment the bank booked, refusing unknown, duplicate, already
settled and mismatched answers with reason codes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.errors import fail
from shared.domain.finance.payouts import PayoutFormat, PayoutPlan
from shared.platform.credentials import database_url
from shared.platform.settings import Settings
from shared.platform.topics import SETTLEMENTS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from services.ledger.payouts import LedgerPayment, PayoutExport
    from shared.domain.finance.payouts import PayoutLine
    from shared.domain.finance.settlements import Answer
    from shared.domain.institutions import InstitutionRegistry

app = typer.Typer(help="Payout files for the bank (pain.001, CSV) and the bank's answers (camt.054, CSV).",
                  no_args_is_help=True)

DATE_FORMATS = ["%Y-%m-%d"]


class AnswerFormat(StrEnum):
    AUTO = "auto"
    CAMT_054 = "camt.054"
    CSV = "csv"


def _registry_or_fail() -> InstitutionRegistry:
    from shared.domain.institutions import InstitutionRegistry, RegistryError

    try:
        return InstitutionRegistry.from_file(Settings().institutions_file)
    except RegistryError as error:
        fail(str(error))


def _write(out: Path, data: bytes, yes: bool) -> None:
    if out.exists() and not yes and not typer.confirm(f"{out} exists: overwrite it?", default=False):
        fail(f"{out} exists; nothing written (use --yes to overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)


def _file_bytes(lines: Sequence[PayoutLine], export_id: str, output_format: PayoutFormat, execution_date: dt.date,
                created_at: dt.datetime, initiator: str) -> bytes:
    from shared.domain.finance.bank_csv import payout_csv
    from shared.domain.finance.iso20022 import pain001

    if output_format == PayoutFormat.PAIN_001:
        return pain001(lines, export_id, created_at, execution_date, initiator)
    return payout_csv(lines, export_id, execution_date).encode()


def _report(plan: PayoutPlan) -> None:
    for payment_id, export_id in plan.already_exported:
        typer.echo(f"already exported: {payment_id} in {export_id}", err=True)
    for payment_id, reason in plan.left_out:
        typer.echo(f"left out: {payment_id}: {reason.value}", err=True)


@app.command("payout")
def payout(
    out: Annotated[Path, typer.Option(help="The file to write")],
    date_from: Annotated[dt.datetime | None, typer.Option("--from", formats=DATE_FORMATS,
                         help="First day of the payments' dates")] = None,
    date_to: Annotated[dt.datetime | None, typer.Option("--to", formats=DATE_FORMATS,
                       help="Last day of the payments' dates")] = None,
    output_format: Annotated[PayoutFormat, typer.Option("--format", help="pain.001 (bank) or csv")] =
        PayoutFormat.PAIN_001,
    execution: Annotated[dt.datetime | None, typer.Option("--execution-date", formats=DATE_FORMATS,
                         help="When the bank should pay (default today)")] = None,
    initiator: Annotated[str, typer.Option(help="Initiating party's name in the pain.001")] = "Stafet",
    reissue: Annotated[str | None, typer.Option(
        help="Write an earlier export again, identical (its export id); marks nothing")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Overwrite OUT without asking")] = False,
) -> None:
    """Write the pending payments dated FROM..TO as a payout file; each payment goes out
    once, ever (exporting again writes only what is new)."""
    import asyncpg

    from services.ledger.payouts import export_payout, recorded_export

    settings = Settings()
    if reissue is not None:
        async def load() -> PayoutExport | None:
            connection = await asyncpg.connect(database_url("finance", settings))
            try:
                return await recorded_export(connection, reissue)
            finally:
                await connection.close()

        found = asyncio.run(load())
        if found is None:
            fail(f"no payout export {reissue!r}")
        _write(out, _file_bytes(found.lines, found.export_id, found.format, found.execution_date,
                                found.created_at, initiator), yes)
        typer.echo(f"reissued {found.export_id}: {len(found.lines)} payment(s) to {out} ({found.format.value})")
        return
    if date_from is None or date_to is None:
        fail("give --from and --to (or --reissue EXPORT_ID)")
    if date_from > date_to:
        fail("--from is after --to")
    if out.exists() and not yes and not typer.confirm(f"{out} exists: overwrite it?", default=False):
        fail(f"{out} exists; nothing exported (use --yes to overwrite)")
    registry = _registry_or_fail()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    execution_date = execution.date() if execution else now.date()

    async def run() -> PayoutPlan:
        connection = await asyncpg.connect(database_url("finance", settings))
        try:
            return await export_payout(connection, registry, date_from=date_from.date(), date_to=date_to.date(),
                                       output_format=output_format, execution_date=execution_date, now=now)
        finally:
            await connection.close()

    plan = asyncio.run(run())
    _report(plan)
    if not plan.lines:
        typer.echo(f"nothing new to pay: {len(plan.already_exported)} already exported, "
                   f"{len(plan.left_out)} left out; no file written")
        return
    _write(out, _file_bytes(plan.lines, plan.export_id, output_format, execution_date, now, initiator), True)
    totals = Counter[str]()
    for line in plan.lines:
        totals[line.currency] += line.amount_minor
    from shared.domain.finance.money import to_decimal_text
    money = ", ".join(f"{to_decimal_text(v, c)} {c}" for c, v in sorted(totals.items()))
    typer.echo(f"exported {len(plan.lines)} payment(s), {money}, to {out} as {plan.export_id} "
               f"({output_format.value}); {len(plan.already_exported)} already exported, "
               f"{len(plan.left_out)} left out")


@app.command("import")
def import_answers(
    file: Annotated[Path, typer.Argument(help="The bank's camt.054 notification (XML) or a settlement CSV")],
    answer_format: Annotated[AnswerFormat, typer.Option("--format", help="auto: by the file's content")] =
        AnswerFormat.AUTO,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Publish the good answers even if some are refused")] = False,
    topic: Annotated[str, typer.Option(help="Topic to publish to")] = SETTLEMENTS.name,
    signing_key: Annotated[Path | None, typer.Option(
        help="The finance system's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
) -> None:
    """Turn the bank's answers into settlements, paid (booked) or failed (returned),
    signed with the finance system's key (the ledger refuses unsigned ones)."""
    from shared.domain.finance.bank_csv import SettlementCsvError, parse_settlement_csv
    from shared.domain.finance.iso20022 import Iso20022Error, parse_camt054

    if not file.is_file():
        fail(f"{file}: no such file")
    data = file.read_bytes()
    chosen = answer_format
    if chosen == AnswerFormat.AUTO:
        chosen = AnswerFormat.CAMT_054 if data.lstrip()[:1] == b"<" else AnswerFormat.CSV
    answers: Sequence[Answer]
    try:
        if chosen == AnswerFormat.CAMT_054:
            answers, skipped = parse_camt054(data)
            for entry in skipped:
                typer.echo(f"{file}: entry {entry.position}: skipped: {entry.reason}: {entry.detail}", err=True)
        else:
            answers, problems = parse_settlement_csv(data.decode("utf-8-sig"))
            for line, problem in problems:
                typer.echo(f"{file}:{line}: {problem}", err=True)
            if problems and not skip_invalid:
                fail(f"{len(problems)} invalid line(s); nothing published (use --skip-invalid)")
    except (Iso20022Error, SettlementCsvError, UnicodeDecodeError) as error:
        fail(f"{file}: {error}")
    _publish_answers(file, answers, skip_invalid, topic, signing_key)


def _publish_answers(file: Path, answers: Sequence[Answer], skip_invalid: bool, topic: str,
                     signing_key: Path | None) -> None:
    import asyncpg

    from cli.signed import send_signed, signer_or_fail
    from services.ledger.payouts import ledger_payments
    from shared.domain.finance.settlements import reconcile

    settings = Settings()
    signer = signer_or_fail(settings, "finance", signing_key)

    async def known() -> dict[str, LedgerPayment]:
        connection = await asyncpg.connect(database_url("finance", settings))
        try:
            return await ledger_payments(connection, [a.end_to_end_id for a in answers])
        finally:
            await connection.close()

    settlements, refused = reconcile(answers, asyncio.run(known()))
    for refusal in refused:
        typer.echo(f"{file}: {refusal.end_to_end_id}: {refusal.reason.value}: {refusal.detail}", err=True)
    if refused and not skip_invalid:
        fail(f"{len(refused)} answer(s) refused; nothing published (use --skip-invalid to publish the others)")

    if settlements:
        asyncio.run(send_signed(settings.kafka_bootstrap_servers, "stafet-finance-import", topic,
                                [(s.payment_id.encode(), s.model_dump_json().encode()) for s in settlements],
                                signer, principal="finance"))
    paid = sum(1 for s in settlements if s.status.value == "paid")
    typer.echo(f"published {len(settlements)} settlement(s) ({paid} paid, {len(settlements) - paid} failed), "
               f"refused {len(refused)}")
