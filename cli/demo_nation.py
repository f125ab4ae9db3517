"""`stafet demo --nation`: a small nation on one clearing house (docs/tenancy.md).

A few municipalities, each a tenant with its own operator and finance keys; children who
move between them; each municipality's contract published by its own operator; the
institutions' facts through ingest, the verifier and the ledger, with TENANTS_FILE; each
tenant's finance office settles its own payments, and one tries another's and is refused.
Prints each tenant's totals and a cross-border line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import typer
import yaml

from cli.demo import EXCLUSION_MODEL, publish_watermark, wait_caught_up
from cli.indicators import SONDERBORG
from cli.national import print_exclusion, print_indicators
from cli.publish import publish_records
from cli.reporting.national import NationalFigures, NationalRow, national_counts, national_figures, suppress, tenant_homes
from cli.reporting.skandia import ExclusionModel, load_exclusion_model
from cli.signed import send_signed
from cli.synthetic.nation import Nation, generate_nation, nation_exclusion_model
from cli.synthetic.population import to_json_line, write_registry
from cli.terminal import progress, table_lines
from services.verifier.rebuild import read_topic
from shared.domain.contracts.model import contract_record_key
from shared.domain.currency import format_money
from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.indicators.loader import load_indicators
from shared.domain.indicators.model import DEFAULT_MINIMUM_CELL
from shared.domain.institutions import InstitutionRegistry
from shared.domain.investment.records import LEDGER_JOURNAL_RECORD
from shared.domain.signing import RecordSigner
from shared.platform.credentials import credentials_dir, without_user
from shared.platform.db import migrate
from shared.platform.kafka import ensure_topics, wait_for_broker
from shared.platform.kafka_access import Kind, grant_namespace, tenant_principal, tenant_principals
from shared.platform.processes import start_services, stop_services
from shared.platform.settings import Settings
from shared.platform.stack import local_password
from shared.platform.topics import CONTRACTS, INSTITUTION_EVENTS, PAYMENTS, SETTLEMENTS, all_topics, in_namespace, tenant_topic

NATION_DATABASE = "stafet_nation"
NATION_WATERMARK = dt.date(2026, 6, 30)
# The indicator the demo compares per tenant: the nation's children (born 2004-2006) are
# 15-17 then, its population; the others need facts the nation has none of (exams,
# absence, completed educations).
NATION_INDICATOR, NATION_INDICATOR_YEAR = "neither-job-nor-education", 2021


@dataclass(frozen=True)
class TenantTotals:
    tenant: str
    children: int  # children it paid for
    payments: int
    owed_minor: int
    paid_minor: int
    cross_border: int  # payments to institutions in another municipality
    cross_border_minor: int


@dataclass(frozen=True)
class CrossBorderLine:
    payer: str
    payee: str
    payee_municipality: str
    amount_minor: int
    contract_id: str
    payment_id: str
    settled_by: str


@dataclass(frozen=True)
class NationResult:
    nation: Nation
    totals: tuple[TenantTotals, ...]
    crossing: CrossBorderLine | None
    foreign_settlement_applied: bool  # another tenant's finance key settled a payment (must be False)
    foreign_attempt: tuple[str, str] | None  # (whose finance key, whose payment)
    national: tuple[NationalRow, ...] = ()  # compared across tenants, small cells suppressed
    minimum_cell: int = DEFAULT_MINIMUM_CELL
    # The price of exclusion across borders and the indicators per tenant, published.
    figures: NationalFigures | None = None
    exclusion_title: str = ""


def write_tenants(path: Path, nation: Nation) -> None:
    path.write_text("# The synthetic nation's tenants (stafet demo --nation)\n" + yaml.safe_dump(
        {"clearing_house_operators": ["dev"],
         "tenants": [t.model_dump(mode="json", exclude_none=True) for t in nation.tenants]},
        allow_unicode=True, sort_keys=False), encoding="utf-8")


async def _instructions(bootstrap: str, namespace: str) -> list[PaymentInstruction]:
    return [r for value in await read_topic(bootstrap, in_namespace(PAYMENTS, namespace).name, principal="finance")
            if isinstance(r := LEDGER_JOURNAL_RECORD.validate_json(value), PaymentInstruction)
            and r.kind == PaymentKind.PAYMENT]


async def settle_per_tenant(bootstrap: str, namespace: str, nation: Nation) -> tuple[str, str] | None:
    """Each tenant's finance office pays its own payments (signed with its own key); first,
    the second tenant's office tries to settle one of the first tenant's payments."""
    instructions = await _instructions(bootstrap, namespace)

    def own_topic(tenant: str) -> tuple[str, str]:
        """A tenant's settlements topic and its finance office's login (docs/tenancy.md)."""
        return (tenant_topic(in_namespace(SETTLEMENTS, namespace), tenant).name,
                tenant_principal(Kind.FINANCE, tenant))

    by_payer: dict[str, list[PaymentInstruction]] = defaultdict(list)
    for instruction in instructions:
        by_payer[instruction.payer].append(instruction)
    attempt = None
    first, second = nation.municipalities[0], nation.municipalities[1]
    if by_payer.get(first):
        victim = by_payer[first][0]
        forged = Settlement(settlement_id=f"foreign-{victim.payment_id[:16]}", payment_id=victim.payment_id,
                            status=SettlementStatus.PAID, settled_on=NATION_WATERMARK, bank_reference="FOREIGN")
        # On its own topic: its login may write no other tenant's.
        topic, login = own_topic(second)
        await send_signed(bootstrap, "stafet-nation-finance", topic,
                          [(victim.payment_id.encode(), forged.model_dump_json().encode())],
                          RecordSigner.development(f"finance:{second}-finance"), principal=login)
        attempt = (f"finance:{second}-finance", victim.payment_id)
    for payer, own in sorted(by_payer.items()):
        answers = [Settlement(settlement_id=f"bank-{i.payment_id[:16]}", payment_id=i.payment_id,
                              status=SettlementStatus.PAID, settled_on=NATION_WATERMARK,
                              bank_reference=f"NETS-{i.payment_id[:10].upper()}") for i in own]
        topic, login = own_topic(payer)
        await send_signed(bootstrap, "stafet-nation-finance", topic,
                          [(a.payment_id.encode(), a.model_dump_json().encode()) for a in answers],
                          RecordSigner.development(f"finance:{payer}-finance"), principal=login)
    return attempt


async def tenant_totals(database_url: str, nation: Nation) -> tuple[tuple[TenantTotals, ...], CrossBorderLine | None]:
    connection = await asyncpg.connect(database_url)
    try:
        payments = await connection.fetch(
            "SELECT p.payment_id, p.payer, p.payee, p.subject, p.amount_minor, p.contract_id,"
            " EXISTS (SELECT 1 FROM ledger_entries s WHERE s.payment_id = p.payment_id AND s.kind = 'settled')"
            " AS paid FROM ledger_entries p WHERE p.kind = 'payment' ORDER BY p.sequence")
    finally:
        await connection.close()
    totals = []
    crossing = None
    for town in nation.municipalities:
        own = [p for p in payments if p["payer"] == town]
        across = [p for p in own if nation.municipality_of(p["payee"]) != town]
        totals.append(TenantTotals(town, len({p["subject"] for p in own}), len(own),
                                   sum(int(p["amount_minor"]) for p in own),
                                   sum(int(p["amount_minor"]) for p in own if p["paid"]), len(across),
                                   sum(int(p["amount_minor"]) for p in across)))
        if crossing is None and across:
            p = across[0]
            crossing = CrossBorderLine(town, p["payee"], nation.municipality_of(p["payee"]), int(p["amount_minor"]),
                                       p["contract_id"], p["payment_id"], f"finance:{town}-finance")
    return tuple(totals), crossing


async def nation_pipeline(bootstrap: str, database_url: str, namespace: str, work: Path, *, municipalities: int,
                          children: int, seed: int, show: bool = True,
                          minimum_cell: int = DEFAULT_MINIMUM_CELL,
                          exclusion: ExclusionModel | None = None) -> NationResult:
    """`exclusion`: the price of exclusion split by municipality (default: the example's
    with the nation's outcome, `nation_exclusion_model`)."""
    def say(message: str) -> None:
        if show:
            typer.echo(message)

    await wait_for_broker(bootstrap)
    await ensure_topics(bootstrap, all_topics(namespace))
    await grant_namespace(bootstrap, namespace)
    await migrate(database_url)
    nation = generate_nation(municipalities, children, seed)
    work.mkdir(parents=True, exist_ok=True)
    registry_file, tenants_file = work / "institutions.yaml", work / "tenants.yaml"
    write_registry(registry_file, nation.institutions)
    write_tenants(tenants_file, nation)
    # Each tenant's own topics and Kafka logins (docs/tenancy.md, "Topics per tenant"), as
    # `stafet dev up` makes them from TENANTS_FILE: its operators publish its contract, its
    # finance office its settlements, each where no other tenant's login may write.
    tenants = [t.id for t in nation.tenants]
    await ensure_topics(bootstrap, all_topics(namespace, tenants))
    await grant_namespace(bootstrap, namespace, principals={}, tenants=tenants, tenant_passwords={
        login: local_password(credentials_dir(Settings()), "kafka", login) for login in tenant_principals(tenants)})
    say(f"  a synthetic nation: Denmark's {municipalities} largest municipalities ({', '.join(nation.names)}), each"
        f" a tenant, in Denmark's proportions (docs/nation.md): {len(nation.institutions):,} institutions,"
        f" {children:,} children born 2004-2006, {len(nation.events):,} events; each municipality pays for the"
        " children registered in it on 2020-09-01")
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": without_user(database_url),
           "STAFET_TOPIC_NAMESPACE": namespace, "STAFET_CREDENTIALS_DIR": str(credentials_dir(Settings())),
           "INSTITUTIONS_FILE": str(registry_file.resolve()), "TENANTS_FILE": str(tenants_file.resolve()),
           "TICK_INTERVAL_S": "0.5"}
    # Each municipality's contract, signed by its own operator.
    for contract in nation.contracts:
        signer = RecordSigner.development(f"operator:{contract.payer}-ops")
        await send_signed(bootstrap, "stafet-nation", tenant_topic(in_namespace(CONTRACTS, namespace), contract.payer).name,
                          [(contract_record_key(contract, signer.principal), contract.model_dump_json().encode())],
                          signer, principal=tenant_principal(Kind.OPERATOR, contract.payer))
    say(f"  {len(nation.contracts)} contracts, each signed by its own municipality's operator, on its own topic")
    services = start_services(env, work / "logs")
    try:
        events = [(n, to_json_line(e)) for n, e in enumerate(nation.events, start=1)]
        with progress(show) as bar:
            task = bar.add_task("publishing institution events", total=len(events))
            await publish_records(bootstrap, in_namespace(INSTITUTION_EVENTS, namespace).name, events,
                                  lambda n: bar.advance(task, n))
        await wait_caught_up(bootstrap, namespace, database_url, services, "ingest, verifier", show)
        await publish_watermark(bootstrap, namespace, NATION_WATERMARK)
        await wait_caught_up(bootstrap, namespace, database_url, services, "deciding what is final", show)
        attempt = await settle_per_tenant(bootstrap, namespace, nation)
        say("  each municipality's finance office settled its own payments")
        await wait_caught_up(bootstrap, namespace, database_url, services, "settling", show, tenants)
    finally:
        stop_services(services)
    totals, crossing = await tenant_totals(database_url, nation)
    applied = False
    if attempt is not None:
        connection = await asyncpg.connect(database_url)
        try:
            applied = bool(await connection.fetchval(
                "SELECT count(*) FROM ledger_entries WHERE settlement_id LIKE 'foreign-%'"))
        finally:
            await connection.close()
    operator = database_url_of_role("operator", database_url)
    counts = await national_counts(operator, {t.id: t.municipality for t in nation.tenants}, nation.municipality_of)
    model = exclusion or nation_exclusion_model(load_exclusion_model(EXCLUSION_MODEL))
    indicators = load_indicators(SONDERBORG)
    figures = await national_figures(
        operator, InstitutionRegistry(nation.institutions), tenant_homes(nation.tenants), model,
        indicators.model_copy(update={"indicators": tuple(i for i in indicators.indicators
                                                           if i.id == NATION_INDICATOR)}),
        NATION_INDICATOR_YEAR, minimum_cell)
    return NationResult(nation, totals, crossing, applied, attempt, tuple(suppress(counts, minimum_cell)),
                        minimum_cell, figures, model.title)


