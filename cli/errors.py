"""How the CLI reports an expected failure: one line on stderr and exit code 2.

Three kinds reach the user this way, each saying what failed: a problem the command found
in its input (`fail`, and usage errors), a local file that cannot be read or written
(`file_problem`: `file PATH: No such file or directory`), and a server that does not
answer or refuses us (`unreachable_server`), which can surface from deep inside aiokafka
or asyncpg in any command; `cli/main.py:main` turns the last two into one line instead of
a traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import traceback
from typing import NoReturn

import typer

EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def confirm_or_fail(question: str, yes: bool) -> None:
    """Before anything destructive: `--yes`, or a yes at the prompt on a terminal. Without
    a terminal (a script, CI) and without `--yes`, nothing happens and we say why."""
    if yes:
        return
    import sys

    if not sys.stdin.isatty():
        fail(f"{question} Refusing without a terminal to ask: pass --yes")
    if not typer.confirm(question, default=False):
        fail("cancelled; nothing changed")


def _server_errors() -> tuple[type[BaseException], ...]:
    import asyncpg
    from aiokafka.errors import KafkaError

    return (
        OSError,  # connection refused, unknown host, network unreachable
        TimeoutError,
        KafkaError,
        asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
        asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # 28xxx: bad role or password
        asyncpg.exceptions.InvalidCatalogNameError,  # the database does not exist
        asyncpg.exceptions.CannotConnectNowError,  # starting up or shutting down
        asyncpg.exceptions.TooManyConnectionsError,
    )


def file_problem(error: BaseException) -> str | None:
    """One line naming the local file that failed us, or None if `error` is not about a
    file. An OSError that names a file is about that file (a socket's names none), so a
    payout written to a missing directory is not reported as a server that is down."""
    if not isinstance(error, OSError) or isinstance(error, ConnectionError) or error.filename is None:
        return None
    detail = error.strerror or type(error).__name__
    return f"file {error.filename}: {detail}"


def unreachable_server(error: BaseException) -> str | None:
    """One line naming the server that failed us, or None if `error` is not about a server."""
    if not isinstance(error, _server_errors()):
        return None
    modules = {frame.filename for frame in traceback.extract_tb(error.__traceback__)}
    if type(error).__module__.startswith("asyncpg") or any("/asyncpg/" in m for m in modules):
        server = "PostgreSQL (DATABASE_URL)"
    elif type(error).__module__.startswith("aiokafka") or any("/aiokafka/" in m for m in modules):
        server = "Kafka (KAFKA_BOOTSTRAP_SERVERS)"
    else:
        server = "a server"
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"cannot reach {server}: {detail}; is the stack up (`make up`, `stafet dev status`)?"
