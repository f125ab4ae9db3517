"""`stafet ledger ...`: balances, statements, verification and rebuild of the ledger."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from cli.errors import fail
from cli.terminal import table_lines
from shared.domain.currency import format_minor, is_currency
from shared.domain.institutions import Institution, InstitutionRegistry, RegistryError
from shared.platform.credentials import database_url
from shared.platform.settings import Settings

if TYPE_CHECKING:
    from services.ledger.audit import ChainReport

app = typer.Typer(rich_markup_mode=None, help="Ledger balances, statements, verification and rebuild.",
                  no_args_is_help=True)
DATE_FORMATS = ["%Y-%m-%d"]


class StatementFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"


def _registry() -> InstitutionRegistry:
    try:
        return InstitutionRegistry.from_file(Settings().institutions_file)
    except RegistryError:
        return InstitutionRegistry(())


def _payee_line(payee: Institution) -> str:
    """The payee master data a statement's reader checks the payments against."""
    parts = [f"{label} {value}" for label, value in (("CVR", payee.cvr), ("EAN", payee.ean),
                                                       ("IBAN", payee.iban), ("BIC", payee.bic)) if value]
    method = payee.payment_method.value if payee.payment_method else "no payment method registered"
    return "Payee: " + ", ".join([*parts, f"paid by {method}"])


def _money(minor: int, currency: str | None) -> str:
    """Exact, in the currency's minor unit; with no single currency known, the minor
    units themselves (amounts in different currencies are not one number)."""
    return format_minor(minor, currency) if currency and is_currency(currency) else f"{minor:,} (minor units)"


@app.command("balances")
def balances() -> None:
    """Every account's balance (credits minus debits), with institution names."""
    from services.ledger.queries import account_balances

    rows = asyncio.run(account_balances(database_url("operator")))
    if not rows:
        typer.echo("the ledger is empty")
        return
    registry = _registry()
    labels = []
    for row in rows:
        kind, owner, *rest = row.account.split(":")
        labels.append(f"{kind} {registry.name_of(owner)} ({':'.join(rest)})")
    width = max(len(label) for label in labels)
    for label, row in zip(labels, rows, strict=True):
        typer.echo(f"{label:<{width}}  {_money(row.balance_minor, row.currency):>16} {row.currency}")


@app.command("statement")
def statement(
    institution: Annotated[str, typer.Option(help="Institution id")],
    contract: Annotated[str | None, typer.Option(help="Only this contract")] = None,
    date_from: Annotated[dt.datetime | None, typer.Option("--from", formats=DATE_FORMATS, help="First day")] = None,
    date_to: Annotated[dt.datetime | None, typer.Option("--to", formats=DATE_FORMATS, help="Last day")] = None,
    output_format: Annotated[StatementFormat, typer.Option("--format", help="table or csv")] = StatementFormat.TABLE,
    excel: Annotated[bool, typer.Option("--excel", help="CSV for Danish Excel: ';', decimal comma, UTF-8 BOM")]
        = False,
    locale: Annotated[str | None, typer.Option("--locale", help="da: as --excel; en: plain CSV")] = None,
) -> None:
    """An institution's statement: opening balance, each entry with its payment id and
    where the payment stands now, closing balance, and subtotals per contract and month;
    pending (owed, not yet paid; negative means owed back) and paid. A return shows its
    reason code (AC04 ...)."""
    from services.ledger.queries import institution_statement
    from shared.domain.finance.csv_style import style_for

    try:
        style = style_for(excel, locale)
    except ValueError as error:
        fail(str(error))
    registry = _registry()
    first = date_from.date() if date_from else None
    last = date_to.date() if date_to else None
    result = asyncio.run(institution_statement(database_url("operator"), institution,
                                               contract_id=contract, date_from=first, date_to=last))
    if registry.get(institution) is None and not result.in_ledger:
        fail(f"unknown institution {institution!r}: not in the registry ({Settings().institutions_file}) "
             "and not in the ledger")
    name = registry.name_of(institution)
    if output_format == StatementFormat.CSV or excel or locale:
        rows = [[x.sequence, x.day.isoformat(), x.kind, x.payment_id, x.state, x.contract_id, x.outcome_id,
                 institution, name, x.reference, x.currency, x.pending_change_minor, x.paid_change_minor,
                 style.amount(x.pending_change_minor, x.currency), style.amount(x.paid_change_minor, x.currency)]
                for x in result.lines]
        # The decimal columns use the currency's ISO 4217 exponent (JPY 0, DKK 2, BHD 3).
        sys.stdout.write(style.render(
            ["sequence", "date", "kind", "payment_id", "state", "contract_id", "outcome_id", "institution",
             "institution_name", "reference", "currency", "pending_change_minor", "paid_change_minor",
             "pending_change", "paid_change"], rows))
        return
    currencies = {x.currency for x in result.lines}
    currency = currencies.pop() if len(currencies) == 1 else None
    typer.echo(f"Statement for {name} ({institution})" + (f", contract {contract}" if contract else ""))
    payee = registry.get(institution)
    if payee is not None:
        typer.echo(_payee_line(payee))
    table: list[list[str]] = [["", "opening", "", "", "", "", _money(result.opening_pending_minor, currency),
                               _money(result.opening_paid_minor, currency), ""]]
    table += [[x.day.isoformat(), x.kind, x.payment_id, x.state, x.contract_id, x.outcome_id or "",
               _money(x.pending_change_minor, x.currency), _money(x.paid_change_minor, x.currency), x.reference]
              for x in result.lines]
    table.append(["", "closing", "", "", "", "", _money(result.closing_pending_minor, currency),
                  _money(result.closing_paid_minor, currency), ""])
    # Ids and names whole: a long one widens its column instead of being cut.
    for line in table_lines(("date", "kind", "payment", "now", "contract", "outcome", "pending", "paid", "reference"),
                            table, align="llllllrrl"):
        typer.echo(line)
    if result.closing_pending_minor < 0:
        typer.echo(f"{name} owes back {_money(-result.closing_pending_minor, currency)} {currency or ''}.".replace(" .", "."))
    subtotals = result.subtotals()
    if subtotals:
        typer.echo("\nSubtotals per contract and month")
        totals = [[contract_id, month, _money(pending, money_currency), _money(paid, money_currency), money_currency]
                  for contract_id, month, money_currency, pending, paid in subtotals]
        for line in table_lines(("contract", "month", "pending", "paid", ""), totals, align="llrrl"):
            typer.echo(line)


