"""`stafet settle FILE`: how a finance system answers payment instructions.

A JSON Lines file of settlements (`shared/events.py: Settlement`: paid with a bank
reference, or failed with a reason), validated, signed with the finance system's key and
published to the settlements topic keyed by payment id. The ledger refuses a settlement
that no trusted finance key signed (`unauthenticated_settlement`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from shared.cli.errors import fail
from shared.cli.signed import send_signed, signer_or_fail
from shared.events import Settlement
from shared.pseudonym import scrub
from shared.settings import Settings
from shared.topics import SETTLEMENTS


def settle(
    file: Annotated[Path, typer.Argument(help="JSON Lines file of settlements")],
    signing_key: Annotated[Path | None, typer.Option(
        help="The finance system's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
) -> None:
    """Validate, sign and publish finance's answers (paid / failed) to payment instructions."""
    if not file.is_file():
        fail(f"{file}: no such file")
    settlements: list[Settlement] = []
    problems = 0
    for number, line in enumerate(file.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            settlements.append(Settlement.model_validate_json(line))
        except ValidationError as error:
            first = error.errors()[0]
            typer.echo(scrub(f"{file}:{number}: {'.'.join(map(str, first['loc']))}: {first['msg']}"), err=True)
            problems += 1
    if problems:
        fail(f"{problems} invalid line(s); nothing published")
    settings = Settings()
    signer = signer_or_fail(settings, "finance", signing_key)
    records = [(s.payment_id.encode(), s.model_dump_json().encode()) for s in settlements]
    try:
        asyncio.run(send_signed(settings.kafka_bootstrap_servers, "stafet-settle", SETTLEMENTS.name,
                                records, signer, principal="finance"))
    except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
        fail(f"publishing settlements failed: {error}")
    typer.echo(f"published {len(settlements)} settlement(s), signed by key {signer.key_id}")
