"""`stafet finance ...`: payout runs for the bank, and the bank's answers back in.

`payout` writes the payments owed in a date range as a run: an ISO 20022 pain.001 file
in a bank's profile (one transfer per payee, the payment ids in its structured
remittance), a plain CSV, or internal postings for the payer's own institutions. The
run is recorded, and its payments marked, in the transaction that commits only once the
file is durably written: a file that cannot be written marks nothing. `runs` lists the
runs, `void` frees a run's payments (refused once the bank acknowledged it), `sent`
records that the file went to the bank, `--reissue` writes a run's file again byte for
byte, `advice` writes each payee's remittance advice. `import` reads the bank's answers:
a camt.054 notification (booked, and returned after booking), a pain.002 status report
(accepted, or rejected before booking), or a CSV, and publishes signed settlements.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from cli.errors import fail
from shared.domain.finance.payouts import PayoutFormat, PayoutPlan
from shared.platform.credentials import database_url
from shared.platform.settings import Settings
from shared.platform.topics import PAYMENTS, SETTLEMENTS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    import asyncpg

    from services.ledger.payouts import PayoutRun, WrittenFile
    from shared.domain.finance.csv_style import CsvStyle
    from shared.domain.finance.iso20022 import Initiator
    from shared.domain.finance.postings import Chart
    from shared.domain.finance.profiles import BankProfile
    from shared.domain.finance.settlements import Answer
    from shared.domain.institutions import InstitutionRegistry

app = typer.Typer(help="Payout runs for the bank (pain.001, CSV, internal postings) and the bank's answers "
                       "(camt.054, pain.002, CSV).", no_args_is_help=True, rich_markup_mode=None)

DATE_FORMATS = ["%Y-%m-%d"]
T = TypeVar("T")


class AnswerFormat(StrEnum):
    AUTO = "auto"
    CAMT_054 = "camt.054"
    PAIN_002 = "pain.002"
    CSV = "csv"


class FileProblem(Exception):
    """A local file could not be read or written (not a server's problem)."""


ExcelOption = Annotated[bool, typer.Option("--excel", help="CSV for Danish Excel: ';', decimal comma, UTF-8 BOM")]
LocaleOption = Annotated[str | None, typer.Option("--locale", help="da: as --excel; en: plain CSV")]


def csv_style_or_fail(excel: bool, locale: str | None) -> CsvStyle:
    from shared.domain.finance.csv_style import style_for

    try:
        return style_for(excel, locale)
    except ValueError as error:
        fail(str(error))


def _registry_or_fail() -> InstitutionRegistry:
    from shared.domain.institutions import InstitutionRegistry, RegistryError

    try:
        return InstitutionRegistry.from_file(Settings().institutions_file)
    except RegistryError as error:
        fail(str(error))


def write_durably(path: Path, data: bytes) -> str:
    """Write `data` to `path` so that it survives a crash once this returns: a temporary
    file beside it, fsync, rename over `path`, fsync the directory. Its SHA-256."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise FileProblem(f"cannot write {path}: {error.strerror or error}") from None
    return hashlib.sha256(data).hexdigest()


def _refuse_existing(out: Path, yes: bool) -> None:
    """An existing OUT is overwritten only with --yes, or a yes at the prompt on a terminal."""
    import sys

    if not out.exists() or yes:
        return
    if not sys.stdin.isatty() or not typer.confirm(f"{out} exists: overwrite it?", default=False):
        fail(f"{out} exists; nothing written (use --yes to overwrite)")


def _connected(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    import asyncpg

    async def run() -> T:
        connection = await asyncpg.connect(database_url("finance", Settings()))
        try:
            return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(run())


def _profile_or_fail(name: str | None, profiles: Path | None) -> BankProfile | None:
    from shared.domain.finance.profiles import ProfileError, profile_named

    if name is None:
        return None
    try:
        return profile_named(name, profiles)
    except ProfileError as error:
        fail(str(error))


def _chart_or_fail(path: Path | None) -> Chart:
    from shared.domain.finance.postings import CHART_FILE, PostingsError, load_chart

    try:
        return load_chart(path or CHART_FILE)
    except PostingsError as error:
        fail(str(error))


def file_bytes(run: PayoutRun | PayoutPlan, output_format: PayoutFormat, execution_date: dt.date,
               created_at: dt.datetime, initiator: Initiator, profile: BankProfile | None,
               style: CsvStyle, chart: Chart | None) -> bytes:
    from shared.domain.finance.bank_csv import payout_csv
    from shared.domain.finance.iso20022 import pain001
    from shared.domain.finance.postings import postings_csv

    lines, run_id = run.lines, run.run_id
    if output_format == PayoutFormat.PAIN_001:
        return pain001(lines, run_id, created_at, execution_date, initiator, profile)
    if output_format == PayoutFormat.POSTINGS:
        assert chart is not None
        return postings_csv(lines, run_id, execution_date, chart, style).encode("utf-8")
    return payout_csv(lines, run_id, execution_date, style).encode("utf-8")


def _report(plan: PayoutPlan) -> None:
    for payment_id, run_id in plan.already_exported:
        typer.echo(f"already exported: {payment_id} in {run_id}", err=True)
    for payment_id, reason in plan.left_out:
        typer.echo(f"left out: {payment_id}: {reason.value}", err=True)


def _money(totals: Counter[str] | dict[str, int]) -> str:
    from shared.domain.finance.money import to_decimal_text

    return ", ".join(f"{to_decimal_text(v, c)} {c}" for c, v in sorted(totals.items())) or "0"


@app.command("payout")
def payout(
    out: Annotated[Path, typer.Option(help="The file to write")],
    date_from: Annotated[dt.datetime | None, typer.Option("--from", formats=DATE_FORMATS,
                         help="First day of the payments' dates")] = None,
    date_to: Annotated[dt.datetime | None, typer.Option("--to", formats=DATE_FORMATS,
                       help="Last day of the payments' dates")] = None,
    output_format: Annotated[PayoutFormat, typer.Option(
        "--format", help="pain.001 (bank), csv, or postings (the payer's own institutions)")] = PayoutFormat.PAIN_001,
    profile_name: Annotated[str | None, typer.Option(
        "--profile", help="The bank's profile: danske-bank, nordea, jyske-bank (shared/domain/finance/banks.yaml)")]
        = None,
    profiles: Annotated[Path | None, typer.Option(help="Bank profiles file instead of the shipped one")] = None,
    agreement_id: Annotated[str | None, typer.Option(help="The bank's customer agreement id (initiating party)")]
        = None,
    execution: Annotated[dt.datetime | None, typer.Option("--execution-date", formats=DATE_FORMATS,
                         help="When the bank should pay (default today; moved to the next Danish banking day)")]
        = None,
    initiator: Annotated[str, typer.Option(help="Initiating party's name in the pain.001")] = "Stafet",
    chart: Annotated[Path | None, typer.Option(help="Chart of accounts for --format postings")] = None,
    advice_dir: Annotated[Path | None, typer.Option(help="Also write each payee's remittance advice here")] = None,
    reissue: Annotated[str | None, typer.Option(
        help="Write an earlier run's file again, byte for byte (its run id); marks nothing")] = None,
    journal_topic: Annotated[str, typer.Option(
        help="The journal whose signed instructions make an entry payable (default: this installation's)")]
        = PAYMENTS.name,
    payer: Annotated[str | None, typer.Option(
        help="Only this payer's payments (a tenant's run: docs/tenancy.md); needed when several payers are owed")]
        = None,
    yes: Annotated[bool, typer.Option("--yes", help="Overwrite OUT without asking")] = False,
    excel: ExcelOption = False,
    locale: LocaleOption = None,
) -> None:
    """Write the payments owed and dated FROM..TO as a payout run; each payment is in one
    live run at a time (paying again writes only what is new or came back). A run pays
    from one payer's account: with several payers owed, name one (--payer)."""
    if reissue is not None:
        _reissue(reissue, out, yes)
        return
    from shared.domain.finance.iso20022 import Iso20022Error, initiator_for
    from shared.domain.finance.postings import PostingsError
    from shared.domain.finance.profiles import banking_day_on_or_after

    if date_from is None or date_to is None:
        fail("give --from and --to (or --reissue RUN)")
    if date_from > date_to:
        fail("--from is after --to")
    style = csv_style_or_fail(excel, locale)
    profile = _profile_or_fail(profile_name, profiles)
    accounts = _chart_or_fail(chart) if output_format == PayoutFormat.POSTINGS else None
    _refuse_existing(out, yes)
    registry = _registry_or_fail()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    asked = execution.date() if execution else now.date()
    execution_date = banking_day_on_or_after(asked)

    def write(plan: PayoutPlan) -> WrittenFile:
        from services.ledger.payouts import WrittenFile

        payer = registry.get(plan.lines[0].payer)
        party = initiator_for(profile, initiator, payer.cvr if payer else None, agreement_id)
        data = file_bytes(plan, output_format, execution_date, now, party, profile, style, accounts)
        digest = write_durably(out, data)
        return WrittenFile(out.name, digest, len(data), data, dt.datetime.now(dt.UTC))

    from services.ledger.payouts import SeveralPayers, export_payout
    from shared.platform.trust import ConfigurationError, ledger_trust

    _tenant_profile_or_fail(payer, profile_name)

    try:
        # Whose signature makes a ledger entry payable: the verifier's, on its instruction;
        # finance's on a settlement's original (services/ledger/origins.py).
        trust = ledger_trust(Settings())
    except ConfigurationError as error:
        fail(str(error))
    try:
        plan = _connected(lambda c: export_payout(
            c, registry, date_from=date_from.date(), date_to=date_to.date(), output_format=output_format,
            execution_date=execution_date, now=now, profile=profile, write=write, proof=(trust, journal_topic),
            payer=payer))
    except SeveralPayers as error:
        fail(f"payments of several payers are owed ({error}): a run pays from one payer's account,"
             " give --payer; nothing written")
    except FileProblem as error:
        fail(f"{error}; nothing marked, the payments stay owed")
    except (Iso20022Error, PostingsError) as error:
        fail(f"{error}; no file written, nothing marked")
    _report(plan)
    if execution_date != asked and plan.lines:
        typer.echo(f"execution date {asked} is not a Danish banking day: the bank is asked to pay on {execution_date}",
                   err=True)
    if not plan.lines:
        typer.echo(f"nothing new to pay: {len(plan.already_exported)} already exported, "
                   f"{len(plan.left_out)} left out; no file written")
        return
    totals = Counter[str]()
    for line in plan.lines:
        totals[line.currency] += line.amount_minor
    how = output_format.value + (f", {profile.name}" if profile else "")
    typer.echo(f"exported {len(plan.lines)} payment(s) in {len(plan.transfers)} transfer(s), {_money(totals)}, "
               f"to {out} as {plan.run_id} ({how}); {len(plan.already_exported)} already exported, "
               f"{len(plan.left_out)} left out")
    if advice_dir is not None:
        _write_advice(plan.run_id, plan.lines, execution_date, advice_dir, style)


def _tenant_profile_or_fail(payer: str | None, profile_name: str | None) -> None:
    """With tenants (TENANTS_FILE, docs/tenancy.md): the payer is a tenant, and its run
    uses one of its own payout profiles when it lists any."""
    from shared.platform.tenants import TenantsConfigurationError, load_tenancy

    try:
        tenancy = load_tenancy(Settings())
    except TenantsConfigurationError as error:
        fail(str(error))
    if tenancy is None or payer is None:
        return
    tenant = tenancy.get(payer)
    if tenant is None:
        fail(f"--payer {payer}: no tenant of this clearing house (TENANTS_FILE)")
    if profile_name is not None and tenant.payout_profiles and profile_name not in tenant.payout_profiles:
        fail(f"--profile {profile_name}: not a payout profile of {payer} ({', '.join(tenant.payout_profiles)})")


def _reissue(run_id: str, out: Path, yes: bool) -> None:
    from services.ledger.payouts import recorded_run
    from shared.domain.finance.csv_style import PLAIN
    from shared.domain.finance.iso20022 import Initiator

    found = _connected(lambda c: recorded_run(c, run_id))
    if found is None:
        fail(f"no payout run {run_id!r} (stafet finance runs lists them)")
    _refuse_existing(out, yes)
    if found.content is not None:
        data = found.content
        if hashlib.sha256(data).hexdigest() != found.sha256:
            fail(f"run {run_id}'s recorded file does not match its SHA-256 {found.sha256}; nothing written")
    else:  # a run recorded before runs kept their files: written again from its lines
        data = file_bytes(found, found.format, found.execution_date, found.created_at, Initiator("Stafet"),
                          None, PLAIN, None)
    try:
        digest = write_durably(out, data)
    except FileProblem as error:
        fail(str(error))
    typer.echo(f"reissued {found.run_id}: {len(found.lines)} payment(s) to {out} ({found.format.value}), "
               f"{len(data)} bytes, sha256 {digest}")


def _write_advice(run_id: str, lines: Sequence[object], execution_date: dt.date, directory: Path,
                  style: CsvStyle) -> None:
    from shared.domain.finance.remittance import advice_files

    files = advice_files(tuple(lines), run_id, execution_date, style)  # type: ignore[arg-type]
    try:
        for name, data in sorted(files.items()):
            write_durably(directory / name, data)
    except FileProblem as error:
        fail(str(error))
    typer.echo(f"wrote {len(files) // 2} remittance advice(s) (CSV and HTML) to {directory}")


@app.command("advice")
def advice(
    run_id: Annotated[str, typer.Argument(help="The run (stafet finance runs)")],
    out: Annotated[Path, typer.Option(help="The directory to write each payee's advice to")],
    excel: ExcelOption = False,
    locale: LocaleOption = None,
) -> None:
    """Each payee's remittance advice for a run: the payments its transfer settles."""
    from services.ledger.payouts import recorded_run

    style = csv_style_or_fail(excel, locale)
    found = _connected(lambda c: recorded_run(c, run_id))
    if found is None:
        fail(f"no payout run {run_id!r}")
    _write_advice(found.run_id, found.lines, found.execution_date, out, style)


@app.command("runs")
def runs(
    latest: Annotated[bool, typer.Option("--latest", help="Print only the latest run's id (for scripts)")] = False,
) -> None:
    """Every payout run: its state, payments, transfers, amount and file."""
    from services.ledger.payouts import list_runs

    found = _connected(list_runs)
    if latest:
        if not found:
            fail("no payout runs yet")
        typer.echo(found[-1].run_id)
        return
    if not found:
        typer.echo("no payout runs yet")
        return
    typer.echo(f"{'run':<36} {'#':>3} {'state':<12} {'created (UTC)':<19} {'format':<9} {'profile':<11} "
               f"{'payments':>8} {'transfers':>9} {'amount':>18}  file")
    for r in found:
        typer.echo(f"{r.run_id:<36} {r.run_number or '':>3} {r.state.value:<12} "
                   f"{r.created_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} {r.format:<9} {r.profile or '-':<11} "
                   f"{r.payments:>8} {r.transfers:>9} {_money(dict(r.totals)):>18}  "
                   + (f"{r.file_name} ({r.size_bytes} bytes, sha256 {r.sha256})" if r.file_name else "-"))


def _change(run_id: str, state: str, detail: str) -> None:
    from services.ledger.payouts import RunChangeRefused, change_run_state
    from shared.domain.finance.runs import RunState

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        run = _connected(lambda c: change_run_state(c, run_id, RunState(state), now=now, detail=detail))
    except RunChangeRefused as error:
        fail(f"{error.reason.value}: {error}")
    typer.echo(f"run {run.run_id} is {run.state.value}: {len(run.lines)} payment(s)"
               + (" free for the next run" if state == "voided" else ""))


@app.command("void")
def void(
    run_id: Annotated[str, typer.Argument(help="The run to withdraw")],
    reason: Annotated[str, typer.Option(help="Why (kept with the run)")] = "voided by finance",
) -> None:
    """Withdraw a run that will not be paid: its payments are free for the next run.
    Refused once the bank acknowledged the run or booked any of its payments."""
    _change(run_id, "voided", reason)


@app.command("sent")
def sent(run_id: Annotated[str, typer.Argument(help="The run whose file went to the bank")]) -> None:
    """Record that the run's file was handed to the bank."""
    _change(run_id, "sent", "")


@app.command("import")
def import_answers(
    file: Annotated[Path, typer.Argument(help="The bank's camt.054 or pain.002 (XML), or a settlement CSV")],
    answer_format: Annotated[AnswerFormat, typer.Option("--format", help="auto: by the file's content")] =
        AnswerFormat.AUTO,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Publish the good answers even if some are refused")] = False,
    topic: Annotated[str | None, typer.Option(help="Topic to publish to (default: the settlements topic of the "
                                                   "signer's tenant, docs/tenancy.md; else the shared one)")] = None,
    signing_key: Annotated[Path | None, typer.Option(
        help="The finance system's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
    wait: Annotated[float, typer.Option(help="Wait up to this many seconds for the ledger to apply them")] = 0,
) -> None:
    """Turn the bank's answers into settlements: paid (booked), returned (sent back after
    booking: owed again) or failed, signed with the finance system's key; or record a
    pain.002 status report on a run (acknowledged, or rejected whole or per transaction)."""
    from shared.domain.finance.bank_csv import SettlementCsvError, parse_settlement_csv
    from shared.domain.finance.iso20022 import Iso20022Error, parse_camt054

    try:
        data = file.read_bytes()
    except OSError as error:
        fail(f"{file}: cannot read it: {error.strerror or error}")
    chosen = answer_format
    if chosen == AnswerFormat.AUTO:
        head = data.lstrip()[:4096]
        chosen = (AnswerFormat.CSV if head[:1] != b"<"
                  else AnswerFormat.PAIN_002 if b"pain.002" in head else AnswerFormat.CAMT_054)
    if chosen == AnswerFormat.PAIN_002:
        _import_status_report(file, data)
        return
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
    _publish_answers(file, answers, skip_invalid, topic, signing_key, wait)


def _import_status_report(file: Path, data: bytes) -> None:
    from services.ledger.payouts import RunChangeRefused, apply_status_report, recorded_run
    from shared.domain.finance.iso20022 import Iso20022Error, blocks_of, parse_pain002

    try:
        report = parse_pain002(data)
    except Iso20022Error as error:
        fail(f"{file}: {error}")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    async def apply(connection: asyncpg.Connection) -> object:
        run = await recorded_run(connection, report.original_message_id)
        blocks = blocks_of(run.content) if run is not None and run.content else {}
        rejected = [(x.reference, x.reason or x.status) for x in report.transactions if x.rejected]
        for block in report.blocks:
            if block.rejected:
                rejected.extend((end_to_end, block.reason or block.status) for end_to_end in blocks.get(block.reference, ()))
        return await apply_status_report(connection, message_id=report.message_id, run_id=report.original_message_id,
                                         group_status=report.group_status, rejected_run=report.rejected,
                                         rejected_transfers=rejected, now=now)

    try:
        applied = _connected(apply)
    except RunChangeRefused as error:
        fail(f"{file}: {error.reason.value}: {error}")
    from services.ledger.payouts import StatusApplied

    assert isinstance(applied, StatusApplied)
    if applied.already_imported:
        typer.echo(f"{file}: status report {report.message_id} was imported before; nothing changed")
        return
    for payment_id, reason in applied.rejected_payments:
        typer.echo(f"{file}: rejected: {payment_id}: {reason} (owed again, free for the next run)", err=True)
    typer.echo(f"run {applied.run_id} is {applied.state.value}" + (
        f" ({report.group_reason or 'rejected'}): its payments are free for the next run" if report.rejected else
        f"; {len(applied.rejected_payments)} payment(s) rejected before booking"))


def _publish_answers(file: Path, answers: Sequence[Answer], skip_invalid: bool, topic: str | None,
                     signing_key: Path | None, wait: float = 0) -> None:
    from cli.signed import route, send_signed, signer_or_fail, signers_tenant
    from services.ledger.payouts import ledger_payments, transfers_named
    from shared.domain.finance.settlements import Known, reconcile

    settings = Settings()
    signer = signer_or_fail(settings, "finance", signing_key)

    async def known(connection: asyncpg.Connection) -> tuple[dict[str, Known], dict[str, tuple[str, ...]]]:
        transfers = await transfers_named(connection, [a.end_to_end_id for a in answers])
        ids = {a.end_to_end_id for a in answers} | {p for ps in transfers.values() for p in ps}
        return await ledger_payments(connection, sorted(ids)), transfers

    payments, transfers = _connected(known)
    result = reconcile(answers, payments, transfers)
    for refusal in result.refused:
        typer.echo(f"{file}: {refusal.end_to_end_id}: {refusal.reason.value}: {refusal.detail}", err=True)
    if result.refused and not skip_invalid:
        fail(f"{len(result.refused)} answer(s) refused; nothing published (use --skip-invalid to publish the others)")
    settlements = result.settlements
    if settlements:
        own_topic, login = route(SETTLEMENTS, "finance", signers_tenant(settings, signer))
        asyncio.run(send_signed(settings.kafka_bootstrap_servers, "stafet-finance-import", topic or own_topic,
                                [(s.payment_id.encode(), s.model_dump_json().encode()) for s in settlements],
                                signer, principal=login))
    counts = Counter(s.status.value for s in settlements)
    typer.echo(f"published {len(settlements)} settlement(s) ({counts['paid']} paid, {counts['returned']} returned, "
               f"{counts['failed']} failed), refused {len(result.refused)}, "
               f"already imported {len(result.already_imported)}")
    if wait > 0 and settlements:
        _wait_until_applied([s.settlement_id for s in settlements], wait)


def _wait_until_applied(settlement_ids: Sequence[str], timeout_s: float) -> None:
    """Poll the ledger until it holds every settlement (or has dead-lettered it: then it
    never will, and the wait runs out and says so)."""
    import time

    async def applied(connection: asyncpg.Connection) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            count = int(await connection.fetchval(
                "SELECT count(*) FROM ledger_entries WHERE settlement_id = ANY($1::text[])", list(settlement_ids)))
            if count >= len(settlement_ids) or time.monotonic() >= deadline:
                return count
            await asyncio.sleep(0.25)

    count = _connected(applied)
    if count < len(settlement_ids):
        fail(f"the ledger applied {count} of {len(settlement_ids)} settlement(s) within {timeout_s:g}s "
             "(is the ledger running? refused ones are on the dead-letter topic)")
    typer.echo(f"the ledger applied all {count}")


@app.command("posted")
def posted(
    run_id: Annotated[str, typer.Argument(help="A postings run the accounting system has booked")],
    voucher: Annotated[str | None, typer.Option(help="The accounting system's voucher number (default: the run id)")]
        = None,
    on: Annotated[dt.datetime | None, typer.Option(formats=DATE_FORMATS, help="The posting date (default the run's)")]
        = None,
    topic: Annotated[str | None, typer.Option(help="Topic to publish to (default: the settlements topic of the "
                                                   "signer's tenant, docs/tenancy.md; else the shared one)")] = None,
    signing_key: Annotated[Path | None, typer.Option(
        help="The finance system's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
    wait: Annotated[float, typer.Option(help="Wait up to this many seconds for the ledger to apply them")] = 0,
) -> None:
    """The municipality's accounting system booked a postings run: each of its payments is
    paid (signed settlements whose reference is the voucher), and the run acknowledged."""
    from services.ledger.payouts import RunChangeRefused, change_run_state, recorded_run
    from shared.domain.finance.bank_csv import CsvAnswer
    from shared.domain.finance.runs import RunState
    from shared.domain.finance.settlements import AnswerStatus

    found = _connected(lambda c: recorded_run(c, run_id))
    if found is None or found.format != PayoutFormat.POSTINGS:
        fail(f"no postings run {run_id!r} (stafet finance runs lists them)")
    if found.state in (RunState.VOIDED, RunState.REJECTED):
        fail(f"run_{found.state.value}: run {run_id} is {found.state.value}; its payments are not posted")
    reference = (voucher or run_id)[:64]
    day = on.date() if on else found.execution_date
    answers = [CsvAnswer(n, x.payment_id, AnswerStatus.PAID, x.amount_minor, x.currency, day, reference, None)
               for n, x in enumerate(found.lines, start=1)]
    _publish_answers(Path(run_id), answers, False, topic, signing_key, wait)
    if found.state != RunState.ACKNOWLEDGED:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        try:
            _connected(lambda c: change_run_state(c, run_id, RunState.ACKNOWLEDGED, now=now,
                                                  detail=f"posted as {reference}"))
        except RunChangeRefused as error:
            fail(f"{error.reason.value}: {error}")
    typer.echo(f"run {run_id} is acknowledged: posted as {reference}")


@app.command("simulate-bank")
def simulate_bank(
    run_id: Annotated[str, typer.Argument(help="The pain.001 run the bank answers")],
    out: Annotated[Path, typer.Option(help="The answer file to write")],
    kind: Annotated[str, typer.Option("--kind", help="camt.054 (bookings and returns) or pain.002 (status)")] =
        "camt.054",
    returned: Annotated[list[str] | None, typer.Option(
        "--return", help="PAYEE_OR_TRANSFER:CODE, returned after booking (AC04, AC06, MD07, ...)")] = None,
    rejected: Annotated[list[str] | None, typer.Option(
        "--reject", help="PAYEE_OR_TRANSFER:CODE, rejected before booking (pain.002)")] = None,
    no_booking: Annotated[bool, typer.Option("--returns-only", help="Only the returns, the bookings came before")]
        = False,
    booked_on: Annotated[dt.datetime | None, typer.Option(formats=DATE_FORMATS,
                         help="The booking date (default the run's execution date)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Overwrite OUT without asking")] = False,
) -> None:
    """Development only: write what a bank would answer to a run (no bank is involved)."""
    from services.ledger.payouts import recorded_run
    from shared.domain.finance.payouts import transfers_of
    from shared.domain.finance.simulated_bank import camt054, pain002, transfers_in

    if Settings().stafet_env == "production":
        fail("simulate-bank is for development: a production ledger takes only real bank files")
    if kind not in ("camt.054", "pain.002"):
        fail(f"--kind {kind!r}: camt.054 or pain.002")
    found = _connected(lambda c: recorded_run(c, run_id))
    if found is None or found.content is None or found.format != PayoutFormat.PAIN_001:
        fail(f"no pain.001 run {run_id!r} with a recorded file")
    by_name: dict[str, str] = {}
    for transfer in transfers_of(found.lines):
        by_name[transfer.transfer_id] = by_name[transfer.first.payee] = transfer.transfer_id

    def codes(options: list[str] | None) -> dict[str, str]:
        chosen: dict[str, str] = {}
        for option in options or []:
            name, _, code = option.rpartition(":")
            if name not in by_name or not code:
                fail(f"{option!r}: PAYEE_OR_TRANSFER:CODE, with a payee or transfer of run {run_id}")
            chosen[by_name[name]] = code
        return chosen

    _refuse_existing(out, yes)
    day = booked_on.date() if booked_on else found.execution_date
    if kind == "pain.002":
        data = pain002(found.content, message_id=f"PSR-{run_id[7:30]}-{len(rejected or [])}", created_on=day,
                       rejected=codes(rejected))
    else:
        returns = codes(returned)
        data = camt054(transfers_in(found.content), booked_on=day, returned=returns, book=not no_booking,
                       message_id=f"NTF-{run_id[7:25]}-{'R' if no_booking else 'B'}{len(returns)}")
    try:
        write_durably(out, data)
    except FileProblem as error:
        fail(str(error))
    typer.echo(f"wrote {out}: a simulated {kind} for run {run_id}")
