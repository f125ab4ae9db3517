"""`stafet`: the command line for operators, analysts and developers.

Expected failures (a bad file, a server that does not answer) print one clear line to
stderr and exit 2; only bugs produce tracebacks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from shared.cli import dev as dev_commands
from shared.cli import ledger as ledger_commands
from shared.cli import verifier as verifier_commands
from shared.cli.history import HistoryFileError, load_history
from shared.contracts.loader import ContractFileError, load_contract
from shared.contracts.model import FixedPrice, RatePrice, SolidarityDistribution
from shared.contracts.solidarity import SolidarityError
from shared.contracts.solidarity import allocate as allocate_pot
from shared.settings import REPO_ROOT
from shared.topics import INSTITUTION_EVENTS

app = typer.Typer(help="Stafet: outcome contracts paid exactly, on Kafka and PostgreSQL.",
                  no_args_is_help=True, add_completion=False)
contract_app = typer.Typer(help="Check and show contract files.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
app.add_typer(db_app, name="db")
app.add_typer(dev_commands.app, name="dev")
app.add_typer(ledger_commands.app, name="ledger")
app.add_typer(verifier_commands.app, name="verifier")

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


@contract_app.command("check")
def contract_check(files: Annotated[list[Path], typer.Argument(help="Contract YAML files")]) -> None:
    """Validate contract files; print one line per problem and exit 2 if any is bad."""
    bad = False
    for path in files:
        try:
            contract = load_contract(path)
        except ContractFileError as error:
            typer.echo(str(error), err=True)
            bad = True
            continue
        typer.echo(f"ok: {path}: {contract.contract_id} v{contract.version}, "
                   f"{len(contract.outcomes)} outcome(s)")
    if bad:
        raise typer.Exit(EXIT_BAD_INPUT)


@contract_app.command("show")
def contract_show(path: Path) -> None:
    """Print a contract readably: payer, period, each outcome's trigger, price and payees."""
    try:
        contract = load_contract(path)
    except ContractFileError as error:
        fail(str(error))
    typer.echo(f"{contract.contract_id} v{contract.version}: {contract.title}")
    typer.echo(f"  payer {contract.payer}, {contract.currency}, "
               f"{contract.period.start} .. {contract.period.end}")
    if contract.fallback_account:
        typer.echo(f"  unallocated money goes to {contract.fallback_account}")
    for outcome in contract.outcomes:
        typer.echo(f"  outcome {outcome.id}: on {outcome.trigger.event.value}")
        for predicate in outcome.trigger.where:
            typer.echo(f"    where {predicate.field} {predicate.op} {predicate.value}")
        if outcome.sustainment:
            typer.echo(f"    held {outcome.sustainment.days} days, broken by "
                       f"{', '.join(e.value for e in outcome.sustainment.broken_by)}")
        price = outcome.price
        if isinstance(price, FixedPrice):
            typer.echo(f"    price {price.amount_minor / 100:,.2f} {contract.currency}")
        else:
            typer.echo(f"    price {price.rate} of {price.of_field}")
        typer.echo(f"    distribution {outcome.distribution.kind}")
    caps = contract.caps
    for name, value in (("per subject", caps.per_subject_minor), ("in total", caps.total_minor)):
        if value is not None:
            typer.echo(f"  cap {name}: {value / 100:,.2f} {contract.currency}")


@contract_app.command("apply")
def contract_apply(files: Annotated[list[Path], typer.Argument(help="Contract YAML files")]) -> None:
    """Validate contract files and publish them to the contracts topic, where every
    verifier picks them up. A version once published is never replaced: publish a new
    version (with `effective_from`) to change a contract."""
    from shared.kafka import make_producer
    from shared.settings import Settings
    from shared.topics import CONTRACTS

    contracts = []
    for path in files:
        try:
            contracts.append(load_contract(path))
        except ContractFileError as error:
            fail(str(error))

    async def send() -> None:
        producer = make_producer(Settings().kafka_bootstrap_servers, client_id="stafet-contract-apply")
        await producer.start()
        try:
            for contract in contracts:
                key = f"{contract.contract_id}@{contract.version}".encode()
                await producer.send_and_wait(CONTRACTS.name, contract.model_dump_json().encode(), key=key)
        finally:
            await producer.stop()

    try:
        asyncio.run(send())
    except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
        fail(f"publishing contracts failed: {error}")
    for contract in contracts:
        typer.echo(f"applied {contract.contract_id} v{contract.version}")


