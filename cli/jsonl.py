"""Reading a JSON Lines file of records a command publishes (settlements, investment
records): every line validated before anything is sent, each problem printed as
`file:line: field: message` with CPR-shaped numbers removed, then one `error:` line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import ValidationError

from cli.errors import fail
from shared.domain.pseudonym import scrub

Record = TypeVar("Record")


def read_records(file: Path, validate: Callable[[bytes], Record], *, limit: int) -> list[Record]:
    """All records of `file`, or a clean exit 2 naming each invalid line; nothing is
    published from a file with any invalid line. More than `limit` lines is a mistake."""
    if not file.is_file():
        fail(f"{file}: no such file")
    records: list[Record] = []
    problems = 0
    for number, line in enumerate(file.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        if number > limit:
            fail(f"{file}: more than {limit} lines")
        try:
            records.append(validate(line))
        except ValidationError as error:
            first = error.errors()[0]
            typer.echo(scrub(f"{file}:{number}: {'.'.join(map(str, first['loc']))}: {first['msg']}"), err=True)
            problems += 1
    if problems:
        fail(f"{problems} invalid line(s); nothing published")
    return records
