"""The ledger projector: payment instructions in; double-entry rows in PostgreSQL.

Run alone: `faststream run services.ledger.app:app` (or `stafet serve ledger`).
"""

from __future__ import annotations

import structlog
from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from services.ledger.postings import entry_for
from services.ledger.store import append_entries
from shared.broker import batch_subscriber, make_broker, raw_records_of
from shared.db import create_pool, migrate
from shared.events import PaymentInstruction
from shared.logging import configure_logging
from shared.settings import Settings
from shared.topics import PAYMENTS, group_id

settings = Settings()
configure_logging(settings.log_level)
log = structlog.get_logger("ledger")
broker = make_broker(settings, client_id="stafet-ledger")
app = FastStream(broker)
state: dict[str, object] = {}


@app.on_startup
async def start() -> None:
    await migrate(settings.database_url)
    state["pool"] = await create_pool(settings.database_url, max_size=settings.db_pool_max_size)


@app.on_shutdown
async def stop() -> None:
    pool = state.pop("pool", None)
    if pool is not None:
        await pool.close()  # type: ignore[attr-defined]


@batch_subscriber(broker, settings, PAYMENTS.name, group_id=group_id("ledger"))
async def on_payments(records: list[bytes], message: KafkaMessage) -> None:
    entries = []
    for record in raw_records_of(message):
        try:
            instruction = PaymentInstruction.model_validate_json(record.value or b"")
        except ValidationError as error:
            # The verifier is our own producer: a malformed instruction is a bug upstream.
            # Log it loudly and keep the ledger moving; the record stays on the topic.
            log.error("invalid_payment_instruction", topic=record.topic,
                      partition=record.partition, offset=record.offset, error=str(error))
            continue
        entries.append(entry_for(instruction))
    written = await append_entries(state["pool"], entries)  # type: ignore[arg-type]
    log.info("batch_projected", received=len(entries), written=written)