@app.command("clock")
def clock_tick(
    date: Annotated[str | None, typer.Option(help="The date event time has reached (default today)")] = None,
) -> None:
    """Publish a clock tick: event time has reached DATE, so sustainment periods and
    deadlines up to it can elapse even if no institution reported anything."""
    from shared.events import ClockTick
    from shared.kafka import make_producer
    from shared.settings import Settings
    from shared.topics import TRANSITIONS

    try:
        today = dt.date.fromisoformat(date) if date else dt.date.today()
    except ValueError:
        fail(f"--date {date!r} is not a date (YYYY-MM-DD)")

    async def send() -> None:
        producer = make_producer(Settings().kafka_bootstrap_servers, client_id="stafet-clock")
        await producer.start()
        try:
            await producer.send_and_wait(TRANSITIONS.name, ClockTick(today=today).model_dump_json().encode(),
                                         key=b"clock")
        finally:
            await producer.stop()

    asyncio.run(send())
    typer.echo(f"clock tick {today.isoformat()} published")


@app.command("allocate")
def allocate(
    contract: Annotated[Path, typer.Option(help="Contract YAML with a solidarity outcome")],
    history: Annotated[Path, typer.Option(help="JSON: birth_date and registrations")],
    amount_minor: Annotated[int | None, typer.Option(
        help="Amount the trigger carries (for a rate price); omit for a fixed price")] = None,
    on: Annotated[str | None, typer.Option(help="Trigger date YYYY-MM-DD (default today)")] = None,
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
    try:
        trigger_date = dt.date.fromisoformat(on) if on else dt.date.today()
    except ValueError:
        fail(f"--on {on!r} is not a date (YYYY-MM-DD)")
    if isinstance(chosen.price, RatePrice):
        if amount_minor is None or amount_minor < 0:
            fail("this contract prices by rate: give --amount-minor (a non-negative integer)")
        pot = chosen.price.rate * amount_minor
        pot_minor = int(pot)  # Decimal * int is exact; int() rounds toward zero (down here)
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
    file: Annotated[Path, typer.Argument(help="JSON Lines file of institution events")],
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Publish the valid lines even if some are bad")] = False,
    topic: Annotated[str, typer.Option(help="Topic to publish to")] = INSTITUTION_EVENTS.name,
) -> None:
    """Validate a file of institution events, then publish it (idempotent by event id)."""
    from rich.progress import Progress

    from shared.cli.publish import publish_records, validate_lines
    from shared.settings import Settings

    if not file.is_file():
        fail(f"{file}: no such file")
    good, problems = validate_lines(file)
    for problem in problems:
        typer.echo(f"{file}:{problem.line}: {problem.message}", err=True)
    if problems and not skip_invalid:
        fail(f"{len(problems)} invalid line(s); nothing published (use --skip-invalid to "
             "publish the valid ones)")
    bootstrap = Settings().kafka_bootstrap_servers
    with Progress(transient=True) as bar:
        task = bar.add_task("publishing", total=len(good))
        try:
            published = asyncio.run(publish_records(
                bootstrap, topic, good, lambda n: bar.advance(task, n)))
        except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
            fail(f"publishing to Kafka at {bootstrap} failed: {error}")
    typer.echo(f"published {published}, skipped {len(problems)}, failed 0")


@app.command("demo")
def demo(
    subjects: Annotated[int, typer.Option(help="Children in the synthetic municipality", min=10,
                                          max=200_000)] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed for the municipality")] = 7,
) -> None:
    """A municipality's years of outcome contracts on real servers: who earned what."""
    from shared.cli.demo import run_demo

    run_demo(subjects, seed)