@app.command("verify")
def verify(
    no_checkpoints: Annotated[bool, typer.Option(
        "--no-checkpoints", help="Check the chain in the database only, not against the signed checkpoints")] = False,
    checkpoints_topic: Annotated[str | None, typer.Option(
        help="Topic of the signed checkpoints (default: this installation's)")] = None,
) -> None:
    """Recompute every entry, its lines and the hash chain, and compare each entry's hash
    with the ledger's signed checkpoints (read from Kafka); exit 1 naming the first bad entry."""
    import asyncpg

    from services.ledger.audit import verify_chain
    from services.ledger.checkpoints import Anchors, read_anchors
    from shared.platform.topics import LEDGER_CHECKPOINTS
    from shared.platform.trust import ConfigurationError, trusted_keys

    settings = Settings()

    async def run() -> tuple[ChainReport, Anchors | None]:
        anchors = None
        if not no_checkpoints:
            anchors = await read_anchors(settings.kafka_bootstrap_servers,
                                         checkpoints_topic or LEDGER_CHECKPOINTS.name, trusted_keys(settings),
                                         principal="operator")
        connection = await asyncpg.connect(database_url("operator"))
        try:
            return await verify_chain(connection, anchors.hashes if anchors else None), anchors
        finally:
            await connection.close()

    try:
        report, anchors = asyncio.run(run())
    except ConfigurationError as error:
        fail(str(error))
    if anchors is not None and anchors.conflicts:
        typer.echo(f"ledger verification FAILED at entry {min(anchors.conflicts)}: two signed checkpoints "
                   "disagree on its hash (the database was rewritten between them)", err=True)
        raise typer.Exit(1)
    if not report.ok:
        typer.echo(f"ledger verification FAILED at entry {report.first_bad_sequence}: {report.problem}",
                   err=True)
        raise typer.Exit(1)
    typer.echo(f"ledger ok: {report.entries} entries, chain head {report.head_hash}")
    if anchors is None:
        typer.echo("not compared with the signed checkpoints (--no-checkpoints): a rewrite with the chain "
                   "recomputed would pass")
        return
    anchored = min(anchors.through, report.entries)
    typer.echo(f"{anchored} anchored by signed checkpoints; {report.entries - anchored} not yet checkpointed"
               + (f"; {anchors.refused} checkpoint record(s) not signed by the ledger were ignored"
                  if anchors.refused else ""))


@app.command("rebuild")
def rebuild(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask: empty the projection and replay")] = False,
) -> None:
    """Drop the ledger projection and replay the journal (payments topic). Stop the
    ledger service first: refused while its consumer groups are active, or when the
    journal no longer starts at offset 0."""
    from cli.errors import confirm_or_fail
    from cli.rebuild_guard import refuse_unsafe_rebuild
    from cli.terminal import progress
    from services.ledger.rebuild import rebuild_ledger
    from shared.platform.topics import PAYMENTS, group_id

    confirm_or_fail("This empties the ledger's tables and replays the journal into them.", yes)
    settings = Settings()
    refuse_unsafe_rebuild(settings, topic=PAYMENTS.name, groups=(group_id("ledger"), group_id("ledger-settlements")),
                          principal="ledger")
    with progress() as bar:
        task = bar.add_task("replaying the journal", total=None)
        # A maintenance job: it empties the ledger's tables, which only the owner may do.
        report = asyncio.run(rebuild_ledger(database_url("owner", settings), settings.kafka_bootstrap_servers,
                                            PAYMENTS.name, lambda n: bar.advance(task, n)))
    rate = report.records / report.seconds if report.seconds else 0.0
    typer.echo(f"rebuilt: {report.records} journal records, {report.entries} entries "
               f"({report.rejected} settlements rejected) in {report.seconds:.1f}s ({rate:,.0f}/s)")
    typer.echo(f"chain head {report.head_hash}")


# Investors and funds (docs/investment.md): their own module, registered here.
from cli import investors as _investors  # noqa: E402

app.command("investors")(_investors.investors)
app.command("funds")(_investors.funds)
app.command("investor")(_investors.investor)