def database_url_of_role(role: str, owner_url: str) -> str:
    """The clearing house's read role on the same database (the national figures are
    read as the operators read, not as the owner)."""
    from urllib.parse import quote, urlsplit

    from shared.platform.credentials import db_role

    parts = urlsplit(owner_url)
    password = (credentials_dir(Settings()) / "postgres" / role).read_text(encoding="utf-8").strip()
    return f"postgresql://{db_role(role)}:{quote(password, safe='')}@{parts.hostname}:{parts.port}{parts.path}"


def _dkk(minor: int) -> str:
    return format_money(minor, "DKK")


def print_nation(result: NationResult) -> None:
    rows = [[t.tenant, f"{t.children:,}", f"{t.payments:,}", _dkk(t.owed_minor), _dkk(t.paid_minor),
             f"{t.cross_border:,}", _dkk(t.cross_border_minor)] for t in result.totals]
    rows.append(["all tenants", f"{sum(t.children for t in result.totals):,}",
                 f"{sum(t.payments for t in result.totals):,}", _dkk(sum(t.owed_minor for t in result.totals)),
                 _dkk(sum(t.paid_minor for t in result.totals)), f"{sum(t.cross_border for t in result.totals):,}",
                 _dkk(sum(t.cross_border_minor for t in result.totals))])
    typer.echo("Per tenant (the payer its contracts name)")
    for line in table_lines(("tenant", "children", "payments", "owed", "paid", "cross-border", "cross-border owed"),
                            rows, align="lrrrrrr"):
        typer.echo(line)
    if result.crossing is not None:
        c = result.crossing
        typer.echo(f"A cross-border line: {c.payer} pays {c.payee} (in {c.payee_municipality})"
                   f" {_dkk(c.amount_minor)} under {c.contract_id}, payment {c.payment_id}; in {c.payee}'s statement"
                   f" with {c.payer} as payer, settled by {c.settled_by}")
    if result.foreign_attempt is not None:
        who, payment = result.foreign_attempt
        verdict = "APPLIED (a defect)" if result.foreign_settlement_applied else \
            "refused (dead letter foreign_tenant_settlement)"
        typer.echo(f"Another tenant's finance key ({who}) settling payment {payment}: {verdict}")
    if result.national:
        typer.echo(f"\nNational figures, compared across tenants inside the clearing house (children; figures"
                   f" about fewer than {result.minimum_cell} suppressed)")
        rows = [[r.tenant, r.shown["children"], r.shown["verified"], r.rate, r.shown["cross_border"]]
                for r in result.national]
        for line in table_lines(("tenant", "children concerned", "outcome verified", "rate",
                                 "paid across a border"), rows, align="lrrrr"):
            typer.echo(line)
    if result.figures is not None:
        typer.echo("")
        print_exclusion(result.figures.exclusion, result.exclusion_title, result.minimum_cell)
        typer.echo("")
        print_indicators(result.figures.indicators, result.minimum_cell)


def run_nation_demo(municipalities: int, children: int, seed: int) -> None:
    from cli.dev import default_stack
    from shared.platform.db import recreate_database

    stack = default_stack()
    started_stack = not all(stack.status().values())
    clock = time.monotonic()
    typer.echo("1/3 starting Kafka and PostgreSQL (local processes) ...")
    stack.up()
    namespace = f"nation{int(time.time())}"
    try:
        database_url = asyncio.run(recreate_database(stack.role_url("owner"), NATION_DATABASE))
        typer.echo("2/3 running ingest, verifier and ledger over the nation's events, one clearing house ...")
        from cli.indicators import minimum_cell_setting

        result = asyncio.run(nation_pipeline(stack.bootstrap_servers, database_url, namespace,
                                             stack.directory / "nation", municipalities=municipalities,
                                             children=children, seed=seed, minimum_cell=minimum_cell_setting()))
        print_nation(result)
    finally:
        typer.echo("3/3 stopping" + (" the stack" if started_stack else " (the stack was already running)"))
        if started_stack:
            stack.down()
    typer.echo(f"demo finished in {time.monotonic() - clock:.0f}s")
