"""`stafet audit`: recompute every payment instruction from the signed facts and compare
with the ledger (docs/security.md, "Recompute from the facts").

The ledger believes every instruction `service:verifier` signed, so a compromised
verifier process, key and all, could instruct any payment and the ledger, its checkpoints
and every payout would agree. The audit does not ask the verifier: it replays the signed
transitions (facts from `service:ingest`, clock ticks from operators) against the signed
contract versions (the contracts topic, operator-signed; `--contract` files only when given,
as configuration) through the verifier's own core (`services/verifier/rebuild.py`: the same
`process_batch`), in a scratch database of its own, and compares the instructions that
yields with the ledger's payments and clawbacks:

- an instruction in the ledger that the facts do not yield (or yield with another payee,
  payer or amount) is named: money nobody's facts earned;
- an instruction the facts yield that the ledger lacks is named: money owed and not booked.

Either makes the command exit 1. It reads the broker as the `auditor` principal (read-only:
transitions, contracts, the journal, checkpoints), the ledger as the operator role
(read-only), and writes only its scratch database, so it runs apart from the live services,
e.g. as a nightly job. An indicator outcome's instructions (a population's, decided on
measurements) are compared by their net per payee, as `stafet verifier rebuild --compare`
does. Run it on a quiet pipeline: an instruction still on its way to the ledger reads as
missing.

The scratch database is the audit's alone: it must own it, and it revokes PUBLIC's right
to connect before it replays. The migrations it applies there grant the services' runtime
roles their statements, and a compromised verifier's database login must not write the
rows the replay reads back as "what the facts yield".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from cli.errors import fail
from shared.platform.credentials import database_url
from shared.platform.settings import Settings

AUDITOR = "auditor"

# What must agree between the ledger and the facts: who pays whom how much, for what.
Key = tuple[str, str, str, str, int, str, str | None]


def _money_key(instruction: Any) -> Key:
    return (instruction.kind.value, instruction.payer, instruction.payee, instruction.payee_role,
            instruction.amount_minor, instruction.currency, instruction.reverses_payment_id)


@dataclass(frozen=True)
class AuditReport:
    in_ledger: int
    from_facts: int
    not_from_facts: tuple[str, ...]  # lines naming each instruction the facts do not yield
    missing: tuple[str, ...]  # lines naming each instruction the ledger lacks

    @property
    def ok(self) -> bool:
        return not (self.not_from_facts or self.missing)


def compare(ledger: list[Any], facts: list[Any]) -> AuditReport:
    """Pure: the ledger's instructions against those the facts yield."""
    from shared.domain.contracts.indicator_outcomes import POPULATION_PREFIX

    def split(instructions: list[Any]) -> tuple[dict[str, Any], dict[tuple[str, str, str, str], int]]:
        single = {i.payment_id: i for i in instructions if not i.subject.startswith(POPULATION_PREFIX)}
        nets: dict[tuple[str, str, str, str], int] = {}
        for i in instructions:
            if i.subject.startswith(POPULATION_PREFIX):
                key = (i.contract_id, i.outcome_id, i.payee, i.payee_role)
                nets[key] = nets.get(key, 0) + (i.amount_minor if i.kind.value == "payment" else -i.amount_minor)
        return single, {k: v for k, v in nets.items() if v}

    booked, booked_nets = split(ledger)
    owed, owed_nets = split(facts)
    not_from_facts = [f"{pid}: {_said(i)}: {'yielded otherwise: ' + _said(owed[pid]) if pid in owed else 'no fact yields it'}"
                      for pid, i in sorted(booked.items()) if pid not in owed or _money_key(owed[pid]) != _money_key(i)]
    missing = [f"{pid}: {_said(i)}" for pid, i in sorted(owed.items()) if pid not in booked]
    for key in sorted(set(booked_nets) | set(owed_nets)):
        if booked_nets.get(key, 0) != owed_nets.get(key, 0):
            line = f"net {'/'.join(key)}: ledger {booked_nets.get(key, 0)}, facts {owed_nets.get(key, 0)} (minor units)"
            (not_from_facts if booked_nets.get(key, 0) > owed_nets.get(key, 0) else missing).append(line)
    return AuditReport(len(ledger), len(facts), tuple(not_from_facts), tuple(missing))


