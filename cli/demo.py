"""`stafet demo` (what `make demo` runs): a municipality's years of outcome contracts, end
to end on real servers, and who earned what.

Starts the local stack if it is not running; gives the run its own topic namespace and
a fresh database (so a second run starts clean); generates a synthetic municipality;
applies the mobility-bonus, double-sided PbR and SIB contracts through the contracts
topic; streams the events through ingest, verifier and ledger; lets a simulated finance
office settle most payments; prints a summary per contract and the top institutions
(small cells suppressed); answers "did it work" (the Sønderborg indicators counted from
the verifier's store, the example experiment on a synthetic trial with a known effect:
its estimate with its interval and the deadweight it measures); writes the HTML report;
stops what it started.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import typer
from aiokafka.errors import KafkaError

from cli import demo_investment
from cli.demo_portal import PortalCheck, check_portal
from cli.dev import default_stack
from cli.experiment import SONDERBORG, demo_experiment, print_experiment
from cli.indicators import minimum_cell_setting
from cli.publish import publish_records
from cli.reporting.business_case import load_assumptions
from cli.reporting.data import ReportData, everyone, summarise
from cli.reporting.disclosure import cell, mark
from cli.reporting.evidence import Evidence
from cli.reporting.finality import MoneyByState, money_by_state, print_money_by_state
from cli.reporting.html import contract_cells, render, shown_institutions
from cli.reporting.investors import investors_section
from cli.reporting.live import live_evidence, published_from_database
from cli.reporting.page import money
from cli.reporting.skandia import case_for, load_exclusion_model, measured_deadweights
from cli.signed import send_signed
from cli.synthetic.population import GENERATED_UNTIL, Effect, generate, to_json_line, write_registry
from cli.terminal import progress, table_lines
from cli.whatif import print_exclusion_case, print_exclusion_header
from services.verifier.store import work_left_at
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.model import contract_record_key
from shared.domain.events import ClockTick, PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.indicators.loader import load_indicators
from shared.domain.indicators.model import DEFAULT_MINIMUM_CELL
from shared.domain.institutions import Institution, InstitutionRegistry
from shared.domain.investment.position import Positions
from shared.domain.investment.records import LEDGER_JOURNAL_RECORD
from shared.domain.signing import RecordSigner
from shared.platform.credentials import credentials_dir, without_user
from shared.platform.db import migrate, recreate_database
from shared.platform.kafka import LagProbe, ensure_topics, wait_for_broker
from shared.platform.kafka_access import grant_namespace
from shared.platform.processes import ServiceProcess, start_services, stop_services
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.topics import (
    CONTRACTS,
    INSTITUTION_EVENTS,
    PAYMENTS,
    SETTLEMENTS,
    TRANSITIONS,
    all_topics,
    in_namespace,
    topic_names,
)
from shared.platform.trust import DEVELOPMENT_FINANCE, DEVELOPMENT_OPERATOR

DEMO_DATABASE = "stafet_demo"
CATCH_UP_TIMEOUT_S = 600.0
CONTRACT_FILES = tuple(REPO_ROOT / "examples" / "contracts" / name
                       for name in ("mobility-bonus.yaml", "employment-pbr.yaml", "sib-youth-education.yaml",
                                    "housing-area-indicator.yaml"))
# The housing area's school (the area is the catchment of daycare 0 and school 0 of
# kommune-000, examples/indicators/sonderborg.yaml) improves: from the 2020 exams its
# pupils pass with this much added to the probability, so the housing-area indicator
# contract (2019 -> 2022 against the rest of the municipality) has a change to pay for.
AREA_SCHOOL = "kommune-000-primary-school-0"
AREA_IMPROVEMENT = Effect(from_year=2020, exam_pass_change=0.10, schools=frozenset({AREA_SCHOOL}))


def demo_population(subjects: int, seed: int) -> tuple[tuple[Institution, ...], Iterator[dict[str, object]]]:
    """The demo's synthetic municipality (the e2e test replays the same)."""
    return generate(subjects, seed=seed, born_from=2000, born_to=2006, effect=AREA_IMPROVEMENT)


EXAMPLE_REGISTRY = REPO_ROOT / "examples" / "institutions.yaml"
# The paying municipality runs the synthetic municipality's first daycare and school
# itself: money to them is an internal posting in its books, not a bank transfer.
OWN_INSTITUTIONS = {"kommune-000-daycare-0": "510100", "kommune-000-primary-school-0": "310100"}


