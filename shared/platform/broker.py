"""FastStream wiring shared by the three services.

Each service subscribes in batches with AckPolicy.NACK_ON_ERROR: offsets are committed
only after the handler returned (its effects are durable), and an infrastructure error
(database down) rewinds the batch to be retried instead of skipping it. Bad *input* never
raises: it becomes a dead letter or a rejection, so one poison record cannot stall a
partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.specification import AsyncAPI
from opentelemetry import propagate, trace

from shared.platform import metrics, tracing
from shared.platform.credentials import faststream_security
from shared.platform.health import serve_health
from shared.platform.kafka import make_producer, producer_options
from shared.platform.retry import UNREACHABLE, backoff_s, until_reachable, wait_for_kafka
from shared.platform.settings import Settings

_log = structlog.get_logger("broker")

# `make docs` imports the apps with this set: FastStream then reads the handlers'
# annotated models to write each topic's payload schema into the AsyncAPI document.
DOCUMENTING = os.environ.get("STAFET_ASYNCAPI") == "1"


def make_broker(settings: Settings, *, client_id: str, principal: str) -> KafkaBroker:
    """A broker whose handlers receive bytes as they came (serializer=None), connecting
    as `principal` (SASL/SCRAM-SHA-512; a service without credentials refuses to start).

    Handlers are annotated with the models their topics carry (that is what the AsyncAPI
    document shows), but FastStream does not validate into them: each service validates
    every record itself, so that a bad record becomes a dead letter with a reason code
    instead of a framework error that would stall the partition.

    Its middlewares carry trace context in the records' headers (shared/platform/tracing.py) and
    count what goes through for /metrics (shared/platform/metrics.py).
    """
    options: dict[str, Any] = {} if DOCUMENTING else {
        "serializer": None, "security": faststream_security(principal, settings)}
    service = client_id.removeprefix("stafet-")
    provider = tracing.tracer_provider(service)
    trace.set_tracer_provider(provider)
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        **producer_options(),  # type: ignore[arg-type]
        graceful_timeout=15.0,
        logger=None,
        middlewares=(tracing.telemetry_middleware(provider), *metrics.middlewares(service)),
        **options,
    )


def make_app(broker: KafkaBroker, settings: Settings, *, principal: str, title: str, description: str) -> FastStream:
    """The service's app. Its first start-up hook waits for the broker (with backoff and a
    log line per attempt), so a service started during a Kafka outage starts when the
    outage ends instead of exiting (`shared/platform/retry.py`). Before even that, its HTTP port
    for health and metrics opens (`shared/platform/health.py`), so a waiting pod is alive and
    says it is not ready."""
    app = FastStream(broker, specification=AsyncAPI(
        title=title, version="1", description=description))
    serve_health(app, broker, settings, principal)

    async def broker_reachable() -> None:
        await wait_for_kafka(settings.kafka_bootstrap_servers, principal=principal)

    app.on_startup(broker_reachable)
    return app


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[None]])


def batch_subscriber(broker: KafkaBroker, settings: Settings, topic: str | Sequence[str], *,
                     group_id: str, title: str | None = None,
                     description: str | None = None) -> Callable[[Handler], Handler]:
    """Subscribe a handler to `topic` (or to several topics, in one consumer group) in
    batches, committing only after it returned.

    A handler that raises (the database or the broker went away mid-batch) has its batch
    rewound and consumed again; `paused_on_failure` logs the error and pauses with a
    growing backoff first, so an outage is a few log lines, not a hot loop."""
    subscriber = broker.subscriber(
        *([topic] if isinstance(topic, str) else topic),
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

    def register(handler: Handler) -> Handler:
        return cast("Handler", subscriber(paused_on_failure(handler)))

    return register


def paused_on_failure(handler: Handler) -> Handler:
    """Wrap a batch handler: on an exception, log it, pause (`backoff_s` of the number of
    consecutive failures), then re-raise so the subscriber rewinds and retries the batch.

    Nothing is swallowed: the batch is never committed past a failure. FastStream reads
    the handler's signature through `functools.wraps` (`__wrapped__`), so the AsyncAPI
    document and argument injection are unchanged."""
    failures = 0
    name = getattr(handler, "__name__", "handler")

    @functools.wraps(handler)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        nonlocal failures
        try:
            await handler(*args, **kwargs)
        except Exception as error:
            failures += 1
            pause = backoff_s(failures)
            expected = isinstance(error, UNREACHABLE)
            (_log.warning if expected else _log.error)(
                "batch_failed_will_retry", handler=name, failures=failures, retry_in_s=pause,
                error=f"{type(error).__name__}: {error}", exc_info=not expected)
            await asyncio.sleep(pause)
            raise
        failures = 0

    return cast("Handler", guarded)


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


class RecordSender:
    """Publishes a handler's many records with the raw aiokafka producer.

    FastStream's `publish` runs its middlewares per record (a span, two Prometheus
    counters, the command objects), which cost more than the send itself; a handler that
    forwards a whole batch sends through this instead. What the middlewares gave is kept:
    each record carries the trace context of the batch being handled (`traceparent`, the
    consume span, so a payment still leads back to the records behind it) and is counted
    in `stafet_records_produced_total`. Same guarantees as the broker's producer:
    idempotent, acks=all, and the caller awaits every returned future before it lets its
    offsets be committed. Started with the app (after the broker is reachable), stopped
    after the broker (so a batch still being handled can finish)."""

    def __init__(self, settings: Settings, *, client_id: str, principal: str) -> None:
        self._settings, self._client_id, self._principal = settings, client_id, principal
        self._service = client_id.removeprefix("stafet-")
        self._producer: Any = None
        self._produced: dict[str, Any] = {}

    def attach(self, app: FastStream) -> RecordSender:
        app.on_startup(self.start)
        app.after_shutdown(self.stop)
        return self

    async def start(self) -> None:
        """Start the producer, waiting out a broker that is away or refuses this principal
        until its ACLs are in force (as the front door's producer, ffb7e02): a start hook
        that raises exits the service."""
        await until_reachable(f"broker ({self._client_id}'s producer)", self._start_producer)

    async def _start_producer(self) -> None:
        producer = make_producer(self._settings.kafka_bootstrap_servers, client_id=self._client_id,
                                 principal=self._principal, settings=self._settings)
        try:
            await producer.start()
        except KafkaError:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def trace_headers(self) -> list[tuple[str, bytes]]:
        """The current span's context as Kafka headers (once per batch, not per record)."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return [(name, value.encode()) for name, value in carrier.items()]

    async def send(self, topic: str, value: bytes, *, key: bytes | None,
                   headers: list[tuple[str, bytes]]) -> asyncio.Future[Any]:
        """Queue one record; the future resolves when the broker acknowledged it."""
        if self._producer is None:
            raise RuntimeError("the record sender is not started")
        future = await self._producer.send(topic, value, key=key, headers=headers)
        counter = self._produced.get(topic)
        if counter is None:  # the labelled child once per topic, not a lookup per record
            counter = self._produced[topic] = metrics.RECORDS_PRODUCED.labels(self._service, topic)
        counter.inc()
        return cast("asyncio.Future[Any]", future)
