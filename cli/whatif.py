"""`stafet generate`, `stafet simulate`, `stafet report`: populations, what-ifs, reports."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.defaults import shown
from cli.errors import fail
from shared.domain.contracts.loader import ContractFileError, load_contract
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import INSTITUTION_EVENTS

if TYPE_CHECKING:
    from cli.reporting.data import ReportData
    from cli.reporting.skandia import ExclusionCase, ExclusionModel
    from shared.domain.events import Transition
    from shared.domain.indicators.experiment import Estimate
    from shared.domain.indicators.model import IndicatorSet
    from shared.domain.institutions import InstitutionRegistry
    from shared.platform.settings import Settings

# Top-level commands: main.py adds them to the `stafet` app itself (not as a group).
INSTITUTIONS_EXAMPLE = REPO_ROOT / "examples" / "institutions.yaml"
ASSUMPTIONS_EXAMPLE = REPO_ROOT / "examples" / "business-case.yaml"
EXCLUSION_EXAMPLE = REPO_ROOT / "examples" / "price-of-exclusion.yaml"
app = typer.Typer(rich_markup_mode=None, )


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
    from cli.synthetic.population import generate, to_json_line, write_registry
    from cli.terminal import progress

    institutions, events = generate(subjects, seed=seed, municipalities=municipalities,
                                    born_from=born_from, born_to=born_to)
    out.parent.mkdir(parents=True, exist_ok=True)
    registry.parent.mkdir(parents=True, exist_ok=True)
    write_registry(registry, institutions)
    count = 0
    with out.open("wb") as handle, progress() as bar:
        task = bar.add_task("generating", total=subjects * 9)
        for event in events:
            handle.write(to_json_line(event) + b"\n")
            count += 1
            if count % 10_000 == 0:
                bar.advance(task, 10_000)
    typer.echo(f"{count:,} events for {subjects:,} subjects in {out}; {len(institutions)} institutions in {registry}")
    if kafka:
        from cli.publish import publish_records, validate_lines
        from shared.platform.settings import Settings

        good, _ = validate_lines(out)
        asyncio.run(publish_records(Settings().kafka_bootstrap_servers, INSTITUTION_EVENTS.name, good))
        typer.echo(f"published {len(good):,} events to {INSTITUTION_EVENTS.name}")


@app.command("simulate")
def simulate(
    events: Annotated[Path, typer.Option(help="Institution events, JSON Lines or CSV (CPR numbers in clear)")],
    contract: Annotated[list[Path], typer.Option(help="A contract variant; give two or more to compare")],
    institutions: Annotated[Path, typer.Option(help="Institution registry YAML", show_default=shown(INSTITUTIONS_EXAMPLE))] =
        INSTITUTIONS_EXAMPLE,
    on: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"],
                                                   help="Evaluate as of this date (default: the latest event)")] = None,
    assumptions: Annotated[Path, typer.Option(help="Business-case assumptions YAML", show_default=shown(ASSUMPTIONS_EXAMPLE))] =
        ASSUMPTIONS_EXAMPLE,
    report: Annotated[Path, typer.Option(help="Where to write the HTML report")] = Path("reports/simulation.html"),
    exclusion_model: Annotated[Path, typer.Option(
            help="The price of exclusion: groups, costs, split, horizons", show_default=shown(EXCLUSION_EXAMPLE))] =
        EXCLUSION_EXAMPLE,
    effect: Annotated[list[str] | None, typer.Option(
        help="A measured effect replacing an outcome's assumed deadweight: OUTCOME=POINTS:LOW:HIGH "
             "(percentage points, as `stafet experiment evaluate` prints them); repeatable")] = None,
    by_municipality: Annotated[bool, typer.Option(
        "--by-municipality", help="Also split each variant's business case by municipality: what the payer "
                                  "paid, and where the savings are harvested (where each child lives, year by "
                                  "year: residence facts, else its latest registration), small cells "
                                  "suppressed")] = False,
) -> None:
    """What-if: replay the same events through the pure engine under each contract
    variant (no Kafka, no money moves) and compare cost, outcomes, payments per kind of
    institution, estimated savings and net; then the business case as the Skandia model
    makes it (4 and 10 years, NPV, payback, who invests and who harvests), with
    --by-municipality also by municipality; write the HTML report."""
    from cli.indicators import minimum_cell_setting
    from cli.reporting.business_case import load_assumptions
    from cli.reporting.html import comparison_rows, render
    from cli.reporting.page import ReportContext
    from cli.reporting.simulate import simulate as replay
    from cli.reporting.skandia import ExclusionModelError, load_exclusion_model
    from shared.domain.institutions import InstitutionRegistry, RegistryError

    try:
        variants = [load_contract(path) for path in contract]
        registry = InstitutionRegistry.from_file(institutions)
        as_of = on.date() if on else None
        case = load_assumptions(assumptions)
        exclusion = load_exclusion_model(exclusion_model)
        effects = parse_effects(effect or [])
    except (ContractFileError, RegistryError, ExclusionModelError) as error:
        fail(str(error))
    except ValueError as error:
        fail(f"bad option: {error}")
    transitions, rejected = admitted_transitions(events, registry)
    typer.echo(f"{len(transitions):,} events admitted, {rejected:,} rejected")
    from cli.terminal import progress

    with progress() as bar:
        task = bar.add_task("replaying the variants", total=len(variants))
        results = []
        for variant in variants:
            results.append(replay(variant.title or variant.contract_id, [variant], transitions, registry, as_of))
            bar.advance(task)
    least = minimum_cell_setting()
    headers, rows = comparison_rows(results, ReportContext(case, least))
    # Every amount carries its currency; different currencies are never added, and
    # savings (estimated in the assumptions' currency) are netted only against costs
    # in that currency. Figures about fewer than MINIMUM_CELL subjects are suppressed.
    widths = [max(len(str(row[n])) for row in [headers, *rows]) + 2 for n in range(len(headers))]
    for row in [headers, *rows]:
        typer.echo(f"{row[0]:<{widths[0]}}" + "".join(f"{c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True)))
    print_exclusion_cases(results, exclusion, effects, widths[0], least)
    borders = print_border_cases(results, exclusion, effects, transitions, registry, least) if by_municipality \
        else []
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(results, case, title="Stafet what-if: contract variants compared", minimum_cell=least,
                             exclusion=exclusion, effects=as_estimates(effects), appendix=borders),
                      encoding="utf-8")
    typer.echo(f"report: {report.resolve()}")


def parse_effects(texts: list[str]) -> dict[str, tuple[float, float, float]]:
    """`OUTCOME=POINTS:LOW:HIGH` -> {outcome: (points, low, high)}; ValueError names the bad one."""
    effects = {}
    for text in texts:
        outcome, _, numbers = text.partition("=")
        parts = numbers.split(":")
        try:
            points, low, high = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"--effect {text!r}: expected OUTCOME=POINTS:LOW:HIGH, "
                             "e.g. exam-passed=9.8:6.1:13.5") from None
        if not outcome or not low <= points <= high:
            raise ValueError(f"--effect {text!r}: needs an outcome and LOW <= POINTS <= HIGH")
        effects[outcome] = (points, low, high)
    return effects


def as_estimates(effects: dict[str, tuple[float, float, float]]) -> dict[str, Estimate]:
    """`--effect` values as the estimates an experiment would have given."""
    from shared.domain.indicators.experiment import Estimate

    return {outcome_id: Estimate(outcome_id, points, low, high, 0.0, 0, 0, 0)
            for outcome_id, (points, low, high) in effects.items()}


def admitted_transitions(events: Path, registry: InstitutionRegistry) -> tuple[list[Transition], int]:
    """The events of a file as ingest would admit them, for a replay off the live system
    (`stafet simulate`, `stafet programme verdict`): invalid lines are named and skipped,
    and a file from which nothing is admitted is an error. Returns the transitions and
    how many lines were rejected (invalid or refused at admission)."""
    from cli.publish import validate_lines
    from cli.reporting.simulate import transitions_of

    if not events.is_file():
        fail(f"{events}: no such file")
    good, problems = validate_lines(events)
    for problem in problems:
        typer.echo(f"{events}:{problem.line}: {problem.message} (skipped)", err=True)
    transitions, rejected = transitions_of((raw for _, raw in good), registry)
    if not transitions:
        fail(f"{events}: no event passed admission ({rejected} rejected); is the registry right?")
    return transitions, rejected + len(problems)


def print_exclusion_header(model: ExclusionModel, width: int, first: str = "variant") -> None:
    """The business case table's title and column heads: horizon, cost, savings, NPV,
    payback, and the net of each level."""
    from cli.reporting.skandia import LEVELS

    typer.echo(f"\n{model.title}: {float(model.discount_rate):.1%} a year, the {model.payer_level} pays; "
               "net per level = its savings less what it pays")
    typer.echo(f"{first:<{width}}{'years':>6}{'cost':>20}{'savings':>20}{'NPV':>20}  {'payback':<26}"
               + "".join(f"{level:>20}" for level in LEVELS))


def print_exclusion_cases(results: list[ReportData], model: ExclusionModel,
                          effects: dict[str, tuple[float, float, float]], width: int, least: int) -> None:
    """The business case per variant and horizon: cost, savings, NPV, payback, and the
    net of municipality, region and state. An effect is turned into a deadweight
    against the variant's own outcome rate (verified among the triggers judged)."""
    from cli.reporting.data import everyone
    from cli.reporting.disclosure import cell, mark
    from cli.reporting.evidence import measured_by_outcome
    from cli.reporting.skandia import case_for

    print_exclusion_header(model, width)
    for result in results:
        if (reason := cell(everyone(result), least)) is not None:
            typer.echo(f"{result.title:<{width}}  {mark(reason)}: about {everyone(result)} subject(s)")
            continue
        case = case_for(result, model, measured_by_outcome(result, as_estimates(effects)))
        print_exclusion_case(result.title, case, model, width)


