"""FastStream wiring shared by the three services.

Each service subscribes in batches with AckPolicy.NACK_ON_ERROR: offsets are committed
only after the handler returned (its effects are durable), and an infrastructure error
(database down) rewinds the batch to be retried instead of skipping it. Bad *input* never
raises: it becomes a dead letter or a rejection, so one poison record cannot stall a
partition.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.specification import AsyncAPI

from shared.settings import Settings

# `make docs` imports the apps with this set: FastStream then reads the handlers'
# annotated models to write each topic's payload schema into the AsyncAPI document.
DOCUMENTING = os.environ.get("STAFET_ASYNCAPI") == "1"


def make_broker(settings: Settings, *, client_id: str) -> KafkaBroker:
    """A broker whose handlers receive bytes as they came (serializer=None).

    Handlers are annotated with the models their topics carry (that is what the AsyncAPI
    document shows), but FastStream does not validate into them: each service validates
    every record itself, so that a bad record becomes a dead letter with a reason code
    instead of a framework error that would stall the partition.
    """
    options: dict[str, Any] = {} if DOCUMENTING else {"serializer": None}
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        graceful_timeout=15.0,
        logger=None,
        **options,
    )


def make_app(broker: KafkaBroker, *, title: str, description: str) -> FastStream:
    return FastStream(broker, specification=AsyncAPI(
        title=title, version="1", description=description))


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[None]])


def batch_subscriber(broker: KafkaBroker, settings: Settings, topic: str, *,
                     group_id: str, title: str | None = None,
                     description: str | None = None) -> Callable[[Handler], Handler]:
    """Subscribe a handler to `topic` in batches, committing only after it returned."""
    subscriber = broker.subscriber(
        topic,
        batch=True,
        group_id=group_id,
        auto_offset_reset="earliest",
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=raw_records,
        title=title,
        description=description,
    )
    return cast("Callable[[Handler], Handler]", subscriber)


def raw_records_of(message: KafkaMessage) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The consumed records themselves (value bytes, topic, partition, offset)."""
    raw = message.raw_message
    return tuple(raw) if isinstance(raw, tuple | list) else (raw,)


async def raw_records(message: KafkaMessage) -> list[bytes]:
    """A decoder that leaves bytes alone: services parse and validate records themselves,
    so that a malformed record becomes a dead letter instead of a framework error."""
    return [record.value or b"" for record in raw_records_of(message)]


def bind_batch_context(records: tuple[ConsumerRecord[Any, Any], ...]) -> None:
    """Bind the batch's topic and offset range per partition to every log line of the
    handler (structlog contextvars), so a line can be traced back to its records."""
    ranges: dict[int, list[int]] = {}
    for record in records:
        span = ranges.setdefault(record.partition, [record.offset, record.offset])
        span[0], span[1] = min(span[0], record.offset), max(span[1], record.offset)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        topic=records[0].topic if records else None,
        offsets={str(partition): f"{low}-{high}" for partition, (low, high) in sorted(ranges.items())})
