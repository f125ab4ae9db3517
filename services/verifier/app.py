"""The verifier: trusted transitions in; outcomes and payment instructions out.

Run alone: `faststream run services.verifier.app:app` (or `stafet serve verifier`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import trace

from services.verifier import store
from services.verifier.authenticity import Refused, admit_contract, admit_transition
from services.verifier.batch import Arrival, BatchResult, process_batch
from services.verifier.rebuild import read_in_broker_order
from services.verifier.relay import Outgoing, relay_outbox
from services.verifier.streams import StreamCache
from shared.domain.contracts.book import ContractBook, ContractConflict
from shared.domain.contracts.checks import VERIFIER_REFUSES, ContractIssue, issues_of
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.model import Contract
from shared.domain.dead_letters import DeadLetter, DeadLetterRecord
from shared.domain.events import ClockTick, OutcomeRecorded, PaymentInstruction, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.platform import faults
from shared.platform.broker import (
    RecordSender,
    batch_subscriber,
    bind_batch_context,
    make_app,
    make_broker,
    raw_records,
    raw_records_of,
)
from shared.platform.db import Database
from shared.platform.dead_letters import write_dead_letter
from shared.platform.health import observe
from shared.platform.kafka import wait_for_topics
from shared.platform.logging import configure_logging
from shared.platform.metrics import refresh_outbox_depth
from shared.platform.retry import UNREACHABLE, backoff_s, until_reachable
from shared.platform.settings import Settings
from shared.platform.tenants import load_tenancy
from shared.platform.topics import CONTRACTS, DEAD_LETTERS, OUTCOMES, PAYMENTS, TRANSITIONS, group_id, topic_names
from shared.platform.trust import record_signer, trusted_keys

SWEEP_ROUNDS_MAX = 100  # per handler call; the ticker carries on with the rest
# Every partition of the transitions topic: event time is the least of their watermarks.
TRANSITION_PARTITIONS = tuple(range(TRANSITIONS.partitions))

settings = Settings()
configure_logging(settings.log_level)
log = structlog.get_logger("verifier")
broker = make_broker(settings, client_id="stafet-verifier", principal="verifier")
app = make_app(broker, settings, principal="verifier", title="Stafet verifier", description=(
    "Keeps each subject's stream of transitions, evaluates it against every contract "
    "version in force, and publishes outcome decisions and payment instructions "
    "(payments and clawbacks) with deterministic ids through a transactional outbox."))
# Document the topics (AsyncAPI); the records themselves go out through `sender` below.
publishers = {
    OUTCOMES.name: broker.publisher(
        OUTCOMES.name, schema=OutcomeRecorded, title="outcomes",
        description="OutcomeVerified / OutcomeRejected (reason code) / OutcomeCapped / OutcomePending, "
                    "keyed by subject pseudonym, whenever a decision changes."),
    PAYMENTS.name: broker.publisher(
        PAYMENTS.name, schema=PaymentInstruction, title="payments",
        description="The ledger journal (one partition): payment instructions and clawbacks keyed by payee."),
}
dead_letters_out = broker.publisher(DEAD_LETTERS.name, schema=DeadLetterRecord, title="dead-letters",
                                    description="Transitions and contract versions no trusted key signed.")
book = ContractBook()
_registry = InstitutionRegistry.from_file(settings.institutions_file)
directory = {i.id: InstitutionInfo(i.kind, i.municipality, i.authority) for i in _registry.all()}
kinds = {i.id: i.kind for i in _registry.all()}
# Whom the verifier believes (services/verifier/authenticity.py), and its own key: the
# ledger believes only instructions the verifier signed.
trust = trusted_keys(settings)
# Which payer's contract signers may publish which contracts, who moves the clock
# (docs/tenancy.md); None: one payer's installation.
tenancy = load_tenancy(settings)
# The shared contracts topic and, with tenants, each tenant's own (docs/tenancy.md, "Topics
# per tenant"): named from TENANTS_FILE, so a new tenant's topic is read after a restart.
CONTRACT_TOPICS = topic_names(CONTRACTS, tenancy.ids() if tenancy is not None else ())
signer = record_signer(settings, "service:verifier")
database = Database(settings, role="verifier", max_size=settings.db_pool_max_size)
observe(app, database, refreshers=(refresh_outbox_depth,))
# The outbox relay sends each round through the raw producer (shared/platform/broker.py), with
# the signatures stored when each record was decided (a tree of records per signature).
sender = RecordSender(settings, client_id="stafet-verifier-relay", principal="verifier").attach(app)
tasks: list[asyncio.Task[None]] = []
# One batch at a time: the handler and the ticker both call process_batch.
processing = asyncio.Lock()
# Subjects' streams as this replica last read or wrote them, each used only at the
# version it has under the subject's lock (services/verifier/streams.py).
streams = StreamCache()


async def publish(records: Sequence[Outgoing]) -> list[asyncio.Future[Any]]:
    """Send one relay round: each record with the signature stored when it was decided
    (services/verifier/relay.py), all with the current trace context; the futures resolve
    on the broker's acknowledgements, which the relay awaits before it deletes the rows."""
    # A span per round: the batch's consume span is its parent when a batch triggered the
    # round; a round the ticker runs starts a trace of its own, so every record has one.
    with trace.get_tracer("stafet.verifier").start_as_current_span("outbox relay", kind=trace.SpanKind.PRODUCER):
        trace_context = sender.trace_headers()
    return [await sender.send(topic, value, key=key, headers=[*headers, *trace_context])
            for topic, key, value, headers in records]


