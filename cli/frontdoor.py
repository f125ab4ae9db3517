"""`stafet frontdoor token`: a bearer token for an institution's system to call the front door;
`stafet frontdoor user`: an account for the institutions' portal."""

from __future__ import annotations

from pathlib import Path
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


@app.command("user")
def user(
    institution: Annotated[str, typer.Option(help="The institution id (in the registry) the user acts for")],
    name: Annotated[str, typer.Option(help="The user name the person logs in with (at most 64 characters)")] = "",
    role: Annotated[str, typer.Option(help="viewer (reads the statement) or administrator")] = "viewer",
    password_file: Annotated[Path | None, typer.Option(
        help="Read the password from this file (else it is asked for, not echoed)")] = None,
    development: Annotated[bool, typer.Option(
        "--development", help="Print the institution's well-known development log-in instead (never in production)")] = False,
) -> None:
    """A portal account: prints the entry to add to FRONT_DOOR_USERS_FILE (an Argon2id hash, never the password)."""
    from services.frontdoor.portal.accounts import USERNAME_LENGTH_MAX, Role, development_password, hash_password
    from shared.domain.institutions import InstitutionRegistry, RegistryError
    from shared.platform.settings import Settings

    try:
        registry = InstitutionRegistry.from_file(Settings().institutions_file)
    except RegistryError as error:
        fail(str(error))
    if registry.get(institution) is None:
        fail(f"institution {institution!r} is not in the registry")
    if development:  # an institution's development user, or the development operator (--name operator)
        who = name or institution
        typer.echo(f"user: {who}  password: {development_password(who)}  (development mode only)")
        return
    if role not in {r.value for r in Role}:
        fail(f"role {role!r} is not viewer or administrator")
    if not name or len(name) > USERNAME_LENGTH_MAX or any(c.isspace() or c in ":{}[]'\"#" for c in name):
        fail(f"user name {name!r}: 1-{USERNAME_LENGTH_MAX} characters, no spaces or YAML punctuation")
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            fail(f"cannot read {password_file}: {error.strerror}")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < PASSWORD_LENGTH_MIN:
        fail(f"the password is shorter than {PASSWORD_LENGTH_MIN} characters")
    typer.echo("for FRONT_DOOR_USERS_FILE:")
    typer.echo(f'users:\n  {name}: {{institution: {institution}, role: {role}, password: "{hash_password(password)}"}}')


PASSWORD_LENGTH_MIN = 12
