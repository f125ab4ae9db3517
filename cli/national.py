"""`stafet national`: figures compared across the clearing house's tenants, computed inside
it and printed only as suppressed aggregates (docs/tenancy.md, "National figures").

Read as the clearing house's operator role (it sees every tenant's rows; no tenant's role
can read another's subject-level rows), with the tenants of TENANTS_FILE and the
institutions' municipalities of INSTITUTIONS_FILE.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.defaults import shown
from cli.errors import fail
from cli.indicators import MINIMUM_CELL_HELP, SONDERBORG, smallest_cell
from cli.terminal import table_lines
from cli.whatif import EXCLUSION_EXAMPLE

if TYPE_CHECKING:
    from cli.reporting.borders import PublishedHorizon
    from cli.reporting.national import NationalFigures
    from cli.reporting.national_indicators import IndicatorComparison
    from cli.reporting.skandia import ExclusionModel
    from shared.domain.indicators.model import IndicatorSet

app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                  help="Figures compared across tenants, small cells suppressed (needs TENANTS_FILE).")


def print_exclusion(published: tuple[PublishedHorizon, ...] | None, title: str, minimum_cell: int) -> None:
    """The price of exclusion by municipality: a table per horizon."""
    from cli.reporting.borders import HEADINGS, PUBLISHED_COLUMNS

    typer.echo(f"{title}, by municipality: paid by the contract's payer, harvested (the municipal share of the"
               f" savings) where the child lives, year by year; figures about fewer than {minimum_cell}"
               " children suppressed")
    if published is None:
        typer.echo("  not comparable: a contract pays in another currency than the model counts in")
        return
    for horizon in published:
        typer.echo(f"over {horizon.horizon_years} years (discounted)")
        rows = [[row.place, *(row.shown[c] for c in PUBLISHED_COLUMNS)] for row in horizon.rows]
        rows += [[f"{level} (all)", "", horizon.levels[level], "", "", ""] for level in ("region", "state")]
        for line in table_lines(("municipality", *(HEADINGS[c] for c in PUBLISHED_COLUMNS)), rows):
            typer.echo(f"  {line}")


def print_indicators(compared: tuple[IndicatorComparison, ...], minimum_cell: int) -> None:
    """The indicators per tenant: a column per indicator, a row per tenant."""
    if not compared:
        return
    typer.echo(f"Indicators per tenant (children living there on the period's reference day; figures about fewer"
               f" than {minimum_cell} suppressed)")
    tenants = [row.tenant for row in compared[0].rows]
    headers = ("tenant", *(f"{c.indicator_id} {c.period}" for c in compared))
    rows = [[tenant, *(c.rows[n].shown for c in compared)] for n, tenant in enumerate(tenants)]
    for line in table_lines(headers, rows):
        typer.echo(f"  {line}")


def _figures(model: ExclusionModel | None, definitions: IndicatorSet | None, year: int | None,
             minimum_cell: int) -> NationalFigures:
    import asyncio

    from cli.reporting.national import national_figures, tenant_homes
    from shared.domain.institutions import InstitutionRegistry, RegistryError
    from shared.platform.credentials import database_url
    from shared.platform.settings import Settings
    from shared.platform.tenants import TenantsConfigurationError, load_tenancy

    settings = Settings()
    try:
        tenancy = load_tenancy(settings)
        registry = InstitutionRegistry.from_file(settings.institutions_file)
    except (TenantsConfigurationError, RegistryError) as error:
        fail(str(error))
    if tenancy is None or not len(tenancy):
        fail("national figures compare tenants: set TENANTS_FILE (docs/tenancy.md)")
    # The clearing house's read role: the comparison is made inside it (docs/security.md).
    return asyncio.run(national_figures(database_url("operator", settings), registry, tenant_homes(tenancy.all()),
                                        model, definitions, year, minimum_cell))


@app.command("exclusion")
def exclusion(
    exclusion_model: Annotated[Path, typer.Option(
        help="The price of exclusion: groups, costs, split, horizons", show_default=shown(EXCLUSION_EXAMPLE))] =
        EXCLUSION_EXAMPLE,
    minimum_cell: Annotated[int | None, typer.Option(help=MINIMUM_CELL_HELP)] = None,
) -> None:
    """The price of exclusion across borders, from the live ledger and the verifier's
    decisions: per municipality what it paid for outcomes (its contracts' payments and its
    share of the running cost), what it harvests (the municipal share of the savings of
    the children living in it, year by year, whoever paid), how much of that others
    paid for, how much of what it paid for is harvested elsewhere, and the net; the
    region's and the state's shares as national rows. Money adds up to the national case."""
    from cli.reporting.skandia import ExclusionModelError, load_exclusion_model

    least = smallest_cell(minimum_cell)
    try:
        model = load_exclusion_model(exclusion_model)
    except ExclusionModelError as error:
        fail(str(error))
    figures = _figures(model, None, None, least)
    print_exclusion(figures.exclusion, model.title, least)


@app.command("indicators")
def indicators(
    year: Annotated[int, typer.Option(help="The year measured (a school year counts from its autumn)",
                                      min=1900, max=2200)],
    indicators: Annotated[Path, typer.Option(help="Indicator definitions (YAML)", show_default=shown(SONDERBORG))] =
        SONDERBORG,
    minimum_cell: Annotated[int | None, typer.Option(help=MINIMUM_CELL_HELP)] = None,
) -> None:
    """Every indicator for YEAR per tenant municipality, from the verifier's event store:
    the children living in it on the period's reference day (the CPR register's
    residence, else the municipality of their latest registration)."""
    from shared.domain.indicators.loader import IndicatorFileError, load_indicators

    least = smallest_cell(minimum_cell)
    try:
        definitions = load_indicators(indicators)
    except IndicatorFileError as error:
        fail(str(error))
    print_indicators(_figures(None, definitions, year, least).indicators, least)
