"""`stafet contract check|show|apply`: contract files, validated, shown, published."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.errors import EXIT_BAD_INPUT, fail
from shared.domain.contracts.checks import issues_of
from shared.domain.contracts.loader import ContractFileError, field_lines, line_of_field, load_contract
from shared.domain.contracts.model import Contract, FixedPrice, contract_record_key
from shared.domain.currency import format_money

if TYPE_CHECKING:
    from shared.domain.signing import RecordSigner
    from shared.domain.tenancy import Tenancy
    from shared.platform.settings import Settings

app = typer.Typer(rich_markup_mode=None, help="Check, show and apply contract files.", no_args_is_help=True)
RegistryOption = Annotated[Path | None, typer.Option(
    "--registry", help="Institution registry (YAML) the payer, payees and fallback must be in, with the right kind")]


def registry_kinds(path: Path) -> dict[str, str]:
    """Institution id -> kind, from a registry file (a bad file is one `error:` line)."""
    from shared.domain.institutions import InstitutionRegistry, RegistryError

    try:
        return {i.id: i.kind for i in InstitutionRegistry.from_file(path).all()}
    except RegistryError as error:
        fail(f"registry file {str(error).splitlines()[0]}")


def problems_of(loaded: list[tuple[Path, Contract]], kinds: dict[str, str] | None) -> list[tuple[Path, str]]:
    """(file, `file:line: field: reason_code: text`) for every check a loaded contract
    fails, each version checked against the others given with it."""
    contracts = [contract for _, contract in loaded]
    tenancy = _tenancy_or_fail()
    problems = []
    for path, contract in loaded:
        lines = field_lines(path.read_text(encoding="utf-8"), str(path))
        for issue in issues_of(contract, contracts, kinds):
            line = line_of_field(lines, issue.field)
            problems.append((path, f"{path}{f':{line}' if line else ''}: {issue.line()}"))
        if tenancy is not None and tenancy.get(contract.payer) is None:
            # The verifiers refuse it (docs/tenancy.md): say so before it is applied.
            line = line_of_field(lines, "payer")
            problems.append((path, f"{path}{f':{line}' if line else ''}: payer: unknown_payer_tenant:"
                                   f" {contract.payer} is no tenant of this clearing house (TENANTS_FILE)"))
    return problems


def _tenancy_or_fail() -> Tenancy | None:
    from shared.platform.settings import Settings
    from shared.platform.tenants import TenantsConfigurationError, load_tenancy

    try:
        return load_tenancy(Settings())
    except TenantsConfigurationError as error:
        fail(str(error))


@app.command("check")
def contract_check(files: Annotated[list[Path], typer.Argument(help="Contract YAML files")],
                   registry: RegistryOption = None) -> None:
    """Validate contract files (versions of one contract checked together; against the
    institution registry with --registry); print one line per problem and exit 2 if any
    is bad."""
    kinds = registry_kinds(registry) if registry is not None else None
    bad = False
    loaded = []
    for path in files:
        try:
            loaded.append((path, load_contract(path)))
        except ContractFileError as error:
            typer.echo(str(error), err=True)
            bad = True
    problems = problems_of(loaded, kinds)
    for _, problem in problems:
        typer.echo(problem, err=True)
    failed = {path for path, _ in problems}
    for path, contract in loaded:
        if path in failed:
            continue
        measured = f", {len(contract.indicator_outcomes)} indicator outcome(s)" if contract.indicator_outcomes else ""
        typer.echo(f"ok: {path}: {contract.contract_id} v{contract.version}, "
                   f"{len(contract.outcomes)} outcome(s){measured}")
    if bad or problems:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command("show")
def contract_show(path: Path) -> None:
    """Print a contract readably: payer, period, whose children it pays for (by residence or
    enrolment), each outcome's trigger, price and payees."""
    try:
        contract = load_contract(path)
    except ContractFileError as error:
        fail(str(error))
    typer.echo(f"{contract.contract_id} v{contract.version}: {contract.title}")
    typer.echo(f"  payer {contract.payer}, {contract.currency}, "
               f"{contract.period.start} .. {contract.period.end}")
    if contract.fallback_account:
        typer.echo(f"  unallocated money goes to {contract.fallback_account}")
    resident = contract.eligibility.resident_on
    if resident is not None:
        day = "each outcome's trigger date" if resident.at == "trigger" else str(resident.date)
        typer.echo(f"  for the children resident in {resident.municipality} on {day} (the CPR register's moves)")
    enrolled = contract.eligibility.enrolled_on
    if enrolled is not None:
        where = f" in {enrolled.municipality}" if enrolled.municipality else ""
        kinds = f" ({', '.join(enrolled.kinds)})" if enrolled.kinds else ""
        typer.echo(f"  for the children registered at an institution{where}{kinds} on {enrolled.date}")
    for outcome in contract.outcomes:
        typer.echo(f"  outcome {outcome.id}: on {outcome.trigger.event.value}")
        for predicate in outcome.trigger.where:
            typer.echo(f"    where {predicate.field} {predicate.op} {predicate.value}")
        if outcome.sustainment:
            typer.echo(f"    held {outcome.sustainment.days} days, broken by "
                       f"{', '.join(e.value for e in outcome.sustainment.broken_by)}")
        price = outcome.price
        if isinstance(price, FixedPrice):
            typer.echo(f"    price {format_money(price.amount_minor, contract.currency)}")
        else:
            typer.echo(f"    price {price.rate} of {price.of_field}")
        typer.echo(f"    distribution {outcome.distribution.kind}")
    for measured in contract.indicator_outcomes:
        against = f"against {measured.comparison.name} (difference in differences)" if measured.comparison \
            else "against its baseline"
        typer.echo(f"  indicator outcome {measured.id}: {measured.indicator.id} in {measured.area.name}, "
                   f"{measured.baseline.year} to {measured.year}, {against}")
        typer.echo(f"    {format_money(measured.price_per_point_minor, contract.currency)} per percentage point "
                   f"from {measured.floor_points} points, at most {format_money(measured.cap_minor, contract.currency)}"
                   f"; decided on {measured.review_on}; distribution {measured.distribution.kind}")
    caps = contract.caps
    for name, value in (("per subject", caps.per_subject_minor), ("in total", caps.total_minor)):
        if value is not None:
            typer.echo(f"  cap {name}: {format_money(value, contract.currency)}")