def demo_registry(institutions: Sequence[Institution], contracts: Sequence[Path]) -> tuple[Institution, ...]:
    """The registry the demo's services and finance read: the generated institutions, the
    contracts' payers with their accounts (from examples/institutions.yaml, so a payout
    has a debtor account), and the payer's own institutions flagged with a cost centre."""
    examples = InstitutionRegistry.from_file(EXAMPLE_REGISTRY)
    payers = sorted({load_contract(p).payer for p in contracts})
    have = {i.id for i in institutions}
    added = tuple(found for payer in payers if payer not in have and (found := examples.get(payer)) is not None)
    owner = payers[0] if payers else None
    flagged = tuple(i.model_copy(update={"owned_by": owner, "cost_centre": OWN_INSTITUTIONS[i.id]})
                    if owner and i.id in OWN_INSTITUTIONS else i for i in institutions)
    return (*flagged, *added)


def write_finance_env(path: Path, env: dict[str, str]) -> None:
    """What `stafet finance` needs to work on the demo's ledger after the demo: its database,
    topics, registry and credentials (README, "For finance": `set -a; . .stack/demo/finance.env; set +a`)."""
    keys = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "STAFET_TOPIC_NAMESPACE", "INSTITUTIONS_FILE",
            "STAFET_CREDENTIALS_DIR")
    path.write_text("# The demo's ledger for `stafet finance` (written by `stafet demo`)\n"
                    + "".join(f"{key}={env[key]}\n" for key in keys), encoding="utf-8")


# The operator's clock after the municipality's years of facts are in: "the facts that
# occurred on or before 2026-06-30 are in". Outcomes whose decision date (the day they
# count plus the contract's review window) it passes are final and paid; the rest stay
# provisional (docs/contracts.md, "Finality").
DEMO_WATERMARK = GENERATED_UNTIL
ASSUMPTIONS = REPO_ROOT / "examples" / "business-case.yaml"
EXCLUSION_MODEL = REPO_ROOT / "examples" / "price-of-exclusion.yaml"


@dataclass(frozen=True)
class DemoResult:
    data: ReportData
    events: int
    settled: int
    failed: int
    report: Path
    evidence: Evidence | None = None
    investors: Positions | None = None
    portal: PortalCheck | None = None
    states: MoneyByState | None = None


async def _scalar(database_url: str, query: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(query))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await connection.close()


async def _caught_up(probe: LagProbe, namespace: str, database_url: str, tenants: Sequence[str] = ()) -> bool:
    try:
        lags = [await probe.lag(f"{namespace}-ingest", in_namespace(INSTITUTION_EVENTS, namespace).name),
                await probe.lag(f"{namespace}-verifier", in_namespace(TRANSITIONS, namespace).name),
                await probe.lag(f"{namespace}-ledger", in_namespace(PAYMENTS, namespace).name),
                # the shared settlements topic and each tenant's (docs/tenancy.md), one group
                *[await probe.lag(f"{namespace}-ledger-settlements", topic)
                  for topic in topic_names(in_namespace(SETTLEMENTS, namespace), tenants)]]
    except KafkaError:
        return False  # e.g. the group coordinator of a fresh broker is still starting
    return sum(lags) == 0 and await work_left_at(database_url) == 0


async def wait_caught_up(bootstrap: str, namespace: str, database_url: str,
                         services: dict[str, ServiceProcess], what: str, show: bool,
                         tenants: Sequence[str] = ()) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    async with LagProbe(bootstrap) as probe:
        with progress(show) as bar:
            task = bar.add_task(what, total=None)
            while not await _caught_up(probe, namespace, database_url, tenants):
                dead = [s.name for s in services.values() if not s.running()]
                if dead:
                    raise RuntimeError(f"service(s) {', '.join(dead)} stopped; see {services[dead[0]].log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not caught up after {CATCH_UP_TIMEOUT_S}s")
                entries = await _scalar(database_url, "SELECT count(*) FROM ledger_entries")
                bar.update(task, description=f"{what}: {entries:,} ledger entries")
                await asyncio.sleep(0.5)


def per_subject_and_by_population() -> tuple[list[Path], list[Path]]:
    """The contracts that pay per subject's outcome, and those that pay for a
    population's change (indicator outcomes)."""
    by_population = [p for p in CONTRACT_FILES if load_contract(p).indicator_outcomes]
    return [p for p in CONTRACT_FILES if p not in by_population], by_population


