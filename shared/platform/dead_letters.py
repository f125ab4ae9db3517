"""The one way a service writes a dead letter.

Every service that refuses a record (ingest, the verifier, the ledger) writes it onto the
dead-letters topic through `write_dead_letter`, which serialises it with
`DeadLetter.to_json`: every text field is redacted there (CPR numbers in every spelling,
`shared/domain/cpr_text.py`), whatever built the letter, so no code path can put an
unredacted record on the topic. The broker lets no other principal write the topic
(`shared/platform/kafka_access.py`); `tests/unit/test_dead_letters_writer.py` checks both.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from shared.domain.dead_letters import DeadLetter


async def write_dead_letter(publisher: Any, letter: DeadLetter, *, service: str, topic: str, partition: int,
                            offset: int, key: bytes | None = None, no_confirm: bool = True) -> asyncio.Future[Any]:
    """Publish `letter` (redacted) as `service`'s dead letter for the record at
    `topic`/`partition`/`offset`. With `no_confirm` (the default) the broker's answer is
    the returned future, for the caller to gather with the batch's other sends; without,
    the send is confirmed before this returns."""
    payload = letter.to_json(service=service, topic=topic, partition=partition, offset=offset)
    return cast("asyncio.Future[Any]", await publisher.publish(payload, key=key, no_confirm=no_confirm))
