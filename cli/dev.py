"""`stafet dev up|down|status`: the local stack of real servers for development and demos."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import typer

from shared.platform.settings import REPO_ROOT
from shared.platform.stack import LocalStack, StackError
from shared.platform.tenants import TenantsConfigurationError

app = typer.Typer(rich_markup_mode=None, help="Start, stop and inspect the local Kafka + PostgreSQL stack.",
                  no_args_is_help=True)


def default_stack() -> LocalStack:
    return LocalStack(
        directory=Path(os.environ.get("STAFET_STACK_DIR", REPO_ROOT / ".stack")),
        kafka_port=int(os.environ.get("STAFET_KAFKA_PORT", "9092")),
        controller_port=int(os.environ.get("STAFET_KAFKA_CONTROLLER_PORT", "9093")),
        postgres_port=int(os.environ.get("STAFET_POSTGRES_PORT", "5432")),
    )


async def prepare(stack: LocalStack) -> tuple[list[str], list[str]]:
    """Topics and ACLs (as the broker's super user), migrations (as the owner role). With
    TENANTS_FILE, each tenant's own topics and Kafka logins too (docs/tenancy.md, "Topics
    per tenant"), their passwords in the stack's credentials folder like every other's."""
    from shared.platform.db import migrate
    from shared.platform.kafka import ensure_topics, wait_for_broker
    from shared.platform.kafka_access import grant_namespace, tenant_principals
    from shared.platform.settings import Settings
    from shared.platform.tenants import load_tenancy
    from shared.platform.topics import NAMESPACE, all_topics

    settings = stack.settings()
    tenancy = load_tenancy(Settings())
    tenants = tenancy.ids() if tenancy is not None else ()
    await wait_for_broker(stack.bootstrap_servers, principal="admin", settings=settings)
    topics = await ensure_topics(stack.bootstrap_servers, all_topics(NAMESPACE, tenants), settings=settings)
    await grant_namespace(stack.bootstrap_servers, NAMESPACE, settings=settings, tenants=tenants,
                          tenant_passwords={name: stack.password("kafka", name) for name in tenant_principals(tenants)})
    return topics, await migrate(stack.role_url("owner"))


@app.command("up")
def up() -> None:
    """Start Kafka and PostgreSQL (if not running), create topics, apply migrations."""
    stack = default_stack()
    started = time.monotonic()
    typer.echo(f"starting the local stack in {stack.directory} ...")
    try:
        stack.up()
        topics, migrations = asyncio.run(prepare(stack))
    except (StackError, TimeoutError, TenantsConfigurationError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created {len(topics)} topic(s), applied {len(migrations)} migration(s)")
    typer.echo(f"KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap_servers}")
    typer.echo(f"DATABASE_URL={stack.database_url}")
    typer.echo(f"STAFET_CREDENTIALS_DIR={stack.credentials_dir}  (a password file per principal and role)")
    typer.echo(f"ready in {time.monotonic() - started:.1f}s (addresses also in {stack.directory / 'env'})")


@app.command("down")
def down() -> None:
    """Stop the local Kafka and PostgreSQL (their data stays for the next `up`)."""
    stack = default_stack()
    stack.down()
    typer.echo("stopped" if not any(stack.status().values()) else f"still up: {stack.status()}")


@app.command("status")
def status() -> None:
    """Say whether each server answers."""
    stack = default_stack()
    for name, answering in stack.status().items():
        address = stack.bootstrap_servers if name == "kafka" else stack.database_url
        typer.echo(f"{name:9} {'up' if answering else 'down':5} {address}")