@app.command("docs")
def docs(check: Annotated[bool, typer.Option("--check", help="Fail if docs/asyncapi/ is out of date")] = False,
         ) -> None:
    """Write the AsyncAPI documents (docs/asyncapi/<service>.yaml) from the FastStream apps."""
    from shared.cli.asyncapi import ASYNCAPI_DIR, drift, generate

    if check:
        problems = drift()
        for problem in problems:
            typer.echo(problem, err=True)
        if problems:
            fail("docs/asyncapi/ differs from the code; run `make docs` and commit the result")
        typer.echo("docs/asyncapi/ matches the code")
        return
    ASYNCAPI_DIR.mkdir(parents=True, exist_ok=True)
    for path in generate(ASYNCAPI_DIR):
        typer.echo(f"wrote {path.relative_to(REPO_ROOT)}")


keys_app = typer.Typer(help="Keys for production.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(out: Annotated[Path, typer.Option(help="Folder to write the keys into")] = Path("keys")) -> None:
    """Make ingest's sealing key pair and a pseudonym key (files readable by the owner only).
    Give ingest `ingest-sealing.key` and `pseudonym.key`; give publishers `ingest-sealing.pub`."""
    import os
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = serialization.Encoding.Raw
    private = X25519PrivateKey.generate()
    files = {
        "ingest-sealing.key": private.private_bytes(raw, serialization.PrivateFormat.Raw,
                                                    serialization.NoEncryption()).hex(),
        "ingest-sealing.pub": private.public_key().public_bytes(raw, serialization.PublicFormat.Raw).hex(),
        "pseudonym.key": secrets.token_hex(32),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = out / name
        if path.exists():
            fail(f"{path} exists; refusing to overwrite a key")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if name.endswith(".key") else 0o644)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text + "\n")
        typer.echo(f"wrote {path}")


@app.command("generate")
def generate_population(
    subjects: Annotated[int, typer.Option(help="How many subjects", min=1, max=10_000_000)] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same events")] = 1,
    municipalities: Annotated[int, typer.Option(min=1, max=98)] = 1,
    born_from: Annotated[int, typer.Option(help="First birth year")] = 2000,
    born_to: Annotated[int, typer.Option(help="Last birth year")] = 2006,
    out: Annotated[Path, typer.Option(help="Events file (JSON Lines)")] = Path("generated/events.jsonl"),
    registry: Annotated[Path, typer.Option(help="Institution registry to write")] = Path("generated/institutions.yaml"),
    kafka: Annotated[bool, typer.Option("--kafka", help="Also publish the events (sealed) to Kafka")] = False,
) -> None:
    """A deterministic synthetic population (institutions, subjects, their events),
    with default rates from published Danish figures. CPR numbers are synthetic."""
    from rich.progress import Progress

    from shared.synthetic import generate, to_json_line, write_registry

    institutions, events = generate(subjects, seed=seed, municipalities=municipalities,
                                    born_from=born_from, born_to=born_to)
    out.parent.mkdir(parents=True, exist_ok=True)
    registry.parent.mkdir(parents=True, exist_ok=True)
    write_registry(registry, institutions)
    count = 0
    with out.open("wb") as handle, Progress(transient=True) as bar:
        task = bar.add_task("generating", total=subjects * 9)
        for event in events:
            handle.write(to_json_line(event) + b"\n")
            count += 1
            if count % 10_000 == 0:
                bar.advance(task, 10_000)
    typer.echo(f"{count:,} events for {subjects:,} subjects in {out}; {len(institutions)} institutions in {registry}")
    if kafka:
        from shared.cli.publish import publish_records, validate_lines
        from shared.settings import Settings

        good, _ = validate_lines(out)
        asyncio.run(publish_records(Settings().kafka_bootstrap_servers, INSTITUTION_EVENTS.name, good))
        typer.echo(f"published {len(good):,} events to {INSTITUTION_EVENTS.name}")