async def apply_contracts(bootstrap: str, namespace: str, files: Sequence[Path]) -> None:
    """As `stafet contract apply` does, signed by the development operator key."""
    contracts = [load_contract(path) for path in files]
    signer = RecordSigner.development(DEVELOPMENT_OPERATOR)
    await send_signed(bootstrap, "stafet-demo", in_namespace(CONTRACTS, namespace).name,
                      [(contract_record_key(c, signer.principal), c.model_dump_json().encode()) for c in contracts],
                      signer, principal="operator")


async def publish_watermark(bootstrap: str, namespace: str, day: dt.date) -> None:
    """As `stafet clock --date DAY` does: a watermark on every transitions partition,
    signed by the development operator key."""
    await send_signed(bootstrap, "stafet-demo-clock", in_namespace(TRANSITIONS, namespace).name,
                      [(b"clock", ClockTick(today=day).model_dump_json().encode())],
                      RecordSigner.development(DEVELOPMENT_OPERATOR), principal="operator", every_partition=True)


async def settle(bootstrap: str, namespace: str, *, paid_share: float, failed_share: float,
                 seed: int) -> tuple[int, int]:
    """A simulated finance office answers the payment instructions on the journal:
    most are paid (with a bank reference), a few fail, the rest stay pending. Like a
    payout run it pays only what is still owed: a payment already clawed back (a
    retraction that came after the watermark) is not paid."""
    from services.verifier.rebuild import read_topic

    chance = random.Random(seed)
    answers: list[Settlement] = []
    instructions = [record for value in await read_topic(bootstrap, in_namespace(PAYMENTS, namespace).name,
                                                         principal="finance")
                    if isinstance(record := LEDGER_JOURNAL_RECORD.validate_json(value), PaymentInstruction)]
    reversed_ids = {i.reverses_payment_id for i in instructions if i.kind == PaymentKind.CLAWBACK}
    for record in instructions:
        if record.kind != PaymentKind.PAYMENT or record.payment_id in reversed_ids:
            continue
        roll = chance.random()
        settled_on = record.occurred_on
        if roll < paid_share:
            answers.append(Settlement(settlement_id=f"bank-{record.payment_id[:16]}", payment_id=record.payment_id,
                                      status=SettlementStatus.PAID, settled_on=settled_on,
                                      bank_reference=f"NETS-{record.payment_id[:10].upper()}"))
        elif roll < paid_share + failed_share:
            answers.append(Settlement(settlement_id=f"bank-{record.payment_id[:16]}", payment_id=record.payment_id,
                                      status=SettlementStatus.FAILED, settled_on=settled_on,
                                      reason="the payee's account is closed"))
    # Signed as `stafet settle` signs, with the development finance key.
    await send_signed(bootstrap, "stafet-demo-finance", in_namespace(SETTLEMENTS, namespace).name,
                      [(a.payment_id.encode(), a.model_dump_json().encode()) for a in answers],
                      RecordSigner.development(DEVELOPMENT_FINANCE), principal="finance")
    paid = sum(1 for a in answers if a.status == SettlementStatus.PAID)
    return paid, len(answers) - paid


