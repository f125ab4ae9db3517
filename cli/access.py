"""`stafet access`: Kafka users and ACLs for a deployment, run with the broker's super
user's credentials (KAFKA_USERNAME/KAFKA_PASSWORD_FILE of `admin`; in development the
local stack's). What each kind of principal may do is `shared/platform/kafka_access.py`'s and
docs/security.md's table."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import fail
from shared.platform.kafka_access import Kind
from shared.platform.topics import NAMESPACE

app = typer.Typer(rich_markup_mode=None, help="Kafka users and ACLs (as the broker's super user).", no_args_is_help=True)

KINDS = ", ".join(kind.value for kind in Kind)
PASSWORD_MIN_LENGTH = 16


@app.command("user")
def user(
    name: Annotated[str, typer.Argument(help="The principal's user name, e.g. institution-aarhus-schools")],
    kind: Annotated[str, typer.Option(help=f"What it is: {KINDS}")],
    password_file: Annotated[Path, typer.Option(help="File holding its password (the same file the "
                                                     "client reads as KAFKA_PASSWORD_FILE)")],
    namespace: Annotated[str, typer.Option(help="The installation's topic namespace")] = NAMESPACE,
    tenant: Annotated[str | None, typer.Option(
        help="A tenant's own login (operator or finance; docs/tenancy.md, \"Topics per tenant\"): it may write "
             "that tenant's topics only")] = None,
) -> None:
    """Create a SCRAM-SHA-512 user (or set its password) and grant what its kind needs."""
    from shared.platform.kafka_access import TENANT_KINDS, Grant, KafkaAccess, namespace_acls, tenant_grants
    from shared.platform.settings import Settings

    try:
        principal_kind = Kind(kind)
    except ValueError:
        fail(f"--kind {kind!r} is not one of {KINDS}")
    acls: list[tuple[str, Grant]]
    if tenant is None:
        acls = namespace_acls(namespace, {name: principal_kind})
    elif principal_kind not in TENANT_KINDS:
        fail(f"--tenant: a tenant's own login is an operator's or a finance office's, not {kind}")
    else:
        _require_tenant(tenant)
        acls = [(name, grant) for grant in tenant_grants(principal_kind, namespace, tenant)]
    try:
        password = password_file.read_text(encoding="utf-8").strip()
    except OSError as error:
        fail(f"cannot read {password_file}: {error.strerror}")
    if len(password) < PASSWORD_MIN_LENGTH:
        fail(f"the password in {password_file} is shorter than {PASSWORD_MIN_LENGTH} characters")

    async def apply() -> int:
        async with KafkaAccess(Settings().kafka_bootstrap_servers) as access:
            await access.upsert_users({name: password})
            return await access.grant(acls)

    try:
        granted = asyncio.run(apply())
    except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
        fail(f"creating user {name} failed ({type(error).__name__}: {error})")
    whose = f", tenant {tenant}" if tenant else ""
    typer.echo(f"user {name} ({principal_kind.value}{whose}): password set, {granted} ACL(s) in namespace {namespace}")


def _require_tenant(tenant: str) -> None:
    """A tenant's login only for a tenant the clearing house serves (TENANTS_FILE): a typo
    would otherwise grant a prefix no tenant's topics carry, and the real tenant's systems
    would be refused with no hint why."""
    from shared.platform.settings import Settings
    from shared.platform.tenants import TenantsConfigurationError, load_tenancy

    try:
        tenancy = load_tenancy(Settings())
    except TenantsConfigurationError as error:
        fail(str(error))
    if tenancy is None:
        fail("--tenant needs TENANTS_FILE (the tenants the clearing house serves)")
    if tenancy.get(tenant) is None:
        fail(f"--tenant {tenant!r} is not a tenant of TENANTS_FILE (its tenants: {', '.join(tenancy.ids())})")