@app.command("simulate")
def simulate(
    events: Annotated[Path, typer.Option(help="Institution events, JSON Lines or CSV (CPR numbers in clear)")],
    contract: Annotated[list[Path], typer.Option(help="A contract variant; give two or more to compare")],
    institutions: Annotated[Path, typer.Option(help="Institution registry YAML")] =
        REPO_ROOT / "examples" / "institutions.yaml",
    on: Annotated[str | None, typer.Option(help="Evaluate as of YYYY-MM-DD (default: the latest event)")] = None,
    assumptions: Annotated[Path, typer.Option(help="Business-case assumptions YAML")] =
        REPO_ROOT / "examples" / "business-case.yaml",
    report: Annotated[Path, typer.Option(help="Where to write the HTML report")] = Path("reports/simulation.html"),
) -> None:
    """What-if: replay the same events through the pure engine under each contract
    variant (no Kafka, no money moves) and compare cost, outcomes, payments per kind of
    institution, estimated savings and net; write the HTML report."""
    from shared.cli.publish import validate_lines
    from shared.institutions import InstitutionRegistry, RegistryError
    from shared.reporting.business_case import load_assumptions
    from shared.reporting.html import money, render
    from shared.reporting.simulate import simulate as replay
    from shared.reporting.simulate import transitions_of

    try:
        variants = [load_contract(path) for path in contract]
        registry = InstitutionRegistry.from_file(institutions)
        as_of = dt.date.fromisoformat(on) if on else None
        case = load_assumptions(assumptions)
    except (ContractFileError, RegistryError) as error:
        fail(str(error))
    except ValueError as error:
        fail(f"bad option: {error}")
    if not events.is_file():
        fail(f"{events}: no such file")
    good, problems = validate_lines(events)
    for problem in problems:
        typer.echo(f"{events}:{problem.line}: {problem.message} (skipped)", err=True)
    transitions, rejected = transitions_of((raw for _, raw in good), registry)
    if not transitions:
        fail(f"{events}: no event passed admission ({rejected} rejected); is the registry right?")
    typer.echo(f"{len(transitions):,} events admitted, {rejected + len(problems):,} rejected")
    results = [replay(v.title or v.contract_id, [v], transitions, registry, as_of) for v in variants]
    from shared.reporting.business_case import business_cases
    from shared.reporting.data import net_by_kind

    kinds = sorted({k for r in results for k in net_by_kind(r)})
    typer.echo(f"{'variant':<44}{'verified':>9}{'cost':>17}{'savings':>17}{'net':>17}"
               + "".join(f"{k[:16]:>18}" for k in kinds))
    for result in results:
        cases = business_cases(result, case)
        cost, saved = sum(c.paid_minor for c in cases), sum(c.savings_minor for c in cases)
        verified = sum(1 for o in result.outcomes if o.status == "verified")
        by_kind = net_by_kind(result)
        typer.echo(f"{result.title[:43]:<44}{verified:>9}{money(cost):>17}{money(saved):>17}{money(saved - cost):>17}"
                   + "".join(f"{money(by_kind.get(k, 0)):>18}" for k in kinds))
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(results, case, title="Stafet what-if: contract variants compared"), encoding="utf-8")
    typer.echo(f"report: {report.resolve()}")


@app.command("report")
def live_report(
    out: Annotated[Path, typer.Option(help="Where to write the HTML report")] = Path("reports/stafet.html"),
    assumptions: Annotated[Path, typer.Option(help="Business-case assumptions YAML")] =
        REPO_ROOT / "examples" / "business-case.yaml",
) -> None:
    """Render the HTML report from the live ledger and the verifier's decisions."""
    from shared.institutions import InstitutionRegistry
    from shared.reporting.business_case import load_assumptions
    from shared.reporting.html import render
    from shared.reporting.live import from_database
    from shared.settings import Settings

    settings = Settings()
    data = asyncio.run(from_database(settings.database_url, InstitutionRegistry.from_file(settings.institutions_file),
                                     "Outcome contracts: the live ledger"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render([data], load_assumptions(assumptions), title="Stafet report"), encoding="utf-8")
    typer.echo(f"report: {out.resolve()}")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the SQL migrations not yet applied (idempotent)."""
    from shared.db import migrate
    from shared.settings import Settings

    url = Settings().database_url
    try:
        applied = asyncio.run(migrate(url))
    except OSError as error:
        fail(f"cannot reach PostgreSQL at {url}: {error}")
    typer.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


def main() -> None:  # pragma: no cover - console entry point
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
    sys.exit(0)
