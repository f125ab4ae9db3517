"""`stafet ledger ...`: balances and checks over the ledger in PostgreSQL."""

from __future__ import annotations

import asyncio

import typer

app = typer.Typer(help="Ledger balances and checks.", no_args_is_help=True)


@app.command("balances")
def balances() -> None:
    """Print every account's balance (credits minus debits) in major units."""
    from services.ledger.queries import account_balances
    from shared.settings import Settings

    rows = asyncio.run(account_balances(Settings().database_url))
    if not rows:
        typer.echo("the ledger is empty")
        return
    width = max(len(r.account) for r in rows)
    for row in rows:
        typer.echo(f"{row.account:<{width}}  {row.balance_minor / 100:>14,.2f} {row.currency}")
