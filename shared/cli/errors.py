"""How the CLI reports an expected failure: one line on stderr and exit code 2."""

from __future__ import annotations

from typing import NoReturn

import typer

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)