def _said(i: Any) -> str:
    return (f"{i.kind.value} {i.amount_minor} {i.currency} (minor units) {i.payer} -> {i.payee},"
            f" {i.contract_id}@v{i.contract_version} {i.outcome_id}")


async def _ledger_instructions(url: str) -> list[Any]:
    import asyncpg

    from services.ledger.audit import instruction_from_row

    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT * FROM ledger_entries WHERE kind IN ('payment', 'clawback')"
                                      " ORDER BY sequence")
    finally:
        await connection.close()
    return [instruction_from_row(r) for r in rows]


async def _signed_contracts(bootstrap: str, topics: Sequence[str], trust: Any, configured: Sequence[Any] = (),
                            kinds: Mapping[str, str] | None = None) -> tuple[list[Any], int]:
    """The contract versions the verifier believes: `configured` (its CONTRACT_FILES,
    which it learns first) and those on `topics` (the shared one and each tenant's),
    taken in the order the broker stamped them (LogAppendTime; within one topic that is
    its order), then by topic and offset: the same order on every run. A version is taken
    as the verifier takes it (services/verifier/app.py): its signer and payer
    (`admit_contract`, against the payers of the versions taken before it, the files'
    too), then the checks it refuses a version for (`VERIFIER_REFUSES`: payees this
    registry, `kinds`, does not know, a second version on the same day, an empty window).
    Returns every version taken, the files' first, and how many records were refused."""
    from services.verifier.authenticity import Refused, admit_contract
    from services.verifier.rebuild import read_in_broker_order
    from shared.domain.contracts.checks import VERIFIER_REFUSES, issues_of
    from shared.platform.settings import Settings
    from shared.platform.tenants import load_tenancy

    tenancy = load_tenancy(Settings())  # docs/tenancy.md: as the verifier admits them
    contracts: list[Any] = list(configured)
    refused = 0
    for record in await read_in_broker_order(bootstrap, topics, AUDITOR):
        admitted = admit_contract(record, trust, tenancy, lambda contract_id: next(
            (c.payer for c in contracts if c.contract_id == contract_id), None))
        if isinstance(admitted, Refused) or (admitted not in contracts and any(
                issue.code in VERIFIER_REFUSES for issue in issues_of(admitted, contracts, kinds))):
            refused += 1
        elif admitted not in contracts:
            contracts.append(admitted)
    return contracts, refused


class ScratchRefused(Exception):
    """The scratch database is not the audit's own: the message says why."""


async def keep_to_itself(scratch_url: str) -> None:
    """Only the scratch database's owner (and superusers) may connect to it from now on."""
    import asyncpg

    connection = await asyncpg.connect(scratch_url)
    try:
        name, owner, user = await connection.fetchrow(
            "SELECT datname, pg_get_userbyid(datdba), current_user FROM pg_database"
            " WHERE datname = current_database()")
        if owner != user:
            raise ScratchRefused(f"--scratch-url: database {name} is owned by {owner}, not by {user}: the audit "
                                 "needs a database of its own, which only it may connect to")
        quoted = '"' + name.replace('"', '""') + '"'
        await connection.execute(f"REVOKE CONNECT, TEMPORARY ON DATABASE {quoted} FROM PUBLIC")
    finally:
        await connection.close()


async def recompute(scratch_url: str, settings: Settings, topics: tuple[str, Sequence[str]], contract_files: list[Path],
                    trust: Any) -> tuple[list[Any], int]:
    """The instructions the signed facts yield, replayed in `scratch_url` through the
    verifier's own core; and how many contract records no operator signed."""
    import asyncpg

    from services.verifier import store
    from services.verifier.rebuild import rebuild_verifier
    from shared.domain.contracts.evaluation import InstitutionInfo
    from shared.domain.contracts.loader import load_contract
    from shared.domain.events import PaymentInstruction
    from shared.domain.institutions import InstitutionRegistry
    from shared.platform.db import migrate

    transitions_topic, contracts_topics = topics
    registry = InstitutionRegistry.from_file(settings.institutions_file)
    contracts, refused = await _signed_contracts(settings.kafka_bootstrap_servers, contracts_topics, trust,
                                                 [load_contract(path) for path in contract_files],
                                                 {i.id: i.kind for i in registry.all()})
    await keep_to_itself(scratch_url)
    await migrate(scratch_url)
    connection = await asyncpg.connect(scratch_url)
    try:
        for contract in contracts:
            await store.save_contract(connection, contract)
    finally:
        await connection.close()
    directory = {i.id: InstitutionInfo(i.kind, i.municipality, i.authority)
                 for i in registry.all()}
    await rebuild_verifier(scratch_url, settings.kafka_bootstrap_servers, transitions_topic, directory, trust=trust,
                           principal=AUDITOR)
    connection = await asyncpg.connect(scratch_url)
    try:
        rows = await connection.fetch("SELECT instruction FROM verifier_payments")
    finally:
        await connection.close()
    return [PaymentInstruction.model_validate_json(r["instruction"]) for r in rows], refused


