"""The verifier: trusted transitions in; outcomes and payment instructions out.

Run alone: `faststream run services.verifier.app:app` (or `stafet serve verifier`).
"""

from __future__ import annotations

import structlog
from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from services.verifier.batch import process_batch
from services.verifier.relay import relay_outbox
from shared.broker import batch_subscriber, make_broker, raw_records_of
from shared.contracts.evaluation import InstitutionInfo
from shared.contracts.loader import load_contract
from shared.db import create_pool, migrate
from shared.events import Transition
from shared.institutions import InstitutionRegistry
from shared.logging import configure_logging
from shared.settings import Settings
from shared.topics import TRANSITIONS, group_id

settings = Settings()
configure_logging(settings.log_level)
log = structlog.get_logger("verifier")
broker = make_broker(settings, client_id="stafet-verifier")
app = FastStream(broker)
contracts = tuple(load_contract(path) for path in settings.contract_paths())
directory = {i.id: InstitutionInfo(i.kind, i.municipality)
             for i in InstitutionRegistry.from_file(settings.institutions_file).all()}
state: dict[str, object] = {}


async def publish(payload: bytes, topic: str, key: bytes) -> object:
    return await broker.publish(payload, topic, key=key, no_confirm=True)


@app.on_startup
async def start() -> None:
    await migrate(settings.database_url)
    state["pool"] = await create_pool(settings.database_url, max_size=settings.db_pool_max_size)
    log.info("verifier_starting", contracts=[f"{c.contract_id}@v{c.version}" for c in contracts])


@app.after_startup
async def flush_outbox() -> None:
    # Whatever a crashed predecessor committed but did not publish goes out first.
    published = await relay_outbox(state["pool"], publish)  # type: ignore[arg-type]
    log.info("outbox_flushed_at_start", published=published)


@app.on_shutdown
async def stop() -> None:
    pool = state.pop("pool", None)
    if pool is not None:
        await pool.close()  # type: ignore[attr-defined]


@batch_subscriber(broker, settings, TRANSITIONS.name, group_id=group_id("verifier"))
async def on_transitions(records: list[bytes], message: KafkaMessage) -> None:
    transitions = []
    for record in raw_records_of(message):
        try:
            transitions.append(Transition.model_validate_json(record.value or b""))
        except ValidationError as error:
            # Ingest is our own producer: a bad transition is a bug upstream, logged loudly.
            log.error("invalid_transition", topic=record.topic, partition=record.partition,
                      offset=record.offset, error=str(error))
    result = await process_batch(state["pool"], contracts, transitions, directory)  # type: ignore[arg-type]
    published = await relay_outbox(state["pool"], publish)  # type: ignore[arg-type]
    log.info("batch_verified", received=len(transitions), new_events=result.new_events,
             subjects=result.subjects_evaluated, instructions=result.instructions,
             outcomes_changed=result.outcomes_changed, published=published,
             today=str(result.today))
