"""The services' Prometheus metrics, in one registry per process (served on /metrics).

FastStream's own Prometheus middleware counts records received, processed (with a
processing-time histogram per handler) and published per topic (`faststream_*`). The
`stafet_*` metrics add what it cannot know: the size of each batch in records, records
dead-lettered by reason code, consumer lag per partition, and gauges read from the
database (outbox depth, the ledger's chain, payments and money by contract and kind,
the last chain verification, the payout runs finance exported) by each service's refresher; the front door adds HTTP
requests by route and status with their latency. Every process also exports its own
resources (`process_*`: resident memory, CPU seconds, open file descriptors; `python_*`:
garbage collection), which a registry of our own would otherwise leave out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream import BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

BATCH_RECORDS = Histogram(
    "stafet_batch_records", "Records per consumed batch", ["service", "topic"], registry=REGISTRY,
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 2000, 5000, 10_000))
BATCH_SECONDS = Histogram(
    "stafet_batch_processing_seconds", "Time to process one consumed batch (decode, database, publish)",
    ["service", "topic"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
RECORDS_CONSUMED = Counter(
    "stafet_records_consumed_total", "Records consumed (committed only after their batch returned)",
    ["service", "topic"], registry=REGISTRY)
RECORDS_PRODUCED = Counter(
    "stafet_records_produced_total", "Records published", ["service", "topic"], registry=REGISTRY)
DEAD_LETTERS = Counter(
    "stafet_dead_letters_total", "Records dead-lettered, by reason code", ["service", "reason"],
    registry=REGISTRY)
CONSUMER_LAG = Gauge(
    "stafet_consumer_lag_records", "Records on a partition not yet committed by the service's group",
    ["group", "topic", "partition"], registry=REGISTRY)
OUTBOX_DEPTH = Gauge(
    "stafet_outbox_depth_records", "Verifier outbox rows committed but not yet published", registry=REGISTRY)
LEDGER_CHAIN_LENGTH = Gauge(
    "stafet_ledger_chain_length_entries", "Entries in the ledger's hash chain", registry=REGISTRY)
LEDGER_ENTRIES = Gauge(
    "stafet_ledger_entries", "Ledger entries by contract and kind (payment, clawback, settled, failed)",
    ["contract_id", "kind", "currency"], registry=REGISTRY)
LEDGER_AMOUNT = Gauge(
    "stafet_ledger_amount_minor", "Money in ledger entries by contract and kind, in minor units",
    ["contract_id", "kind", "currency"], registry=REGISTRY)
LEDGER_VERIFY_OK = Gauge(
    "stafet_ledger_verify_ok", "1 if the last full verification of the hash chain found it intact, else 0",
    registry=REGISTRY)
LEDGER_VERIFY_TIME = Gauge(
    "stafet_ledger_verify_last_run_timestamp_seconds", "When the chain was last verified (Unix time)",
    registry=REGISTRY)
PAYOUT_RUNS = Gauge(
    "stafet_payout_runs", "Payout runs (files exported for the bank) recorded in the ledger's database, by format",
    ["format"], registry=REGISTRY)
PAYOUT_LAST_RUN_TIME = Gauge(
    "stafet_payout_last_run_timestamp_seconds", "When the last payout run was recorded (Unix time; 0: none yet)",
    registry=REGISTRY)
FRONT_DOOR_LINES = Counter(
    "stafet_frontdoor_lines_total", "Lines the front door answered, by status and reason code",
    ["status", "reason"], registry=REGISTRY)
NOTIFICATION_CYCLES_FAILED = Counter(
    "stafet_frontdoor_notification_cycles_failed_total",
    "Notification cycles that raised (logged as notifications_failed; the next waits longer)", registry=REGISTRY)
HTTP_REQUESTS = Counter(
    "stafet_http_requests_total", "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"], registry=REGISTRY)
HTTP_SECONDS = Histogram(
    "stafet_http_request_duration_seconds", "Time from a request's arrival to the end of its answer",
    ["route", "method"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
READY = Gauge("stafet_ready", "1 if the readiness check passes, per check", ["check"], registry=REGISTRY)

DEAD_LETTER_SUFFIX = ".dead-letters.v1"

Refresher = Callable[[asyncpg.Connection], Awaitable[None]]


def middlewares(service: str) -> Sequence[Any]:
    """The broker middlewares that count records: FastStream's and ours."""

    class StafetMetrics(BaseMiddleware):  # type: ignore[type-arg]
        async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
            raw = msg.raw_message
            records = tuple(raw) if isinstance(raw, tuple | list) else (raw,)
            topic = records[0].topic if records else ""
            started = time.perf_counter()
            result = await call_next(msg)
            # Counted only when the handler returned: a failed batch is redelivered.
            BATCH_SECONDS.labels(service, topic).observe(time.perf_counter() - started)
            BATCH_RECORDS.labels(service, topic).observe(len(records))
            RECORDS_CONSUMED.labels(service, topic).inc(len(records))
            return result

        async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
            result = await call_next(cmd)
            topic = str(cmd.destination)
            RECORDS_PRODUCED.labels(service, topic).inc(max(1, len(cmd.batch_bodies)))
            if topic.endswith(DEAD_LETTER_SUFFIX):
                for body in cmd.batch_bodies:
                    DEAD_LETTERS.labels(service, dead_letter_reason(body)).inc()
            return result

    return (KafkaPrometheusMiddleware(registry=REGISTRY, app_name=f"stafet-{service}"), StafetMetrics)


def dead_letter_reason(body: object) -> str:
    """The reason code of a dead-letter record (its JSON's `reason`), or `unreadable`."""
    try:
        reason = json.loads(body if isinstance(body, bytes | str) else b"")["reason"]
    except (ValueError, TypeError, KeyError):
        return "unreadable"
    return str(reason)


async def refresh_consumer_lag(broker: KafkaBroker, admin: AIOKafkaAdminClient) -> None:
    """Lag per assigned partition of every consumer group of this process: end offset
    minus the group's committed offset as the group coordinator has it (what KEDA's Kafka
    scaler reads too)."""
    values: dict[tuple[str, str, str], float] = {}
    for subscriber in broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        group = getattr(consumer, "_group_id", None)
        if consumer is None or group is None:
            continue
        assigned = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        if not assigned:
            continue
        ends: dict[TopicPartition, int] = await consumer.end_offsets(assigned)
        committed = await admin.list_consumer_group_offsets(group, partitions=assigned)
        for partition in assigned:
            meta = committed.get(partition)
            offset = meta.offset if meta is not None and meta.offset >= 0 else 0
            values[(group, partition.topic, str(partition.partition))] = float(max(0, ends[partition] - offset))
    CONSUMER_LAG.clear()
    for labels, value in values.items():
        CONSUMER_LAG.labels(*labels).set(value)


async def refresh_outbox_depth(connection: asyncpg.Connection) -> None:
    OUTBOX_DEPTH.set(await connection.fetchval("SELECT count(*) FROM verifier_outbox"))