async def refuse(refused: Refused, raw: bytes, topic: str, partition: int, offset: int) -> None:
    log.error(refused.reason, topic=topic, partition=partition, offset=offset, error=refused.message)
    letter = DeadLetter.of(refused.reason, "", refused.message, raw)
    await write_dead_letter(dead_letters_out, letter, service="verifier", topic=topic, partition=partition,
                            offset=offset, no_confirm=False)


# Versions this process learnt but has not yet swept its subjects for (kept across a
# database outage, so that a retry still sweeps).
unswept: set[tuple[str, int]] = set()


def refusals(contract: Contract) -> list[ContractIssue]:
    """What makes a new version pay wrongly or never (shared/domain/contracts/checks.py):
    a payee or fallback this registry does not know, a second version taking effect on
    the same day as another, a window no subject can fall into. A version already in the
    book is not checked again (it arrives again at every start)."""
    if contract in book.all():
        return []
    return [issue for issue in issues_of(contract, book.all(), kinds) if issue.code in VERIFIER_REFUSES]


async def remember(contract: Contract, connection: asyncpg.Connection) -> None:
    key = (contract.contract_id, contract.version)
    try:
        if book.add(contract):
            unswept.add(key)
    except ContractConflict as error:
        log.error("contract_conflict", contract_id=contract.contract_id,
                  version=contract.version, error=str(error))
        return
    async with connection.transaction():
        if await store.save_contract(connection, contract):
            log.info("contract_applied", contract_id=contract.contract_id, version=contract.version)
        elif key in unswept:
            # Another replica stored this version first and swept then; but this process
            # has been deciding batches with its old book until now (found by `make chaos
            # SEED=1`: subjects stayed decided under the old version). Its own sweep,
            # serialised after those batches, re-evaluates them under the new book.
            await store.schedule_everyone(connection)
            log.info("contract_learnt_sweeping", contract_id=contract.contract_id, version=contract.version)
    unswept.discard(key)


@app.on_startup
async def start() -> None:
    pool = await database.open()
    # The database may go away just after the pool opened (chaos seed 2 killed it then):
    # waited out like an outage at start, not an exit. Loading the book again is idempotent.
    await until_reachable("contract book (postgresql)", lambda: load_book(pool))
    if tenancy is not None:
        # Several contracts topics (the shared one and each tenant's) are read side by side,
        # in no fixed order between them, and which payer a contract id belongs to is its
        # first version's. So what is on them already is taken first, in broker order (as
        # `stafet audit` takes it), before the subscriber reads them live (and dead-letters
        # what is refused): a fresh verifier decides as the one that read them live.
        await until_reachable("contracts topics (kafka)", functools.partial(
            wait_for_topics, settings.kafka_bootstrap_servers, CONTRACT_TOPICS, principal="verifier",
            waiting=lambda missing: log.warning("waiting_for_topics", missing=missing)))
        records = await until_reachable("contracts (kafka)", functools.partial(
            read_in_broker_order, settings.kafka_bootstrap_servers, CONTRACT_TOPICS))
        await until_reachable("contract book (postgresql)", lambda: take_contracts(pool, records))
    log.info("verifier_starting", contracts=[f"{c.contract_id}@v{c.version}" for c in book.all()])


async def take_contracts(pool: asyncpg.Pool, records: list[ConsumerRecord[Any, Any]]) -> None:
    """The versions of `records` the verifier believes, in their order (idempotent)."""
    async with pool.acquire() as connection:
        for record in records:
            contract = admit_contract(record, trust, tenancy, earlier_payer)
            if isinstance(contract, Contract) and not refusals(contract):
                await remember(contract, connection)


async def load_book(pool: asyncpg.Pool) -> None:
    """The contract versions the verifier learnt before, then those of CONTRACT_FILES."""
    async with pool.acquire() as connection:
        for contract in await store.load_contracts(connection):
            book.add(contract)
        for path in settings.contract_paths():
            contract = load_contract(path)
            if problems := refusals(contract):
                log.error("contract_refused", contract_id=contract.contract_id, version=contract.version,
                          reason=problems[0].code.value, error="; ".join(p.line() for p in problems))
                continue
            await remember(contract, connection)