async def demo_pipeline(bootstrap: str, database_url: str, namespace: str, work: Path, *,
                        subjects: int, seed: int, paid_share: float = 0.8, failed_share: float = 0.02,
                        show: bool = True, minimum_cell: int = DEFAULT_MINIMUM_CELL) -> DemoResult:
    def say(message: str) -> None:
        if show:
            typer.echo(message)

    await wait_for_broker(bootstrap)
    await ensure_topics(bootstrap, all_topics(namespace))
    await grant_namespace(bootstrap, namespace)
    await migrate(database_url)
    population, generated = demo_population(subjects, seed)
    institutions = demo_registry(population, CONTRACT_FILES)
    registry_file = work / "institutions.yaml"
    work.mkdir(parents=True, exist_ok=True)
    write_registry(registry_file, institutions)
    events = [(n, to_json_line(e)) for n, e in enumerate(generated, start=1)]
    say(f"  a synthetic municipality: {len(institutions)} institutions, {subjects:,} children born 2000-2006, "
        f"{len(events):,} events up to 2026-06-30; the housing area's school gets "
        f"{100 * AREA_IMPROVEMENT.exam_pass_change:+.0f} percentage points on the 9th-grade exam from "
        f"{AREA_IMPROVEMENT.from_year}")
    # No user in the services' DATABASE_URL: each connects as its own runtime role.
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": without_user(database_url),
           "STAFET_TOPIC_NAMESPACE": namespace, "STAFET_CREDENTIALS_DIR": str(credentials_dir(Settings())),
           "INSTITUTIONS_FILE": str(registry_file.resolve()), "TICK_INTERVAL_S": "0.5"}
    write_finance_env(work / "finance.env", env)
    per_subject, by_population = per_subject_and_by_population()
    await apply_contracts(bootstrap, namespace, per_subject)
    say("  contracts applied: " + ", ".join(load_contract(p).title for p in per_subject))
    await demo_investment.finance_the_sib(bootstrap, namespace)
    say("  the SIB's investor committed DKK 2,000,000 and paid it out in two tranches")
    services = start_services(env, work / "logs")
    try:
        with progress(show) as bar:
            task = bar.add_task("publishing institution events", total=len(events))
            await publish_records(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, events,
                                  lambda n: bar.advance(task, n))
        await wait_caught_up(bootstrap, namespace, database_url, services, "ingest, verifier", show)
        # Every fact is in: the operator's clock says so on every partition, and what it
        # makes final is decided once, on all of them, in (trigger date, outcome key) order.
        await publish_watermark(bootstrap, namespace, DEMO_WATERMARK)
        say(f"  the operator's clock: watermark {DEMO_WATERMARK} on every transitions partition")
        await wait_caught_up(bootstrap, namespace, database_url, services, "deciding what is final", show)
        # The housing-area contract is applied after the facts (a contract in force from
        # the start would be decided the same way, once, when the watermark passes its
        # review date; applied now, its sweep shows a version arriving on a live store).
        await apply_contracts(bootstrap, namespace, by_population)
        say("  applied after the facts: " + ", ".join(load_contract(p).title for p in by_population))
        await wait_caught_up(bootstrap, namespace, database_url, services, "deciding the area's change", show)
        settled, failed = await settle(bootstrap, namespace, paid_share=paid_share, failed_share=failed_share,
                                       seed=seed)
        say(f"  finance settled {settled:,} instructions as paid and {failed:,} as failed")
        await wait_caught_up(bootstrap, namespace, database_url, services, "settling", show)
        investors = await demo_investment.recorded_positions(database_url)
        portal = await check_portal(env, database_url, work / "logs")
        states = await money_by_state(database_url)
    finally:
        stop_services(services)
    registry = InstitutionRegistry.from_file(registry_file)
    data = await published_from_database(database_url, registry, "A synthetic municipality, 2000-2026", minimum_cell)
    evidence = await did_it_work(database_url, minimum_cell)
    report = work / "report.html"
    report.write_text(render([data], load_assumptions(ASSUMPTIONS), title="Stafet demo: who earned what",
                             minimum_cell=minimum_cell, evidence=evidence,
                             exclusion=load_exclusion_model(EXCLUSION_MODEL),
                             appendix=[investors_section(investors)]),
                      encoding="utf-8")
    return DemoResult(data, len(events), settled, failed, report, evidence, investors, portal, states)


async def did_it_work(database_url: str, minimum_cell: int) -> Evidence:
    """The Sønderborg indicators per year over the demo's children, from the verifier's
    event store, and the example experiment on its synthetic trial."""
    evidence = await live_evidence(database_url, load_indicators(SONDERBORG), minimum_cell)
    # Pure and CPU-bound: off the event loop.
    experiment = await asyncio.to_thread(demo_experiment)
    return replace(evidence, experiments=(experiment,))


SUMMARY_COLUMNS = ("contract", "verified", "rejected", "capped", "pending", "paid (net)", "clawed back", "budget left")


