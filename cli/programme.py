"""`stafet programme`: a double-sided PbR's cohort, intake and verdict, replayed from
institution events through the pure engine (no Kafka, no money moves)."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.defaults import shown
from cli.errors import fail
from shared.platform.settings import REPO_ROOT

if TYPE_CHECKING:
    from shared.domain.contracts.model import Contract
    from shared.domain.events import Transition
    from shared.domain.institutions import InstitutionRegistry
    from shared.domain.programmes.double_sided import Programme

app = typer.Typer(rich_markup_mode=None, help="Programmes: a double-sided PbR's intake and verdict.", no_args_is_help=True)
EXAMPLE = REPO_ROOT / "examples" / "programmes" / "double-sided-pbr.yaml"
REGISTRY = REPO_ROOT / "examples" / "institutions.yaml"
CITIZENS = REPO_ROOT / "examples" / "contracts" / "double-sided-pbr-citizens.yaml"
DATE_FORMATS = ["%Y-%m-%d"]


@app.command("generate")
def generate_cohort(
    out: Annotated[Path, typer.Option(help="Events file to write (JSON Lines, CPR numbers in clear)")],
    programme: Annotated[Path, typer.Option(help="Programme YAML", show_default=shown(EXAMPLE))] = EXAMPLE,
    contract: Annotated[Path, typer.Option(
        help="The citizens' contract (its target group and places)", show_default=shown(CITIZENS))] =
        CITIZENS,
    institutions: Annotated[Path, typer.Option(help="Institution registry YAML", show_default=shown(REGISTRY))] = REGISTRY,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same events")] = 1,
    extra_referrals: Annotated[int, typer.Option(help="Referrals beyond each cluster's places",
                                                 min=0, max=1000)] = 1,
) -> None:
    """A synthetic cohort for the programme: referrals (some over capacity, some not on
    an eligible benefit), training, jobs, benefit periods and the companies' growth."""
    from cli.synthetic.double_sided import cohort_events
    from shared.domain.contracts.loader import ContractFileError, load_contract
    from shared.domain.institutions import InstitutionRegistry, RegistryError
    from shared.domain.programmes.double_sided import ProgrammeError, load_programme

    try:
        events = cohort_events(load_programme(programme), load_contract(contract),
                               InstitutionRegistry.from_file(institutions), seed=seed, extra_referrals=extra_referrals)
    except (ProgrammeError, ContractFileError, RegistryError, ValueError) as error:
        fail(str(error).splitlines()[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events), encoding="utf-8")
    typer.echo(f"{len(events)} events in {out}")


@app.command("verdict")
def programme_verdict(
    events: Annotated[Path, typer.Option(help="Institution events, JSON Lines or CSV (CPR numbers in clear)")],
    contract: Annotated[list[Path], typer.Option(help="The programme's contracts (citizens' and companies')")],
    programme: Annotated[Path, typer.Option(help="Programme YAML", show_default=shown(EXAMPLE))] = EXAMPLE,
    institutions: Annotated[Path, typer.Option(help="Institution registry YAML", show_default=shown(REGISTRY))] = REGISTRY,
    on: Annotated[dt.datetime | None, typer.Option(formats=DATE_FORMATS,
                                                   help="Evaluate as of this date (default: the latest event)")] = None,
) -> None:
    """The intake (admitted, over capacity and other refusals, each with its reason code)
    and the verdict per municipality and cluster: payments against the benefit saved."""
    from cli.whatif import admitted_transitions
    from shared.domain.contracts.loader import ContractFileError, load_contract
    from shared.domain.institutions import InstitutionRegistry, RegistryError
    from shared.domain.programmes.double_sided import ProgrammeError, check_contracts, load_programme

    try:
        plan = load_programme(programme)
        contracts = [load_contract(path) for path in contract]
        check_contracts(plan, contracts)
        registry = InstitutionRegistry.from_file(institutions)
    except (ProgrammeError, ContractFileError, RegistryError) as error:
        fail(str(error).splitlines()[0])
    transitions, _ = admitted_transitions(events, registry)
    _print_verdict(plan, contracts, transitions, registry, on.date() if on else None)


def _print_verdict(plan: Programme, contracts: list[Contract], transitions: list[Transition],
                   registry: InstitutionRegistry, on: dt.date | None) -> None:
    from shared.domain.contracts.book import ContractBook
    from shared.domain.contracts.evaluation import InstitutionInfo
    from shared.domain.contracts.timeline import fold
    from shared.domain.currency import format_money
    from shared.domain.decisions import decide_all
    from shared.domain.programmes.double_sided import verdict

    today = on or max(t.occurred_on for t in transitions)
    streams: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        streams[transition.subject].append(transition)
    directory = {i.id: InstitutionInfo(i.kind, i.municipality, i.authority) for i in registry.all()}
    effects = decide_all(ContractBook.of(contracts).in_force(), streams, today, directory)
    timelines = {s: fold(s, stream[0].birth_date, stream) for s, stream in streams.items()}
    decided, clusters = verdict(plan, contracts, timelines,
                                (d for e in effects.values() for d in e.decisions), today)
    admitted = sum(1 for d in decided if d.admitted)
    typer.echo(f"{plan.title or plan.programme_id} as of {today.isoformat()}: {len(decided)} referrals, "
               f"{admitted} admitted")
    for d in decided:
        if not d.admitted:
            typer.echo(f"  referral {d.referral_event_id} on {d.referred_on.isoformat()} to "
                       f"{d.municipality}/{d.cluster}: {d.reason.value if d.reason else ''}")

    def money(amount: int) -> str:
        return format_money(amount, plan.currency)

    typer.echo(f"{'municipality/cluster':<24}{'places':>7}{'admitted':>9}{'trained':>8}{'in job':>7}{'grown':>6}"
               f"{'paid':>18}{'saved':>18}{'net':>18}  verdict")
    for c in clusters:
        verdict_text = ("paid off" if c.paid_off else "not paid off") + \
            ("; the savings can finance it from then on" if c.self_financing else "; the savings cannot finance it")
        typer.echo(f"{c.municipality + '/' + c.cluster:<24}{c.places:>7}{c.admitted:>9}{c.completed_track:>8}"
                   f"{c.citizens_in_ordinary_job:>7}{c.companies_grown:>6}{money(c.payments_minor):>18}"
                   f"{money(c.savings_minor):>18}{money(c.net_minor):>18}  {verdict_text}")
        if c.paid_outside_places_minor:
            typer.echo(f"  paid for referrals without a place: {money(c.paid_outside_places_minor)}")
