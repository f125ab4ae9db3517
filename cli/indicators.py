"""`stafet indicators`: the indicators of examples/indicators/ measured over subjects.

`baselines` generates the synthetic municipality (cli/synthetic/baselines.py) and
prints, for each indicator and scope, the measured share against the published
baseline and whether it lies within the stated tolerance. Cells over too few subjects
print as suppressed, never as numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from cli.defaults import shown
from cli.errors import fail
from shared.domain.indicators.loader import IndicatorFileError, load_indicators
from shared.platform.settings import REPO_ROOT, Settings

app = typer.Typer(rich_markup_mode=None, help="Indicators against their baselines.", no_args_is_help=True)
SONDERBORG = REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml"
MAX_SUBJECTS = 200_000
MINIMUM_CELL_HELP = "Suppress cells over fewer subjects (default: the MINIMUM_CELL setting, 5)"


def minimum_cell_setting() -> int:
    """The one setting every published statistic uses (MINIMUM_CELL, default 5)."""
    try:
        return Settings().minimum_cell
    except ValidationError as error:
        fail(f"MINIMUM_CELL: {error.errors()[0]['msg']}")


def smallest_cell(option: int | None) -> int:
    """The option if given, else the setting."""
    if option is None:
        return minimum_cell_setting()
    if option < 1:
        fail("--minimum-cell must be at least 1")
    return option


@app.command("baselines")
def baselines(
    indicators: Annotated[Path, typer.Option(help="Indicator definitions (YAML)", show_default=shown(SONDERBORG))] = SONDERBORG,
    subjects: Annotated[int | None, typer.Option(help="Synthetic subjects (default: the tuned size)")] = None,
    seed: Annotated[int | None, typer.Option(help="Generator seed (default: the tuned seed)")] = None,
    minimum_cell: Annotated[int | None, typer.Option(help=MINIMUM_CELL_HELP)] = None,
) -> None:
    """The synthetic municipality's indicators for the baseline years, against the baselines."""
    from cli.synthetic import baselines as tuned

    try:
        definitions = load_indicators(indicators)
    except IndicatorFileError as error:
        fail(str(error))
    least = smallest_cell(minimum_cell)
    count = tuned.SUBJECTS if subjects is None else subjects
    if not 1 <= count <= MAX_SUBJECTS:
        fail(f"--subjects must be between 1 and {MAX_SUBJECTS}")
    timelines = tuned.synthetic_timelines(count, tuned.SEED if seed is None else seed)
    typer.echo(f"synthetic municipality: {len(timelines)} subjects born {tuned.BORN_FROM}-{tuned.BORN_TO}, "
               f"{tuned.AREA_SHARE:.0%} in the housing area; tolerance: "
               f"{tuned.TOLERANCE_STANDARD_ERRORS} standard errors at the measured denominator")
    typer.echo(f"{'indicator':<28} {'scope':<13} {'period':<11} {'measured':<34} {'baseline':>9} "
               f"{'tolerance':>10}  match")
    for row in tuned.compare(definitions, timelines, least):
        baseline = f"{row.baseline} %" if row.baseline is not None else "-"
        band = f"±{row.tolerance_points}" if row.tolerance_points is not None else "-"
        verdict = {True: "yes", False: "NO", None: "-"}[row.within]
        typer.echo(f"{row.indicator.id:<28} {row.scope:<13} {row.measured.period:<11} "
                   f"{row.measured.shown():<34} {baseline:>9} {band:>10}  {verdict}")


@app.command("measure")
def measure_live(
    year: Annotated[int, typer.Option(help="The year measured (a school year counts from its autumn)",
                                      min=1900, max=2200)],
    indicators: Annotated[Path, typer.Option(help="Indicator definitions (YAML)", show_default=shown(SONDERBORG))] = SONDERBORG,
    minimum_cell: Annotated[int | None, typer.Option(help=MINIMUM_CELL_HELP)] = None,
) -> None:
    """Every indicator and scope for YEAR, counted from the live verifier's event store
    (DATABASE_URL), small cells suppressed."""
    import asyncio

    from cli.reporting.live_indicators import live_timelines
    from shared.domain.indicators.compute import measure
    from shared.platform.credentials import database_url

    least = smallest_cell(minimum_cell)
    try:
        definitions = load_indicators(indicators)
    except IndicatorFileError as error:
        fail(str(error))
    # Read-only, as operators' commands are (docs/security.md).
    timelines = asyncio.run(live_timelines(database_url("operator", Settings())))
    typer.echo(f"{len(timelines)} subjects in the verifier's event store; cells under {least} suppressed")
    for indicator in definitions.indicators:
        for scope in definitions.scopes:
            row = measure(indicator, timelines, year, scope=scope.name, institutions=scope.institutions,
                          minimum_cell=least)
            baseline = next((f"{b.percent} % ({b.year})" for b in indicator.baselines if b.scope == scope.name), "-")
            typer.echo(f"{indicator.id:<28} {scope.name:<13} {row.period:<11} {row.shown():<34} baseline {baseline}")
