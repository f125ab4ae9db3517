"""`stafet ledger ...`: balances, statements, verification and rebuild of the ledger."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.errors import fail
from cli.terminal import table_lines
from shared.domain.currency import format_minor, is_currency
from shared.domain.institutions import Institution, InstitutionRegistry, RegistryError
from shared.platform.credentials import database_url
from shared.platform.settings import Settings

if TYPE_CHECKING:
    from services.ledger.anchors import ReanchorDecision
    from services.ledger.audit import ChainReport
    from services.ledger.checkpoints import Anchors

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


@app.command("provisional")
def provisional() -> None:
    """Money by state, per contract: provisional (outcomes the watermark has not made
    final: expected money, instructed nothing), final (instructed, net of clawbacks),
    paid (settled by the bank); every clawback by its reason (docs/contracts.md, "Finality")."""
    from cli.reporting.finality import money_by_state, print_money_by_state

    states = asyncio.run(money_by_state(database_url("operator")))
    if not states:
        typer.echo("no outcome decided or provisional yet")
        return
    print_money_by_state(states, typer.echo)


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
                 style.amount(x.pending_change_minor, x.currency), style.amount(x.paid_change_minor, x.currency),
                 x.payer]
                for x in result.lines]
        # The decimal columns use the currency's ISO 4217 exponent (JPY 0, DKK 2, BHD 3).
        sys.stdout.write(style.render(
            ["sequence", "date", "kind", "payment_id", "state", "contract_id", "outcome_id", "institution",
             "institution_name", "reference", "currency", "pending_change_minor", "paid_change_minor",
             "pending_change", "paid_change", "payer"], rows))
        return
    currencies = {x.currency for x in result.lines}
    currency = currencies.pop() if len(currencies) == 1 else None
    typer.echo(f"Statement for {name} ({institution})" + (f", contract {contract}" if contract else ""))
    payee = registry.get(institution)
    if payee is not None:
        typer.echo(_payee_line(payee))
    table: list[list[str]] = [["", "opening", "", "", "", "", "", _money(result.opening_pending_minor, currency),
                               _money(result.opening_paid_minor, currency), ""]]
    table += [[x.day.isoformat(), x.kind, x.payment_id, x.state, x.contract_id, x.payer, x.outcome_id or "",
               _money(x.pending_change_minor, x.currency), _money(x.paid_change_minor, x.currency), x.reference]
              for x in result.lines]
    table.append(["", "closing", "", "", "", "", "", _money(result.closing_pending_minor, currency),
                  _money(result.closing_paid_minor, currency), ""])
    # Ids and names whole: a long one widens its column instead of being cut.
    for line in table_lines(("date", "kind", "payment", "now", "contract", "payer", "outcome", "pending", "paid",
                             "reference"), table, align="lllllllrrl"):
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
    against: Annotated[Path | None, typer.Option(
        "--against", help="An export of the checkpoints kept outside the broker (stafet ledger checkpoints export)")] = None,
    journal_topic: Annotated[str | None, typer.Option(
        help="The journal every entry's signed source must be on (default: the checkpoints topic's installation's)")
    ] = None,
) -> None:
    """Recompute every entry, its lines and the hash chain; re-derive each entry from the
    signed journal record it keeps (unproven_entry when none verifies); compare each
    entry's hash with the ledger's signed checkpoints (read from Kafka, and from an
    auditor's export with --against); exit 1 naming the first bad entry, or saying which
    anchors are gone."""
    from services.ledger.checkpoints import Anchors

    report, anchors, problems = _verified(no_checkpoints, checkpoints_topic, against, journal_topic)
    for problem in problems:
        typer.echo(f"ledger verification FAILED: {problem}", err=True)
    if anchors is not None and anchors.conflicts:
        typer.echo(f"ledger verification FAILED at entry {min(anchors.conflicts)}: two signed checkpoints "
                   "disagree on its hash (the database was rewritten between them)", err=True)
        raise typer.Exit(1)
    if not report.ok:
        typer.echo(f"ledger verification FAILED at entry {report.first_bad_sequence}: {report.problem}",
                   err=True)
        raise typer.Exit(1)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"ledger ok: {report.entries} entries, chain head {report.head_hash}")
    if not isinstance(anchors, Anchors):
        typer.echo("not compared with the signed checkpoints (--no-checkpoints): a rewrite with the chain "
                   "recomputed would pass")
        return
    anchored = min(anchors.through, report.entries)
    typer.echo(f"{anchored} anchored by signed checkpoints; {report.entries - anchored} not yet checkpointed"
               + (f"; {anchors.refused} checkpoint record(s) not signed by the ledger were ignored"
                  if anchors.refused else "")
               + (f"; compared with {against}" if against else ""))


def _verified(no_checkpoints: bool, checkpoints_topic: str | None, against: Path | None, journal_topic: str | None
              ) -> tuple[ChainReport, Anchors | None, list[str]]:
    """The chain's report, the anchors it was compared with, and what is wrong with them."""
    import asyncpg

    from services.ledger.anchors import compare_kept, read_kept, recorded_anchors, verify_problems
    from services.ledger.audit import verify_chain
    from services.ledger.checkpoints import anchors_of, read_topic
    from services.ledger.provenance import unproven_entries
    from shared.platform.tenants import TenantsConfigurationError, load_tenancy
    from shared.platform.topics import LEDGER_CHECKPOINTS
    from shared.platform.trust import ConfigurationError, ledger_trust

    settings = Settings()
    topic_name = checkpoints_topic or LEDGER_CHECKPOINTS.name
    # The journal of the same installation as the checkpoints: every entry's source is on it.
    journal = journal_topic or topic_name.replace(".ledger-checkpoints.", ".payments.")
    try:
        kept = read_kept(against) if against is not None else []
        trust = ledger_trust(settings)
        decision = _decision(settings)
        tenancy = load_tenancy(settings)  # docs/tenancy.md: an entry the journal would refuse is unproven
    except (OSError, ValueError, ConfigurationError, TenantsConfigurationError) as error:
        fail(str(error))

    async def run() -> tuple[ChainReport, Anchors | None, list[str]]:
        connection = await asyncpg.connect(database_url("operator"))

        async def provenance(rows: Sequence[asyncpg.Record]) -> list[tuple[int, str]]:
            return await unproven_entries(connection, rows, trust, journal, tenancy)

        try:
            if no_checkpoints:
                return await verify_chain(connection, provenance=provenance), None, []
            topic = await read_topic(settings.kafka_bootstrap_servers, topic_name, principal="operator")
            problems = compare_kept(kept, topic.records)
            on_topic = {r.offset for r in topic.records}
            # What the export kept and the topic lost still anchors the chain.
            anchors = anchors_of([*topic.records, *(k.record(topic_name) for k in kept if k.offset not in on_topic)],
                                 trust)
            problems += verify_problems(topic_name, topic.start_offset, anchors, await recorded_anchors(connection),
                                        decision)
            return await verify_chain(connection, anchors.hashes, provenance), anchors, problems
        finally:
            await connection.close()

    return asyncio.run(run())


def _decision(settings: Settings) -> ReanchorDecision | None:
    import yaml

    from services.ledger.anchors import ReanchorDecision
    from shared.domain.key_lists import DocumentError, verified_document
    from shared.platform.trust import ConfigurationError, trust_roots

    path = settings.ledger_reanchor_decision_file
    if path is None:
        return None
    try:
        return verified_document(yaml.safe_load(path.read_text(encoding="utf-8")), ReanchorDecision,
                                 trust_roots(settings))
    except (OSError, yaml.YAMLError, DocumentError) as error:
        raise ConfigurationError(f"{path}: not a valid signed re-anchoring decision: {error}") from None


checkpoints_app = typer.Typer(help="The ledger's signed checkpoints: the auditor's export, re-anchoring.",
                              no_args_is_help=True)
app.add_typer(checkpoints_app, name="checkpoints")


@checkpoints_app.command("export")
def checkpoints_export(
    out: Annotated[Path, typer.Option(help="The export (JSON Lines), appended to; keep it where the broker's "
                                           "administrator cannot write (docs/ledger.md, the external anchor)")],
    checkpoints_topic: Annotated[str | None, typer.Option(
        help="Topic of the signed checkpoints (default: this installation's)")] = None,
) -> None:
    """Append every checkpoint record not yet in OUT, bytes and signature as they are on
    the topic. Refuses (exit 1, appending nothing) when a record OUT kept is gone from the
    topic or changed."""
    import os

    from services.ledger.anchors import KeptCheckpoint, compare_kept, read_kept
    from services.ledger.checkpoints import read_topic
    from shared.platform.topics import LEDGER_CHECKPOINTS

    settings = Settings()
    topic_name = checkpoints_topic or LEDGER_CHECKPOINTS.name
    try:
        kept = read_kept(out) if out.exists() else []
    except (OSError, ValueError) as error:
        fail(str(error))
    topic = asyncio.run(read_topic(settings.kafka_bootstrap_servers, topic_name, principal="operator"))
    problems = compare_kept(kept, topic.records)
    if topic.start_offset > 0 and not kept:
        problems.append(f"the checkpoints topic starts at offset {topic.start_offset}, not 0: checkpoint records "
                        "were deleted before the first export")
    for problem in problems:
        typer.echo(f"checkpoints export FAILED: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    last = kept[-1].offset if kept else -1
    new = [KeptCheckpoint.of(r) for r in topic.records if r.offset > last]
    with out.open("a", encoding="utf-8") as handle:
        handle.writelines(k.model_dump_json() + "\n" for k in new)
        handle.flush()
        os.fsync(handle.fileno())
    typer.echo(f"exported {len(new)} new checkpoint record(s) to {out} ({len(kept) + len(new)} in all)")


@checkpoints_app.command("reanchor")
def checkpoints_reanchor(
    from_sequence: Annotated[int, typer.Option(help="The first entry the ledger may checkpoint again", min=1)],
    start_offset: Annotated[int, typer.Option(help="The offset the checkpoints topic starts at now", min=0)],
    reason: Annotated[str, typer.Option(help="Why, and what was checked (kept in the decision and the log)")],
    out: Annotated[Path, typer.Option(help="Where to write the signed decision (LEDGER_REANCHOR_DECISION_FILE)")],
    operator: Annotated[str, typer.Option(help="Who decides, operator:NAME")] = "operator:dev",
    checkpoints_topic: Annotated[str | None, typer.Option(
        help="Topic of the signed checkpoints (default: this installation's)")] = None,
    signing_key: Annotated[Path | None, typer.Option(help="An operator's root key (TRUST_ROOT_KEYS)")] = None,
) -> None:
    """Sign the decision that lets the ledger sign checkpoints again after its anchors
    were removed: only over entries from --from-sequence on, only for the topic as it is
    now. Check the chain against the auditor's export (verify --against) first."""
    import yaml
    from pydantic import ValidationError

    from cli.keys import _root_signer
    from services.ledger.anchors import ReanchorDecision, now_utc
    from shared.domain.key_lists import sign_document
    from shared.platform.topics import LEDGER_CHECKPOINTS

    signer, _ = _root_signer(signing_key)
    try:
        decision = ReanchorDecision(decided_at=now_utc(), decided_by=operator,
                                    checkpoints_topic=checkpoints_topic or LEDGER_CHECKPOINTS.name,
                                    start_offset=start_offset, from_sequence=from_sequence, reason=reason)
    except ValidationError as error:
        first = error.errors()[0]
        fail(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    out.write_text(yaml.safe_dump(sign_document(decision, signer.key), sort_keys=False), encoding="utf-8")
    typer.echo(f"signed the re-anchoring decision as {signer.key_id} into {out}; give it to the ledger as "
               "LEDGER_REANCHOR_DECISION_FILE and restart it")


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
