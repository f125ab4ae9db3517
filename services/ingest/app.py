"""The ingest service: institution events in; trusted, pseudonymised transitions out.

Run alone: `faststream run services.ingest.app:app` (or `stafet serve ingest`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from pathlib import Path
from typing import Any

import structlog
from faststream.kafka.annotations import KafkaMessage

from services.ingest.dedup import Forwardable, remember, sort_out
from services.ingest.keys import pseudonym_key, sealing_key
from shared.domain.admission import Reason, SubjectResolver, admit_guarded
from shared.domain.dead_letters import DeadLetter, DeadLetterRecord
from shared.domain.events import InstitutionEvent, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.platform import faults
from shared.platform.broker import RecordSender, batch_subscriber, bind_batch_context, make_app, make_broker, raw_records_of
from shared.platform.db import Database
from shared.platform.dead_letters import write_dead_letter
from shared.platform.health import observe
from shared.platform.logging import configure_logging
from shared.platform.settings import Settings
from shared.platform.topics import DEAD_LETTERS, INSTITUTION_EVENTS, TRANSITIONS, group_id
from shared.platform.trust import TrustedKeys, record_signer, record_time, trusted_keys

settings = Settings()
configure_logging(settings.log_level)
log = structlog.get_logger("ingest")


class ReloadingRegistry:
    """The institution registry and the institutions' keys, reloaded when the file
    changes (checked once a batch)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loaded_mtime = path.stat().st_mtime
        self.registry = InstitutionRegistry.from_file(path)
        self.keys = trusted_keys(settings, self.registry)

    def current(self) -> tuple[InstitutionRegistry, TrustedKeys]:
        mtime = self.path.stat().st_mtime
        if mtime != self.loaded_mtime:
            self.registry = InstitutionRegistry.from_file(self.path)
            self.keys = trusted_keys(settings, self.registry)
            self.loaded_mtime = mtime
            log.info("institution_registry_reloaded", institutions=len(self.registry), keys=len(self.keys))
        return self.registry, self.keys


registry = ReloadingRegistry(settings.institutions_file)
database = Database(settings, role="ingest", max_size=settings.db_pool_max_size)
subjects = SubjectResolver(pseudonym_key(settings), settings.pseudonym_key_id, sealing_key(settings))
# Transitions are signed, so that the verifier can refuse one written onto its topic by
# anyone else.
signer = record_signer(settings, "service:ingest")
broker = make_broker(settings, client_id="stafet-ingest", principal="ingest")
app = make_app(broker, settings, principal="ingest", title="Stafet ingest", description=(
    "Validates institution events, replaces CPR numbers by pseudonyms, checks that the "
    "reporting institution may report the fact, and forwards trusted transitions keyed by "
    "subject pseudonym. Rejected input goes to the dead-letter topic with a reason code."))
# Documents the topic (AsyncAPI); the records themselves go out through `sender` below.
transitions_out = broker.publisher(TRANSITIONS.name, schema=Transition, title="transitions",
                                   description="Trusted, pseudonymised facts keyed by subject pseudonym.")
dead_letters_out = broker.publisher(DEAD_LETTERS.name, schema=DeadLetterRecord, title="dead-letters",
                                    description="Rejected input with a reason code; CPR numbers removed.")


# Transitions go out through the raw producer, a batch at a time (shared/platform/broker.py).
sender = RecordSender(settings, client_id="stafet-ingest-transitions", principal="ingest")


observe(app, database)
app.on_startup(database.open)
sender.attach(app)
# Closed after the broker has stopped (after_shutdown), not before: a batch in flight at
# SIGTERM still has its connection to finish with (as the ledger, dd84c7c).
app.after_shutdown(database.close)


@batch_subscriber(broker, settings, INSTITUTION_EVENTS.name, group_id=group_id("ingest"),
                  title="institution-events",
                  description="What institution systems publish (stafet publish): CPR numbers sealed; "
                              "key: the subject's sealed token, so one subject's events keep their order.")
async def on_institution_events(records: list[InstitutionEvent], message: KafkaMessage) -> None:
    # `records` documents the wire format; the bytes are read from `message` and
    # validated by `admit`, so a bad record becomes a dead letter, never an exception.
    bind_batch_context(raw_records_of(message))
    sends = []
    admitted: list[Forwardable] = []
    origin: dict[tuple[str, str], tuple[bytes, str, int, int]] = {}
    current, keys = registry.current()
    # Wall-clock today (UTC), for the dates no fact can have: born or dated in the future.
    today = dt.datetime.now(dt.UTC).date()
    for record in raw_records_of(message):
        raw = record.value or b""
        # One record's failure, of any kind, is that record's dead letter: the batch goes on.
        outcome = admit_guarded(raw, current, subjects, functools.partial(
            keys.authenticate, record.topic, record.key, raw, record.headers, at=record_time(record.timestamp)),
            today=today)
        if isinstance(outcome, DeadLetter):
            sends.append(await dead_letter(outcome, record.topic, record.partition, record.offset))
        else:
            # Serialised once: the same bytes are hashed for dedup, signed and sent.
            admitted.append(forwardable := Forwardable.of(outcome))
            origin.setdefault(forwardable.key, (raw, record.topic, record.partition, record.offset))
    async with database.pool.acquire() as connection:
        verdict, misfits = await sort_out(connection, admitted)
    for conflict in verdict.conflicting:
        raw, topic, partition, offset = origin[conflict.key]
        sends.append(await dead_letter(DeadLetter.of(
            Reason.CONFLICTING_DUPLICATE, "event_id",
            f"event id {conflict.event_id} was already received from {conflict.transition.reported_by} "
            "with different content (another subject or body)", raw,
            conflict.event_id), topic, partition, offset))
    for misfit in misfits:
        raw, topic, partition, offset = origin[misfit.item.key]
        sends.append(await dead_letter(DeadLetter.of(
            Reason(misfit.reason), "body", misfit.message, raw, misfit.item.event_id), topic, partition, offset))
    trace_context = sender.trace_headers()
    # Signed as batches: one Ed25519 signature per tree of transitions, each with its own
    # proof, so each still verifies on its own (shared/domain/signing.py).
    outgoing = [(TRANSITIONS.name, item.transition.subject.encode(), item.value) for item in verdict.fresh]
    for (topic, key, value), headers in zip(outgoing, signer.batch_headers(outgoing), strict=True):
        sends.append(await sender.send(topic, value, key=key, headers=[*headers, *trace_context]))
    # Wait for every record of the batch to be acknowledged by the broker, then remember
    # the forwarded ids, then (on return) the subscriber commits the consumed offsets:
    # nothing is lost on a crash, and a duplicate is dropped even across restarts.
    await asyncio.gather(*sends)
    faults.reached("ingest.after_publish")
    async with database.pool.acquire() as connection:
        await remember(connection, verdict.fresh)
    faults.reached("ingest.after_commit")
    log.info("batch_admitted", forwarded=len(verdict.fresh), duplicates_dropped=verdict.duplicates,
             rejected=len(sends) - len(verdict.fresh))


async def dead_letter(letter: DeadLetter, topic: str, partition: int, offset: int) -> asyncio.Future[Any]:
    log.warning("dead_letter", reason=letter.reason, field=letter.field, event_id=letter.record_id,
                topic=topic, partition=partition, offset=offset)
    return await write_dead_letter(dead_letters_out, letter, service="ingest", topic=topic, partition=partition,
                                   offset=offset, key=(letter.record_id or "").encode() or None)