def print_border_cases(results: list[ReportData], model: ExclusionModel,
                       effects: dict[str, tuple[float, float, float]], transitions: list[Transition],
                       registry: InstitutionRegistry, least: int) -> list[str]:
    """Each variant's business case by municipality (cli/reporting/borders.py): who paid,
    who harvests, under the same small-cell rule as the national figures; printed, and
    returned as the report's sections."""
    from cli.national import print_exclusion
    from cli.reporting.borders import border_case, publish
    from cli.reporting.evidence import measured_by_outcome
    from cli.reporting.national_html import exclusion_section
    from shared.domain.homes import home_on
    from shared.domain.indicators.feed import timelines_from_transitions

    municipality_of = {i.id: i.municipality for i in registry.all() if i.municipality}
    timelines = {t.subject: t for t in timelines_from_transitions(transitions)}

    def home_of(subject: str, day: dt.date) -> str | None:
        found = timelines.get(subject)
        return home_on(found, day, municipality_of) if found is not None else None

    sections = []
    for result in results:
        case = border_case(result, model, home_of, measured=measured_by_outcome(result, as_estimates(effects)))
        published = publish(case, least) if case is not None else None
        typer.echo("")
        print_exclusion(published, f"{result.title}: {model.title}", least)
        sections.append(exclusion_section(published, f"{result.title}: {model.title}", least))
    return sections