@app.after_startup
async def flush_outbox_and_tick() -> None:
    # Whatever a crashed predecessor committed but did not publish goes out first.
    published = await until_reachable("outbox relay", lambda: relay_outbox(database.pool, publish))
    log.info("outbox_flushed_at_start", published=published)
    tasks.append(asyncio.create_task(ticker()))


@app.on_shutdown
async def stop() -> None:
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# Closed after the broker has stopped (after_shutdown), not in `stop`: the batch a subscriber
# has in hand at SIGTERM still needs its connection to commit (as the ledger, dd84c7c).
app.after_shutdown(database.close)


async def run_batch(arrivals: list[Arrival]) -> BatchResult:
    async with processing:
        result = await process_batch(database.pool, book, [], directory, streams=streams, arrivals=arrivals,
                                     partition_ids=TRANSITION_PARTITIONS, signer=signer)
        faults.reached("verifier.before_relay")
        published = await relay_outbox(database.pool, publish)
    log.info("batch_verified", received=len(arrivals), new_events=result.new_events,
             subjects=result.subjects_evaluated, instructions=result.instructions,
             outcomes_changed=result.outcomes_changed, published=published,
             final_through=str(result.today), timers_still_due=result.timers_still_due)
    return result


async def ticker() -> None:
    """Drain due timers (sustainment, sweeps after a new contract) when no transitions
    arrive to do it."""
    failures = 0
    while True:
        await asyncio.sleep(settings.tick_interval_s + (backoff_s(failures) if failures else 0.0))
        try:
            await tick()
        except UNREACHABLE as error:
            # The database or broker is away: the ticker must outlive the outage, or due
            # timers would wait for the next transition (or forever, once input stops).
            failures += 1
            log.warning("tick_failed_will_retry", failures=failures, error=f"{type(error).__name__}: {error}")
            continue
        failures = 0


async def tick() -> None:
    async with database.pool.acquire() as connection:
        due = await store.work_due(connection)
    for _ in range(SWEEP_ROUNDS_MAX):
        if due == 0:
            break
        due = (await run_batch([])).timers_still_due


@broker.subscriber(*CONTRACT_TOPICS, group_id=None,  # type: ignore[untyped-decorator]
                   auto_offset_reset="earliest", decoder=raw_records, title="contracts",
                   description="Contract versions (stafet contract apply), compacted, key payer/contract_id@version/signer.")
async def on_contract(records: Contract, message: KafkaMessage) -> None:
    # No consumer group: every verifier instance reads every contract version, from
    # the start of each compacted topic, at every start. With tenants, a tenant's versions
    # are on its own topic (or, published before there were topics per tenant, the shared one).
    for record in raw_records_of(message):
        contract = admit_contract(record, trust, tenancy, earlier_payer)
        if isinstance(contract, Refused):
            # The versions in force keep applying; the refused one is logged and kept
            # (redacted) in a dead letter for whoever investigates.
            await refuse(contract, record.value or b"", record.topic, record.partition, record.offset)
            continue
        if problems := refusals(contract):
            await refuse(Refused(problems[0].code.value, "; ".join(p.line() for p in problems)),
                         record.value or b"", record.topic, record.partition, record.offset)
            continue
        # Serialised with batches: a batch in flight was decided with the old book, and the
        # sweep a new version schedules must see that batch's subjects committed, or
        # they would never be evaluated under the new version.
        # There is no consumer group to rewind (every instance reads the whole topic), so
        # a database outage is waited out here rather than skipping the version.
        await until_reachable("postgresql (contract)", functools.partial(remember_now, contract))


def earlier_payer(contract_id: str) -> str | None:
    """The payer the contract's versions in force name, if it has any."""
    return next((c.payer for c in book.all() if c.contract_id == contract_id), None)


async def remember_now(contract: Contract) -> None:
    async with processing, database.pool.acquire() as connection:
        await remember(contract, connection)


@batch_subscriber(broker, settings, TRANSITIONS.name, group_id=group_id("verifier"), title="transitions",
                  description="Trusted facts from ingest (keyed by subject) and watermarks (stafet clock, on every partition).")
async def on_transitions(records: list[Transition | ClockTick], message: KafkaMessage) -> None:
    # `records` documents the wire format; the bytes are read and validated from `message`.
    bind_batch_context(raw_records_of(message))
    # Facts and watermarks with their partitions, in each partition's order: a fact is in
    # at a frontier day once its partition's watermark before it had not reached that day.
    arrivals: list[Arrival] = []
    for record in raw_records_of(message):
        parsed = admit_transition(record, trust, tenancy)
        if isinstance(parsed, Refused):
            # Not from ingest (or an operator's clock), or a bug upstream: either way it
            # changes no stream and no money.
            await refuse(parsed, record.value or b"", record.topic, record.partition, record.offset)
            continue
        arrivals.append((record.partition, parsed))
    result = await run_batch(arrivals)
    for _ in range(SWEEP_ROUNDS_MAX):
        if result.timers_still_due == 0:
            break
        result = await run_batch([])
    faults.reached("verifier.after_commit")