def print_summary(result: DemoResult, minimum_cell: int) -> None:
    """Statistics about the children, so small cells are suppressed as in the report."""
    data = result.data
    typer.echo("\nPer contract:")
    rows = []
    for s in summarise(data):
        cells = contract_cells(s, minimum_cell)
        if s.subjects < minimum_cell:
            # The whole row is about too few subjects: one mark says so.
            rows.append([s.title, cells["verified"], *[""] * (len(SUMMARY_COLUMNS) - 2)])
            continue
        rows.append([s.title, *(cells[column] for column in SUMMARY_COLUMNS[1:])])
    for line in table_lines(SUMMARY_COLUMNS, rows):
        typer.echo(f"  {line}")
    for text in data.withheld.values():
        typer.echo(f"  ({text})")
    if result.states is not None:
        print_money_by_state(result.states, typer.echo, withheld=data.withheld)
    typer.echo("\nTop institutions (net of clawbacks):")
    allowed, hidden = shown_institutions(data, minimum_cell)
    top = [[data.name_of(payee), data.kind_of(payee), money(amount, currency)] for payee, currency, amount in allowed[:10]]
    for line in table_lines(("institution", "kind", "net"), top, left_columns=2)[1:]:
        typer.echo(f"  {line}")
    if hidden:
        typer.echo(f"  ({hidden} institution total(s) about fewer than {minimum_cell} children not shown)")
    if result.evidence is not None:
        for experiment in result.evidence.experiments:
            print_experiment(experiment)
        print_measured_deadweights(data, result.evidence)
        print_live_case(data, result.evidence, minimum_cell)
    if result.investors is not None:
        demo_investment.print_investor(result.investors)
    typer.echo(f"\nreport: {result.report}")
    typer.echo(f"finance: `make up`, then `set -a; . {result.report.parent / 'finance.env'}; set +a` and the README's "
               "\"For finance\" commands pay out what is still owed")
    if result.portal is not None:
        typer.echo(f"portal: {result.portal.address} served the demo's data: {result.portal.institution} logged in "
                   f"(password {result.portal.password}) and saw {result.portal.lines} statement line(s); to open it "
                   f"again: `make up`, then `set -a; . {result.report.parent / 'finance.env'}; set +a; stafet serve "
                   "frontdoor` and http://127.0.0.1:8080/portal/ with that log-in")


def print_measured_deadweights(data: ReportData, evidence: Evidence) -> None:
    """Which assumed deadweights the estimate replaced in the business case, and with what."""
    model = load_exclusion_model(EXCLUSION_MODEL)
    for outcome_id, weight in sorted(measured_deadweights(model, evidence.estimates(), data).items()):
        assumed = model.outcomes[outcome_id].deadweight if outcome_id in model.outcomes else None
        interval = ("no interval: the design cannot reject any effect at 5 %" if weight.low is None
                    or weight.high is None else f"95 % interval {float(weight.low):.0%} to {float(weight.high):.0%}")
        typer.echo(f"  deadweight of {outcome_id}, measured: {float(weight.value):.0%} of the outcomes would have "
                   f"happened anyway ({interval})"
                   + (f"; {float(assumed):.0%} assumed before" if assumed is not None else ""))


def print_live_case(data: ReportData, evidence: Evidence, minimum_cell: int) -> None:
    """Who invests and who harvests: the live ledger's business case over both horizons,
    with the deadweight the experiment measured (the report shows the same section)."""
    model = load_exclusion_model(EXCLUSION_MODEL)
    if (reason := cell(everyone(data), minimum_cell)) is not None:
        typer.echo(f"\n{model.title}: {mark(reason)}")
        return
    measured = measured_deadweights(model, evidence.estimates(), data)
    print_exclusion_header(model, 24, first="")
    print_exclusion_case("this municipality", case_for(data, model, measured), model, 24)


def run_demo(subjects: int, seed: int) -> None:
    stack = default_stack()
    started_stack = not all(stack.status().values())
    clock = time.monotonic()
    least = minimum_cell_setting()
    typer.echo("1/4 starting Kafka and PostgreSQL (local processes) ...")
    stack.up()
    namespace = f"demo{int(time.time())}"
    try:
        database_url = asyncio.run(recreate_database(stack.role_url("owner"), DEMO_DATABASE))
        typer.echo("2/4 running ingest, verifier and ledger over the municipality's events ...")
        result = asyncio.run(demo_pipeline(stack.bootstrap_servers, database_url, namespace,
                                           stack.directory / "demo", subjects=subjects, seed=seed,
                                           minimum_cell=least))
        typer.echo("3/4 summary")
        print_summary(result, least)
    finally:
        typer.echo("4/4 stopping" + (" the stack" if started_stack else " (the stack was already running)"))
        if started_stack:
            stack.down()
    typer.echo(f"demo finished in {time.monotonic() - clock:.0f}s")
