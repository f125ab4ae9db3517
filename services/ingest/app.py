"""The ingest service: institution events in; trusted, pseudonymised transitions out.

Run alone: `faststream run services.ingest.app:app` (or `stafet serve ingest`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from faststream.kafka.annotations import KafkaMessage

from services.ingest.admission import admit
from shared.broker import batch_subscriber, make_app, make_broker, raw_records_of
from shared.dead_letters import DeadLetter, DeadLetterRecord
from shared.events import InstitutionEvent, Transition
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


class ReloadingRegistry:
    """The institution registry, reloaded when its file changes (checked once a batch)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loaded_mtime = path.stat().st_mtime
        self.registry = InstitutionRegistry.from_file(path)

    def current(self) -> InstitutionRegistry:
        mtime = self.path.stat().st_mtime
        if mtime != self.loaded_mtime:
            self.registry = InstitutionRegistry.from_file(self.path)
            self.loaded_mtime = mtime
            log.info("institution_registry_reloaded", institutions=len(self.registry))
        return self.registry


registry = ReloadingRegistry(settings.institutions_file)
key = pseudonym_key(settings)
broker = make_broker(settings, client_id="stafet-ingest")
app = make_app(broker, title="Stafet ingest", description=(
    "Validates institution events, replaces CPR numbers by pseudonyms, checks that the "
    "reporting institution may report the fact, and forwards trusted transitions keyed by "
    "subject pseudonym. Rejected input goes to the dead-letter topic with a reason code."))
transitions_out = broker.publisher(TRANSITIONS.name, schema=Transition, title="transitions",
                                   description="Trusted, pseudonymised facts keyed by subject pseudonym.")
dead_letters_out = broker.publisher(DEAD_LETTERS.name, schema=DeadLetterRecord, title="dead-letters",
                                    description="Rejected input with a reason code; CPR numbers removed.")


@batch_subscriber(broker, settings, INSTITUTION_EVENTS.name, group_id=group_id("ingest"),
                  title="institution-events",
                  description="What institution systems publish (stafet publish). Key: the event id.")
async def on_institution_events(records: list[InstitutionEvent], message: KafkaMessage) -> None:
    # `records` documents the wire format; the bytes are read from `message` and
    # validated by `admit`, so a bad record becomes a dead letter, never an exception.
    sends = []
    accepted = rejected = 0
    current = registry.current()
    for record in raw_records_of(message):
        outcome = admit(record.value or b"", current, key, settings.pseudonym_key_id)
        if isinstance(outcome, DeadLetter):
            rejected += 1
            log.warning("dead_letter", reason=outcome.reason, field=outcome.field,
                        event_id=outcome.record_id, topic=record.topic,
                        partition=record.partition, offset=record.offset)
            payload = outcome.to_json(service="ingest", topic=record.topic,
                                      partition=record.partition, offset=record.offset)
            sends.append(await dead_letters_out.publish(payload, key=(outcome.record_id or "").encode() or None,
                                                        no_confirm=True))
        else:
            accepted += 1
            sends.append(await transitions_out.publish(outcome.model_dump_json().encode(),
                                                       key=outcome.subject.encode(), no_confirm=True))
    # Wait for every record of the batch to be acknowledged by the broker before the
    # subscriber commits the consumed offsets: nothing is lost on a crash.
    await asyncio.gather(*sends)
    log.info("batch_admitted", accepted=accepted, rejected=rejected)
