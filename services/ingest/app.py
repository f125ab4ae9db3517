"""The ingest service: institution events in; trusted, pseudonymised transitions out.

Run alone: `faststream run services.ingest.app:app` (or `stafet serve ingest`).
"""

from __future__ import annotations

import asyncio

import structlog
from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage

from services.ingest.admission import admit
from shared.broker import batch_subscriber, make_broker, raw_records_of
from shared.dead_letters import DeadLetter
from shared.institutions import InstitutionRegistry
from shared.logging import configure_logging
from shared.pseudonym import DEVELOPMENT_KEY
from shared.settings import Settings
from shared.topics import DEAD_LETTERS, INSTITUTION_EVENTS, TRANSITIONS, group_id

settings = Settings()
configure_logging(settings.log_level)
log = structlog.get_logger("ingest")


class ConfigurationError(RuntimeError):
    pass


def pseudonym_key(settings: Settings) -> bytes:
    if settings.pseudonym_key_file is not None:
        return settings.pseudonym_key_file.read_bytes().strip()
    if settings.pseudonym_key:
        return settings.pseudonym_key.encode()
    if settings.stafet_env == "production":
        raise ConfigurationError("no pseudonymisation key: set PSEUDONYM_KEY_FILE or PSEUDONYM_KEY")
    return DEVELOPMENT_KEY


registry = InstitutionRegistry.from_file(settings.institutions_file)
key = pseudonym_key(settings)
broker = make_broker(settings, client_id="stafet-ingest")
app = FastStream(broker)


@batch_subscriber(broker, settings, INSTITUTION_EVENTS.name, group_id=group_id("ingest"))
async def on_institution_events(records: list[bytes], message: KafkaMessage) -> None:
    sends = []
    accepted = rejected = 0
    for record in raw_records_of(message):
        outcome = admit(record.value or b"", registry, key, settings.pseudonym_key_id)
        if isinstance(outcome, DeadLetter):
            rejected += 1
            log.warning("dead_letter", reason=outcome.reason, field=outcome.field,
                        event_id=outcome.record_id, topic=record.topic,
                        partition=record.partition, offset=record.offset)
            payload = outcome.to_json(service="ingest", topic=record.topic,
                                      partition=record.partition, offset=record.offset)
            sends.append(await broker.publish(payload, DEAD_LETTERS.name,
                                              key=(outcome.record_id or "").encode() or None,
                                              no_confirm=True))
        else:
            accepted += 1
            sends.append(await broker.publish(outcome.model_dump_json().encode(), TRANSITIONS.name,
                                              key=outcome.subject.encode(), no_confirm=True))
    # Wait for every record of the batch to be acknowledged by the broker before the
    # subscriber commits the consumed offsets: nothing is lost on a crash.
    await asyncio.gather(*sends)
    log.info("batch_admitted", accepted=accepted, rejected=rejected)