def print_exclusion_case(title: str, case: ExclusionCase | None, model: ExclusionModel, width: int) -> None:
    """One variant's rows under `print_exclusion_header`: a row per horizon. Shared with
    `make demo`, which prints the live ledger's case."""
    from cli.reporting.skandia import LEVELS
    from cli.reporting.skandia_html import deadweight_text, payback_text
    from shared.domain.currency import format_money

    if case is None:
        typer.echo(f"{title:<{width}}  not comparable: pays in another currency than {model.currency}")
        return
    for horizon in case.horizons:
        net = horizon.net_by_level(case.payer_level)
        verdict = "" if horizon.pays_off else " (does not pay off)"
        typer.echo(f"{title:<{width}}{horizon.horizon_years:>6}"
                   f"{format_money(horizon.cost_minor, case.currency):>20}"
                   f"{format_money(horizon.savings_minor, case.currency):>20}"
                   f"{format_money(horizon.npv_minor, case.currency):>20}  "
                   f"{payback_text(case, horizon.payback_year):<26}"
                   + "".join(f"{format_money(net[level], case.currency):>20}" for level in LEVELS) + verdict)
    typer.echo(f"{'':<{width}}deadweight: {deadweight_text(case)}")


def _national_sections(url: str, settings: Settings, exclusion: ExclusionModel, definitions: IndicatorSet | None,
                       least: int) -> list[str]:
    """With TENANTS_FILE: the price of exclusion by municipality (cli/reporting/borders.py)
    and, with indicator definitions, the indicators per tenant; read through `url` (the
    clearing house's role: every tenant; a tenant's: its own)."""
    from cli.reporting.national import national_figures, tenant_homes
    from cli.reporting.national_html import exclusion_section, indicators_section
    from shared.domain.institutions import InstitutionRegistry
    from shared.platform.tenants import TenantsConfigurationError, load_tenancy

    try:
        tenancy = load_tenancy(settings)
    except TenantsConfigurationError as error:
        fail(str(error))
    if tenancy is None or not len(tenancy):
        return []
    figures = asyncio.run(national_figures(url, InstitutionRegistry.from_file(settings.institutions_file),
                                           tenant_homes(tenancy.all()), exclusion, definitions, None, least))
    return [exclusion_section(figures.exclusion, exclusion.title, least),
            indicators_section(figures.indicators, least)]


