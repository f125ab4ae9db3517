"""`stafet verifier rebuild`: replay the transitions topic into an empty verifier store."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from shared.platform.credentials import database_url
from shared.platform.settings import Settings

app = typer.Typer(rich_markup_mode=None, help="Verifier maintenance.", no_args_is_help=True)


@app.command("rebuild")
def rebuild(
    check: Annotated[bool, typer.Option("--compare/--no-compare",
                                        help="Compare with what the live verifier published")] = True,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask: empty the store and replay")] = False,
) -> None:
    """Empty the verifier's store (contracts kept) and replay the transitions topic; stop
    the verifier service first. Publishes nothing: a rebuild never moves money again."""
    from cli.errors import confirm_or_fail
    from cli.rebuild_guard import refuse_unsafe_rebuild
    from cli.terminal import progress
    from services.verifier.rebuild import compare, rebuild_verifier
    from shared.domain.contracts.evaluation import InstitutionInfo
    from shared.domain.institutions import InstitutionRegistry
    from shared.platform.topics import OUTCOMES, PAYMENTS, TRANSITIONS, group_id

    confirm_or_fail("This empties the verifier's store (contracts kept) and replays the transitions topic.", yes)
    settings = Settings()
    refuse_unsafe_rebuild(settings, topic=TRANSITIONS.name, groups=(group_id("verifier"),), principal="verifier")
    directory = {i.id: InstitutionInfo(i.kind, i.municipality, i.authority)
                 for i in InstitutionRegistry.from_file(settings.institutions_file).all()}
    with progress() as bar:
        task = bar.add_task("replaying transitions", total=None)
        # A maintenance job: it empties the verifier's tables, which only the owner may do.
        report = asyncio.run(rebuild_verifier(database_url("owner", settings), settings.kafka_bootstrap_servers,
                                              TRANSITIONS.name, directory, lambda n: bar.advance(task, n)))
    rate = report.records / report.seconds if report.seconds else 0.0
    typer.echo(f"rebuilt: {report.records} records, {report.new_events} events, "
               f"{report.instructions} instructions in {report.seconds:.1f}s ({rate:,.0f} records/s)")
    if not check:
        return
    result = asyncio.run(compare(database_url("owner", settings), settings.kafka_bootstrap_servers,
                                 PAYMENTS.name, OUTCOMES.name))
    typer.echo(f"outstanding payments: published {result.outstanding_published}, rebuilt {result.outstanding_rebuilt}")
    if result.same:
        typer.echo("the rebuild reproduces the published outcomes and payment ids")
        return
    typer.echo(f"DIFFERENT: {len(result.payments_only_published)} payment(s) only published, "
               f"{len(result.payments_only_rebuilt)} only rebuilt, {len(result.outcomes_differing)} outcome(s) differ",
               err=True)
    raise typer.Exit(1)
