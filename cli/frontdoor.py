"""`stafet frontdoor token`: a bearer token for an institution's system to call the front door."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.errors import fail

app = typer.Typer(rich_markup_mode=None, help="The institutions' HTTP front door (run it: uvicorn services.frontdoor.app:app).",
                  no_args_is_help=True)


@app.command("token")
def token(
    institution: Annotated[str, typer.Option(help="The institution id (in the registry) the token is for")],
    development: Annotated[bool, typer.Option(
        "--development", help="Print the well-known development token instead (never in production)")] = False,
) -> None:
    """Make a token: give the token to the institution, add its hash to FRONT_DOOR_TOKENS_FILE."""
    from services.frontdoor.auth import development_token, new_token, token_hash
    from shared.domain.institutions import InstitutionRegistry, RegistryError
    from shared.platform.settings import Settings

    try:
        registry = InstitutionRegistry.from_file(Settings().institutions_file)
    except RegistryError as error:
        fail(str(error))
    if registry.get(institution) is None:
        fail(f"institution {institution!r} is not in the registry")
    made = development_token(institution) if development else new_token()
    typer.echo(f"token (give it to {institution}'s system, store it nowhere else): {made}")
    typer.echo("for FRONT_DOOR_TOKENS_FILE:")
    typer.echo(f"tokens:\n  {institution}: [{token_hash(made)}]")