@app.command("report")
def live_report(
    out: Annotated[Path, typer.Option(help="Where to write the HTML report")] = Path("reports/stafet.html"),
    assumptions: Annotated[Path, typer.Option(help="Business-case assumptions YAML", show_default=shown(ASSUMPTIONS_EXAMPLE))] =
        ASSUMPTIONS_EXAMPLE,
    exclusion_model: Annotated[Path, typer.Option(
            help="The price of exclusion: groups, costs, split, horizons", show_default=shown(EXCLUSION_EXAMPLE))] =
        EXCLUSION_EXAMPLE,
    indicators: Annotated[Path | None, typer.Option(
        help="Add the indicators per year against their baselines, counted from the event store")] = None,
    experiment: Annotated[Path | None, typer.Option(help="Add this experiment's estimate (needs --assignment)")]
        = None,
    assignment: Annotated[Path | None, typer.Option(help="The experiment's assignment records")] = None,
) -> None:
    """Render the HTML report from the live ledger and the verifier's decisions; with
    --indicators (and --experiment), whether it worked; with TENANTS_FILE, the price of
    exclusion by municipality too (who paid, who harvests: docs/tenancy.md), and with
    --indicators the indicators per tenant."""
    from cli.experiment import SONDERBORG, read_assignment, read_experiment
    from cli.indicators import minimum_cell_setting
    from cli.reporting.business_case import load_assumptions
    from cli.reporting.html import render
    from cli.reporting.investors import investors_section
    from cli.reporting.live import live_evidence, published_from_database
    from cli.reporting.skandia import ExclusionModelError, load_exclusion_model
    from cli.terminal import progress
    from services.ledger.investor_queries import investor_positions
    from shared.domain.indicators.experiment import EvaluationError
    from shared.domain.indicators.loader import IndicatorFileError, load_indicators
    from shared.domain.institutions import InstitutionRegistry
    from shared.platform.credentials import database_url
    from shared.platform.settings import Settings

    settings = Settings()
    least = minimum_cell_setting()
    if (experiment is None) != (assignment is None):
        fail("--experiment and --assignment go together")
    try:
        exclusion = load_exclusion_model(exclusion_model)
        definitions = load_indicators(indicators or SONDERBORG) if indicators or experiment else None
    except (ExclusionModelError, IndicatorFileError) as error:
        fail(str(error))
    planned = [(read_experiment(experiment), read_assignment(assignment))] if experiment and assignment else []
    url = database_url("operator", settings)
    with progress() as bar:
        bar.add_task("reading the ledger and the verifier's decisions", total=None)
        data = asyncio.run(published_from_database(url, InstitutionRegistry.from_file(settings.institutions_file),
                                                   "Outcome contracts: the live ledger", least))
        positions = asyncio.run(investor_positions(url))
        borders = _national_sections(url, settings, exclusion, definitions, least)
        try:
            evidence = asyncio.run(live_evidence(url, definitions, least, planned)) if definitions else None
        except EvaluationError as error:
            fail(str(error).splitlines()[0])
    with progress() as bar:
        bar.add_task("rendering the report", total=None)
        page = render([data], load_assumptions(assumptions), title="Stafet report", minimum_cell=least,
                      evidence=evidence, exclusion=exclusion,
                      appendix=[investors_section(positions), *borders])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    typer.echo(f"report: {out.resolve()}")
