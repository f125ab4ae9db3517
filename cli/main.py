"""`stafet`: the command line for operators, analysts and developers.

Expected failures (a bad file, a server that does not answer) print one clear line to
stderr and exit 2; only bugs produce tracebacks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import json
import logging
import os
import sys
from fractions import Fraction
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer

from cli import access as access_commands
from cli import audit as audit_commands
from cli import contracts as contract_commands
from cli import dev as dev_commands
from cli import experiment as experiment_commands
from cli import finance as finance_commands
from cli import frontdoor as frontdoor_commands
from cli import indicators as indicator_commands
from cli import invest as invest_commands
from cli import keys as keys_commands
from cli import ledger as ledger_commands
from cli import national as national_commands
from cli import privacy as privacy_commands
from cli import programme as programme_commands
from cli import serve as serve_commands
from cli import settle as settle_commands
from cli import verifier as verifier_commands
from cli import whatif as whatif_commands
from cli.defaults import shown
from cli.errors import EXIT_BAD_INPUT, fail, file_problem, unreachable_server
from cli.history import HistoryFileError, load_history
from cli.reporting.exports import ExportFormat, ExportTable
from shared.domain.contracts.loader import ContractFileError, load_contract
from shared.domain.contracts.model import RatePrice, SolidarityDistribution
from shared.domain.contracts.solidarity import SolidarityError
from shared.domain.contracts.solidarity import allocate as allocate_pot
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import INSTITUTION_EVENTS

SONDERBORG_INDICATORS = REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml"
DATE_FORMATS = ["%Y-%m-%d"]  # dates are parsed by typer and refused with its one-line error
app = typer.Typer(rich_markup_mode=None, help="Stafet: outcome contracts paid exactly, on Kafka and PostgreSQL.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(rich_markup_mode=None, help="Database schema.", no_args_is_help=True)
app.add_typer(access_commands.app, name="access")
app.add_typer(contract_commands.app, name="contract")
app.add_typer(keys_commands.app, name="keys")
app.registered_commands.extend(whatif_commands.app.registered_commands)
app.registered_commands.extend(serve_commands.app.registered_commands)
app.add_typer(db_app, name="db")
app.command("settle")(settle_commands.settle)
app.command("audit")(audit_commands.audit)
app.add_typer(dev_commands.app, name="dev")
app.add_typer(finance_commands.app, name="finance")
app.add_typer(frontdoor_commands.app, name="frontdoor")
app.add_typer(indicator_commands.app, name="indicators")
app.add_typer(experiment_commands.app, name="experiment")
app.add_typer(invest_commands.app, name="invest")
app.add_typer(ledger_commands.app, name="ledger")
app.add_typer(national_commands.app, name="national")
app.add_typer(privacy_commands.app, name="privacy")
app.add_typer(programme_commands.app, name="programme")
app.add_typer(verifier_commands.app, name="verifier")

CLOCK_LAG_DAYS_MAX = 3660
CLOCK_EVERY_S_MIN, CLOCK_EVERY_S_MAX = 60, 7 * 24 * 3600


def watermark_day(date: dt.date | None, lag_days: int, today: dt.date) -> dt.date:
    """The day a watermark says the facts are in through: DATE, else today less the lag
    (the days an institution may take to report what happened)."""
    return date if date is not None else today - dt.timedelta(days=lag_days)


@app.command("clock")
def clock_tick(
    date: Annotated[dt.datetime | None, typer.Option(
        formats=DATE_FORMATS, help="The date event time has reached (default today less --lag-days)")] = None,
    lag_days: Annotated[int, typer.Option(min=0, max=CLOCK_LAG_DAYS_MAX,
                                          help="Without --date: how many days before today the facts are in")] = 0,
    every: Annotated[int | None, typer.Option(
        min=CLOCK_EVERY_S_MIN, max=CLOCK_EVERY_S_MAX,
        help="A scheduler: publish today less --lag-days again every this many seconds, until stopped")] = None,
    signing_key: Annotated[Path | None, typer.Option(
        help="An operator's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
) -> None:
    """Publish a watermark, signed by an operator, on every partition of the transitions
    topic: the facts that occurred on or before DATE are in. Outcomes whose decision date
    (the day they count plus the contract's review window) it passes become final and are
    paid; sustainment periods and deadlines up to it elapse (docs/contracts.md, "Finality").
    With --every, a scheduler for production: today less --lag-days, on a cadence."""
    import time

    from cli.signed import send_signed, signer_or_fail
    from shared.domain.events import ClockTick
    from shared.platform.settings import Settings
    from shared.platform.topics import TRANSITIONS

    if date is not None and every is not None:
        fail("--date and --every do not go together: a scheduler publishes today less --lag-days")
    settings = Settings()
    signer = signer_or_fail(settings, "operator", signing_key)
    while True:
        day = watermark_day(date.date() if date else None, lag_days, dt.date.today())
        sent = asyncio.run(send_signed(settings.kafka_bootstrap_servers, "stafet-clock", TRANSITIONS.name,
                                       [(b"clock", ClockTick(today=day).model_dump_json().encode())], signer,
                                       principal="operator", every_partition=True))
        typer.echo(f"watermark {day.isoformat()} published on {sent} partition(s)")
        if every is None:
            return
        time.sleep(every)


@app.command("allocate")
def allocate(
    contract: Annotated[Path, typer.Option(help="Contract YAML with a solidarity outcome")],
    history: Annotated[Path, typer.Option(help="JSON: birth_date and registrations")],
    amount_minor: Annotated[int | None, typer.Option(
        help="Amount the trigger carries (for a rate price); omit for a fixed price")] = None,
    on: Annotated[dt.datetime | None, typer.Option(formats=DATE_FORMATS, help="Trigger date (default today)")] = None,
    outcome: Annotated[str | None, typer.Option(help="Outcome id (default: the first solidarity one)")] = None,
) -> None:
    """Allocate one solidarity pot over a history and print the split as JSON."""
    try:
        loaded = load_contract(contract)
        subject_history = load_history(history)
    except (ContractFileError, HistoryFileError) as error:
        fail(str(error))
    candidates = [o for o in loaded.outcomes if isinstance(o.distribution, SolidarityDistribution)
                  and (outcome is None or o.id == outcome)]
    if not candidates:
        fail(f"{contract}: no solidarity outcome{f' named {outcome!r}' if outcome else ''}")
    chosen = candidates[0]
    trigger_date = on.date() if on else dt.date.today()
    if isinstance(chosen.price, RatePrice):
        if amount_minor is None or amount_minor < 0:
            fail("this contract prices by rate: give --amount-minor (a non-negative integer)")
        # Exact fractions: Decimal arithmetic keeps 28 digits and rounded pots of 10**28
        # and more half-even (up by one unit); the payer keeps the fraction, so round down.
        pot = Fraction(chosen.price.rate) * amount_minor
        pot_minor = pot.numerator // pot.denominator
    else:
        pot_minor = chosen.price.amount_minor
    assert isinstance(chosen.distribution, SolidarityDistribution)
    try:
        result = allocate_pot(chosen.distribution, subject_history.birth_date,
                              subject_history.registrations, pot_minor, trigger_date)
    except SolidarityError as error:
        fail(str(error))
    typer.echo(json.dumps({
        "currency": loaded.currency,
        "pot_minor": result.pot_minor,
        "allocations": [{"institution": i, "amount_minor": a} for i, a in result.allocations],
        "unallocated_minor": result.unallocated_minor,
        "not_accrued_minor": result.not_accrued_minor,
    }, indent=2))


@app.command("publish")
def publish(
    file: Annotated[Path, typer.Argument(help="Institution events: JSON Lines, or CSV (a .csv file)")],
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Publish the valid lines even if some are bad")] = False,
    topic: Annotated[str, typer.Option(help="Topic to publish to")] = INSTITUTION_EVENTS.name,
    signing_key: Annotated[Path | None, typer.Option(
        help="The institution's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
) -> None:
    """Validate a file of institution events, then seal, sign and publish it (idempotent
    by event id)."""
    from cli.publish import InstitutionSigning, publish_records, validate_lines
    from cli.terminal import progress
    from shared.platform.settings import Settings
    from shared.platform.trust import ConfigurationError

    if not file.is_file():
        fail(f"{file}: no such file")
    good, problems = validate_lines(file)
    for problem in problems:
        typer.echo(f"{file}:{problem.line}: {problem.message}", err=True)
    if problems and not skip_invalid:
        fail(f"{len(problems)} invalid line(s); nothing published (use --skip-invalid to "
             "publish the valid ones)")
    settings = Settings()
    bootstrap = settings.kafka_bootstrap_servers
    try:
        signing = InstitutionSigning(settings, signing_key)
    except ConfigurationError as error:
        fail(str(error))
    with progress() as bar:
        task = bar.add_task("publishing", total=len(good))
        try:
            published = asyncio.run(publish_records(
                bootstrap, topic, good, lambda n: bar.advance(task, n), signing=signing))
        except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
            fail(f"publishing to Kafka at {bootstrap} failed: {error}")
    typer.echo(f"published {published}, skipped {len(problems)}, failed 0")


@app.command("demo")
def demo(
    subjects: Annotated[int, typer.Option(help="Children in the synthetic municipality", min=10,
                                          max=200_000)] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed for the municipality")] = 7,
    nation: Annotated[bool, typer.Option(
        "--nation", help="Instead: a small nation, several municipalities as tenants of one clearing house, "
                         "children moving between them (docs/tenancy.md); per-tenant totals, a cross-border line, "
                         "the price of exclusion by municipality (who paid, who harvests) and an indicator "
                         "per tenant, small cells suppressed")]
        = False,
    municipalities: Annotated[int, typer.Option(help="With --nation: how many municipalities", min=2, max=98)] = 4,
) -> None:
    """A municipality's years of outcome contracts on real servers: who earned what."""
    if nation:
        from cli.demo_nation import run_nation_demo

        run_nation_demo(municipalities, subjects, seed)
        return
    from cli.demo import run_demo

    run_demo(subjects, seed)


@app.command("docs")
def docs(check: Annotated[bool, typer.Option("--check", help="Fail if docs/asyncapi/ or docs/openapi/ is out of date")] = False,
         ) -> None:
    """Write the AsyncAPI documents (docs/asyncapi/<service>.yaml) from the FastStream apps and the
    front door's OpenAPI document (docs/openapi/frontdoor.yaml) from its FastAPI app."""
    from cli.asyncapi import ASYNCAPI_DIR, OPENAPI_DIR, drift, generate, generate_openapi

    if check:
        problems = drift()
        for problem in problems:
            typer.echo(problem, err=True)
        if problems:
            fail("docs/asyncapi/ or docs/openapi/ differs from the code; run `make docs` and commit the result")
        typer.echo("docs/asyncapi/ and docs/openapi/ match the code")
        return
    ASYNCAPI_DIR.mkdir(parents=True, exist_ok=True)
    OPENAPI_DIR.mkdir(parents=True, exist_ok=True)
    for path in [*generate(ASYNCAPI_DIR), *generate_openapi(OPENAPI_DIR)]:
        typer.echo(f"wrote {path.relative_to(REPO_ROOT)}")


@app.command("export")
def export(
    table: Annotated[ExportTable | None, typer.Argument(help="outcomes, payments, balances or indicators")] = None,
    output_format: Annotated[ExportFormat, typer.Option("--format", help="csv, jsonl or parquet")] = ExportFormat.CSV,
    out: Annotated[Path | None, typer.Option(help="The file to write")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Overwrite OUT without asking")] = False,
    columns: Annotated[bool, typer.Option("--columns", help="Print every table's columns (Markdown) and exit")]
        = False,
    year: Annotated[list[int] | None, typer.Option(help="indicators: a year measured (repeat for several)",
                                                   min=1900, max=2200)] = None,
    indicators: Annotated[Path, typer.Option(
            help="indicators: the definitions (YAML)", show_default=shown(SONDERBORG_INDICATORS))] =
        SONDERBORG_INDICATORS,
) -> None:
    """Export a table for analysts from the live databases (docs/exports.md lists the columns)."""
    from cli.reporting.exports import columns_markdown, export_table
    from cli.terminal import progress
    from shared.platform.credentials import database_url
    from shared.platform.settings import Settings

    if columns:
        typer.echo(columns_markdown())
        return
    if table is None or out is None:
        fail("give a TABLE (outcomes, payments, balances, indicators) and --out FILE")
    if table is ExportTable.INDICATORS:
        if output_format is ExportFormat.PARQUET:
            fail("the indicators export is written as csv or jsonl")
        if not year:
            fail("the indicators export needs at least one --year")
    elif output_format is ExportFormat.PARQUET and importlib.util.find_spec("pyarrow") is None:
        fail("parquet needs pyarrow: install the extra stafet[export] (the service image leaves it out)")
    if out.exists() and not yes and not typer.confirm(f"{out} exists: overwrite it?", default=False):
        fail(f"{out} exists; nothing written (use --yes to overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with progress() as bar:
        bar.add_task(f"exporting {table.value}", total=None)
        if table is ExportTable.INDICATORS:
            count = _export_indicators(indicators, sorted(set(year or ())), output_format, out)
        else:
            count = asyncio.run(export_table(database_url("operator", Settings()), table, output_format, out,
                                             _registry_names()))
    typer.echo(f"wrote {count} {table.value} row(s) to {out} ({output_format.value})")


def _registry_names() -> dict[str, str]:
    """Institution names by id for the exports' name columns (none if no registry is readable)."""
    from shared.domain.institutions import InstitutionRegistry, RegistryError
    from shared.platform.settings import Settings

    try:
        return {i.id: i.name for i in InstitutionRegistry.from_file(Settings().institutions_file).all()}
    except RegistryError:
        return {}


def _export_indicators(definitions_file: Path, years: list[int], output_format: ExportFormat, out: Path) -> int:
    """Indicators from the live verifier's event store, small cells suppressed."""
    from cli.indicators import minimum_cell_setting
    from cli.reporting.exports import indicator_rows, write_indicator_rows
    from cli.reporting.live_indicators import live_timelines
    from shared.domain.indicators.loader import IndicatorFileError, load_indicators
    from shared.platform.credentials import database_url
    from shared.platform.settings import Settings

    least = minimum_cell_setting()
    try:
        definitions = load_indicators(definitions_file)
    except IndicatorFileError as error:
        fail(str(error))
    timelines = asyncio.run(live_timelines(database_url("operator", Settings())))
    return write_indicator_rows(indicator_rows(definitions, timelines, years, least), output_format, out)


@db_app.command("migrate")
def db_migrate(
    wait_s: Annotated[float, typer.Option("--wait-s", min=0, max=3600,
                                          help="Wait this long for the database to answer and for the roles "
                                               "the migrations grant to exist (a cluster made in the same "
                                               "install); 0: fail at once")] = 0,
) -> None:
    """Apply the SQL migrations not yet applied (idempotent)."""
    from shared.platform.credentials import database_url
    from shared.platform.db import migrate_when_ready
    from shared.platform.settings import Settings

    # The owner role's job: DATABASE_URL with the owner's user (a deployment's migration
    # job), else the local stack's owner credentials. A server that cannot be reached is
    # reported by main() without the URL, which may carry a password.
    applied = asyncio.run(migrate_when_ready(database_url("owner", Settings()), wait_s=wait_s))
    typer.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@db_app.command("tenants")
def db_tenants(
    password_dir: Annotated[Path | None, typer.Option(
        help="Where each missing role's password is (a file named after the role; made if absent): "
             "the role is then created (the owner needs CREATEROLE)")] = None,
) -> None:
    """Give each tenant's database roles (TENANTS_FILE `database_roles`, docs/tenancy.md)
    read access to its own rows: SELECT on the tables with row-level security, mapped to
    the tenant; a role no longer listed loses both. As the owner, after `stafet db migrate`."""
    import secrets

    from shared.platform.credentials import database_url
    from shared.platform.settings import Settings
    from shared.platform.tenants import (
        TenantRoleError,
        TenantsConfigurationError,
        grant_tenant_roles,
        load_tenancy,
    )

    settings = Settings()
    try:
        tenancy = load_tenancy(settings)
    except TenantsConfigurationError as error:
        fail(str(error))
    if tenancy is None:
        fail("no tenants: set TENANTS_FILE (docs/tenancy.md)")
    roles = tenancy.database_roles()
    passwords: dict[str, str] = {}
    if password_dir is not None:
        password_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for role in roles:
            path = password_dir / role
            try:
                if not path.exists():
                    path.write_text(secrets.token_urlsafe(24), encoding="utf-8")
                    path.chmod(0o600)
                passwords[role] = path.read_text(encoding="utf-8").strip()
            except OSError:
                # A read-only folder (the chart's Secret) without this role: it must exist
                # already, and grant_tenant_roles says so if it does not.
                continue
    try:
        done = asyncio.run(grant_tenant_roles(database_url("owner", settings), roles, passwords))
    except TenantRoleError as error:
        fail(str(error))
    for line in done:
        typer.echo(line)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"stafet {package_version('stafet')}")
        raise typer.Exit


@app.callback()
def common(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Print the version and exit")] = False,
) -> None:
    """Stafet: outcome contracts paid exactly, on Kafka and PostgreSQL."""


def main() -> None:  # pragma: no cover - console entry point (tested through the process)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # aiokafka logs every failed connection attempt at ERROR level; the CLI reports a
    # server it cannot reach itself, once, as one `error:` line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    # typer vendors click (typer._click): its exceptions, not the click package's, reach us.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    from shared.platform.credentials import CredentialsError

    try:
        # Not standalone: a usage error (a bad date, an unknown --format value) comes back
        # here and is reported as one `error:` line like every other expected failure,
        # instead of click's multi-line box.
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as error:
        # A group called with no command: its help, on stdout like `--help`.
        typer.echo(error.ctx.get_help() if error.ctx else error.format_message())
        sys.exit(0)
    except UsageError as error:
        command = error.ctx.command_path if error.ctx else "stafet"
        usage = error.format_message().replace("Value error, ", "")
        typer.echo(f"error: {command}: {usage} (see --help)", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except typer.Abort:
        typer.echo("error: cancelled; nothing changed", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except ClickException as error:
        typer.echo(f"error: {error.format_message()}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except CredentialsError as error:
        # Missing credentials are a configuration problem, reported like bad input.
        typer.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as error:
        message = file_problem(error) or unreachable_server(error)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(code if isinstance(code, int) else 0)