@app.command("apply")
def contract_apply(
    files: Annotated[list[Path], typer.Argument(help="Contract YAML files")],
    signing_key: Annotated[Path | None, typer.Option(
        help="An operator's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="Institution registry (YAML) to check against (default INSTITUTIONS_FILE)")] = None,
) -> None:
    """Validate contract files, sign them with an operator's key and publish them to the
    contracts topic, where every verifier picks them up (a verifier refuses a version no
    trusted operator signed). A version once published is never replaced: publish a new
    version (with `effective_from`) to change a contract. Every check of `contract check
    --registry` must pass first."""
    from cli.signed import route, send_signed, signer_or_fail
    from shared.platform.settings import Settings
    from shared.platform.topics import CONTRACTS

    loaded = []
    for path in files:
        try:
            loaded.append((path, load_contract(path)))
        except ContractFileError as error:
            fail(str(error))
    settings = Settings()
    problems = [text for _, text in problems_of(loaded, registry_kinds(registry or settings.institutions_file))]
    for problem in problems[:-1]:
        typer.echo(problem, err=True)
    if problems:
        fail(f"{problems[-1]} (nothing applied)")
    contracts = [contract for _, contract in loaded]

    signer = signer_or_fail(settings, "operator", signing_key)
    tenancy = _refuse_foreign_payers(settings, signer, contracts)
    records = [(contract_record_key(c, signer.principal), c.model_dump_json().encode()) for c in contracts]
    # With tenants every version is its signer's tenant's (refused above otherwise), and goes
    # onto that tenant's own topic, which only its operators' Kafka login may write.
    topic, login = route(CONTRACTS, "operator", contracts[0].payer if tenancy is not None and contracts else None)
    try:
        asyncio.run(send_signed(settings.kafka_bootstrap_servers, "stafet-contract-apply", topic,
                                records, signer, principal=login))
    except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
        fail(f"publishing contracts failed: {error}")
    for contract in contracts:
        typer.echo(f"applied {contract.contract_id} v{contract.version}")


def _refuse_foreign_payers(settings: Settings, signer: RecordSigner, contracts: list[Contract]) -> Tenancy | None:
    """With tenants: the verifiers take a contract version only from a contract signer of
    its payer (docs/tenancy.md), so a version this key may not sign is refused here, before
    anything is published. Whose key it is, is what the verifiers' trusted keys say."""
    from shared.domain.principals import Principal
    from shared.platform.trust import ConfigurationError, trusted_keys

    tenancy = _tenancy_or_fail()
    if tenancy is None:
        return None
    try:
        principal = trusted_keys(settings).principals().get(signer.key_id)
    except ConfigurationError as error:
        fail(str(error))
    who = principal or Principal.parse(signer.principal)
    for contract in contracts:
        refusal = tenancy.contract_refusal(who, contract.payer)
        if refusal is not None:
            fail(f"{contract.contract_id} v{contract.version}: {refusal.reason.value}: {refusal.message} (nothing applied)")
    return tenancy
