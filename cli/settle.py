"""`stafet settle FILE`: how a finance system answers payment instructions.

A JSON Lines file of settlements (`shared/domain/events.py: Settlement`: paid with a bank
reference, or failed with a reason), validated, signed with the finance system's key and
published to the settlements topic keyed by payment id. The ledger refuses a settlement
that no trusted finance key signed (`unauthenticated_settlement`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import fail
from cli.jsonl import read_records
from cli.signed import route, send_signed, signer_or_fail, signers_tenant
from shared.domain.events import Settlement
from shared.platform.settings import Settings
from shared.platform.topics import SETTLEMENTS

# A bank's statement of answers is large but bounded; a bigger file is a mistake.
SETTLEMENTS_MAX = 1_000_000


def settle(
    file: Annotated[Path, typer.Argument(help="JSON Lines file of settlements")],
    signing_key: Annotated[Path | None, typer.Option(
        help="The finance system's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
) -> None:
    """Validate, sign and publish finance's answers (paid / failed) to payment instructions."""
    settlements = read_records(file, Settlement.model_validate_json, limit=SETTLEMENTS_MAX)
    settings = Settings()
    signer = signer_or_fail(settings, "finance", signing_key)
    records = [(s.payment_id.encode(), s.model_dump_json().encode()) for s in settlements]
    # A tenant's finance office writes its own settlements topic (docs/tenancy.md).
    topic, login = route(SETTLEMENTS, "finance", signers_tenant(settings, signer))
    try:
        asyncio.run(send_signed(settings.kafka_bootstrap_servers, "stafet-settle", topic,
                                records, signer, principal=login))
    except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
        fail(f"publishing settlements failed: {error}")
    typer.echo(f"published {len(settlements)} settlement(s), signed by key {signer.key_id}")