def _scratch(settings: Settings, given: str | None, password_file: Path | None) -> str:
    """The audit's own database: given (its password in the URL or in `password_file`), or
    (development) `<ledger database>_audit`, made afresh on the same server by the owner role."""
    from shared.platform.credentials import CredentialsError, with_password_file
    from shared.platform.db import recreate_database

    if given is not None:
        if password_file is None:
            return given
        try:
            return with_password_file(given, password_file)
        except CredentialsError as error:
            fail(f"--scratch-password-file: {error}")
    if password_file is not None:
        fail("--scratch-password-file: give --scratch-url too (the user it names logs in with that password)")
    if settings.stafet_env == "production":
        fail("give --scratch-url: a database the audit owns (it is emptied and replayed into)")
    owner = database_url("owner", settings)
    name = f"{urlsplit(owner).path.lstrip('/') or 'stafet'}_audit"
    return asyncio.run(recreate_database(owner, name))


def audit(
    scratch_url: Annotated[str | None, typer.Option(
        help="A database the audit owns and empties (in development: the ledger database's name plus _audit)")] = None,
    scratch_password_file: Annotated[Path | None, typer.Option(
        help="The password of the user --scratch-url names, from a file (a mounted Secret), not on the command line")
    ] = None,
    contract: Annotated[list[Path] | None, typer.Option(
        help="Also a contract file, trusted as configuration (the verifier's CONTRACT_FILES)")] = None,
    transitions_topic: Annotated[str | None, typer.Option(help="The transitions (default: this installation's)")]
        = None,
    contracts_topic: Annotated[list[str] | None, typer.Option(
        help="A topic of contract versions, repeatable (default: this installation's shared one and, with "
             "TENANTS_FILE, each tenant's)")] = None,
) -> None:
    """Recompute every payment instruction from the signed facts and contract versions with
    the verifier's own core, apart from the live verifier, and compare with the ledger;
    exit 1 naming each instruction the facts do not yield and each the ledger lacks."""
    from shared.platform.tenants import TenantsConfigurationError, load_tenancy
    from shared.platform.topics import CONTRACTS, TRANSITIONS, topic_names
    from shared.platform.trust import ConfigurationError, trusted_keys

    settings = Settings()
    try:
        trust = trusted_keys(settings)
    except ConfigurationError as error:
        fail(str(error))
    scratch = _scratch(settings, scratch_url, scratch_password_file)
    try:
        tenancy = load_tenancy(settings)
    except TenantsConfigurationError as error:
        fail(str(error))
    topics = (transitions_topic or TRANSITIONS.name,
              contracts_topic or topic_names(CONTRACTS, tenancy.ids() if tenancy is not None else ()))
    try:
        facts, refused = asyncio.run(recompute(scratch, settings, topics, list(contract or []), trust))
    except ScratchRefused as error:
        fail(str(error))
    ledger = asyncio.run(_ledger_instructions(database_url("operator", settings)))
    report = compare(ledger, facts)
    for line in report.not_from_facts:
        typer.echo(f"audit FAILED: in the ledger, not from the facts: {line}", err=True)
    for line in report.missing:
        typer.echo(f"audit FAILED: from the facts, missing from the ledger: {line}", err=True)
    summary = (f"{report.in_ledger} instruction(s) in the ledger, {report.from_facts} from the signed facts"
               + (f"; {refused} contract record(s) no operator signed were ignored" if refused else ""))
    if not report.ok:
        typer.echo(summary, err=True)
        raise typer.Exit(1)
    typer.echo(f"audit ok: {summary}; each one yielded by the facts")
