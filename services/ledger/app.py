"""The ledger: payment instructions and settlements in; double-entry rows in PostgreSQL.

Three handlers:
- settlements from finance systems are checked for shape and forwarded onto the ledger
  journal (the single-partition payments topic), so that they take their place in one
  total order with the instructions they settle;
- investment records (commitments, disbursements, funds, savings, closes) are checked
  for their signer and shape and forwarded onto the journal the same way
  (docs/investment.md);
- the projector applies the journal in order, one transaction per batch, and
  dead-letters settlements for unknown or already-settled instructions.

Run alone: `faststream run services.ledger.app:app` (or `stafet serve ledger`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import structlog
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from services.ledger.anchors import ReanchorDecision, record_anchor, recorded_through, startup_problems
from services.ledger.authenticity import (
    JournalRecord,
    Refused,
    admit_dispute,
    admit_investment,
    admit_journal,
    admit_settlement,
)
from services.ledger.checkpoints import (
    CHECKPOINT_ENTRIES_MAX,
    CHECKPOINT_KEY,
    Checkpoint,
    anchors_of,
    checkpoints_of,
    entries_after,
    read_topic,
)
from services.ledger.disputes import keep_disputes
from services.ledger.metrics import LEDGER_ANCHORS_OK, LEDGER_UNPROVEN_ENTRY, LedgerGauges
from services.ledger.origins import OriginRecord
from services.ledger.provenance import SourceRecord, unproven_entries
from services.ledger.store import apply_journal
from shared.domain.dead_letters import DeadLetter, DeadLetterRecord
from shared.domain.disputes import DisputeOpened, DisputeResolved
from shared.domain.events import PaymentInstruction, Settlement
from shared.domain.investment.records import InvestmentCommitted, InvestmentRecord, record_key
from shared.platform import faults
from shared.platform.broker import batch_subscriber, bind_batch_context, make_app, make_broker, raw_records_of
from shared.platform.db import Database
from shared.platform.dead_letters import write_dead_letter
from shared.platform.health import observe
from shared.platform.kafka import wait_for_topics
from shared.platform.logging import configure_logging
from shared.platform.retry import until_reachable
from shared.platform.settings import Settings
from shared.platform.tenants import load_tenancy
from shared.platform.topics import (
    DEAD_LETTERS,
    DISPUTES,
    INVESTMENTS,
    LEDGER_CHECKPOINTS,
    PAYMENTS,
    SETTLEMENTS,
    group_id,
    topic_names,
)
from shared.platform.trust import ConfigurationError, ConsumedRecord, TrustedKeys, ledger_trust, record_signer, trust_roots

settings = Settings()
configure_logging(settings.log_level)
log = structlog.get_logger("ledger")
broker = make_broker(settings, client_id="stafet-ledger", principal="ledger")
app = make_app(broker, settings, principal="ledger", title="Stafet ledger", description=(
    "Projects the ledger journal into a double-entry, append-only, hash-chained ledger in "
    "PostgreSQL, and forwards finance systems' settlements onto the journal."))
journal_out = broker.publisher(PAYMENTS.name, schema=Settlement, title="journal (settlements forwarded)",
                               description="Settlements forwarded onto the ledger journal, keyed by payment id.")
investments_journal_out = broker.publisher(
    PAYMENTS.name, schema=InvestmentCommitted, title="journal (investment records forwarded)",
    description="Investment records forwarded onto the ledger journal, keyed by investor or fund "
                "(all five kinds: docs/investment.md).")
dead_letters_out = broker.publisher(DEAD_LETTERS.name, schema=DeadLetterRecord, title="dead-letters",
                                    description="Malformed, unknown-payment or already-settled settlements.")
database = Database(settings, role="ledger", max_size=settings.db_pool_max_size)
observe(app, database, refreshers=(LedgerGauges(settings.ledger_verify_interval_s),))


# Whom the ledger believes (services/ledger/authenticity.py), and its own key, which signs
# the settlements and investment records it forwards onto the journal (a batch's forwarded
# records under one signature, each with its proof: shared/domain/signing.py). The registry's
# keys too: in development, the registered investors' and funds' well-known keys; in
# production investors' keys come from TRUSTED_KEYS_FILE.
trust = ledger_trust(settings)
# Whose finance principals may settle which payer's payments (docs/tenancy.md); None: one payer.
tenancy = load_tenancy(settings)
signer = record_signer(settings, "service:ledger")
checkpoints_out = broker.publisher(LEDGER_CHECKPOINTS.name, schema=Checkpoint, title="ledger-checkpoints",
                                   description="Signed entry hashes: the chain anchored outside the database.")
# The last sequence a signed checkpoint covers; read from the topic at start, so entries
# a crashed predecessor committed without checkpointing are checkpointed now.
checkpointed = [0]
# Why the ledger refuses to sign checkpoints (services/ledger/anchors.py), or "" when it
# may; until the anchors were checked at start, it signs nothing (a batch can be projected
# before that check has run: the check then checkpoints what that batch committed).
checkpointing_refused = [""]
anchors_checked = [False]
checkpointing = asyncio.Lock()  # one checkpoint run at a time: the startup check's or a batch's


app.on_startup(database.open)
SETTLEMENT_TOPICS = topic_names(SETTLEMENTS, tenancy.ids() if tenancy is not None else ())


@app.on_startup
async def tenants_topics_exist() -> None:
    """With tenants, every tenant's settlements topic must exist before the consumer
    subscribes to it (auto-creation is off): waited for, then named if still missing."""
    if tenancy is not None:
        await until_reachable("settlements topics (kafka)", functools.partial(
            wait_for_topics, settings.kafka_bootstrap_servers, SETTLEMENT_TOPICS, principal="ledger",
            waiting=lambda missing: log.warning("waiting_for_topics", missing=missing)))
# Closed after the broker has stopped (after_shutdown), not before (on_shutdown): a batch in
# flight at SIGTERM finishes its transaction and its checkpoint first.
app.after_shutdown(database.close)
stopping = asyncio.Event()
app.on_shutdown(stopping.set)


# The shared settlements topic and, with tenants, each tenant's finance office's own (docs/
# tenancy.md, "Topics per tenant"), in one group: whatever order they arrive in, the
# forwarder puts them onto the journal, whose order is the chain's.
@batch_subscriber(broker, settings, SETTLEMENT_TOPICS, group_id=group_id("ledger-settlements"),
                  title="settlements", description="Finance systems' answers, keyed by payment id.")
async def on_settlements(records: list[Settlement], message: KafkaMessage) -> None:
    # `records` documents the wire format; the bytes are read and validated from `message`.
    await forward_onto_journal(message, admit_settlement, lambda settlement: settlement.payment_id, journal_out)


@batch_subscriber(broker, settings, INVESTMENTS.name, group_id=group_id("ledger-investments"),
                  title="investments", description="Investors', funds' and finance offices' investment records.")
async def on_investments(records: list[InvestmentCommitted], message: KafkaMessage) -> None:
    # `records` documents the wire format (one of five kinds); the bytes are read and
    # validated from `message`.
    await forward_onto_journal(message, functools.partial(admit_investment, tenancy=tenancy), record_key,
                               investments_journal_out)


@batch_subscriber(broker, settings, DISPUTES.name, group_id=group_id("ledger-disputes"),
                  title="disputes", description="Institutions' disputes in the review window and operators' "
                                                "decisions on them, signed by the front door.")
async def on_disputes(records: list[DisputeOpened | DisputeResolved], message: KafkaMessage) -> None:
    # `records` documents the wire format; the bytes are read and validated from `message`.
    # Kept in PostgreSQL (services/ledger/disputes.py); a payout run holds what an open dispute names.
    bind_batch_context(raw_records_of(message))
    sends = []
    admitted: list[DisputeOpened | DisputeResolved] = []
    offsets: dict[int, int] = {}
    for record in raw_records_of(message):
        parsed = admit_dispute(record, trust)
        if isinstance(parsed, Refused):
            sends.append(await refuse(parsed, record.value or b"", record.topic, record.partition, record.offset))
            continue
        admitted.append(parsed)
        offsets[id(parsed)] = record.offset
    kept = await keep_disputes(database.pool, admitted)
    written, refused = kept.written, kept.refused
    for late in kept.late:
        # Kept, and holding what is not paid yet; the operator's queue shows the run.
        log.warning("dispute_after_payout_run", reason=late.reason, dispute_id=late.record.dispute_id,
                    detail=late.message)
    for refusal in refused:
        sends.append(await refuse(Refused(refusal.reason, "dispute_id", refusal.message),
                                  refusal.record.model_dump_json().encode(), DISPUTES.name, 0,
                                  offsets.get(id(refusal.record), -1)))
    await asyncio.gather(*sends)
    log.info("disputes_kept", received=len(admitted), written=written, refused=len(refused), late=len(kept.late))


async def forward_onto_journal(message: KafkaMessage,
                               admit: Callable[[ConsumedRecord, TrustedKeys], BaseModel | Refused],
                               key_of: Callable[[Any], str], journal: Any) -> None:
    """Admit each record (its signer and its shape), dead-letter what is refused, and
    forward the rest onto the journal under the ledger's key, signed as one batch, each
    with its signed original (services/ledger/origins.py)."""
    bind_batch_context(raw_records_of(message))
    sends = []
    forward: list[tuple[str, bytes, bytes]] = []
    originals: list[OriginRecord] = []
    for record in raw_records_of(message):
        admitted = admit(record, trust)
        if isinstance(admitted, Refused):
            sends.append(await refuse(admitted, record.value or b"", record.topic, record.partition, record.offset))
            continue
        forward.append((PAYMENTS.name, key_of(admitted).encode(), admitted.model_dump_json().encode()))
        originals.append(OriginRecord.of(record))
    for (_, key, value), headers, original in zip(forward, signer.batch_header_dicts(forward), originals, strict=True):
        # With its signed original: the journal believes finance, not the forwarder's key.
        sends.append(await journal.publish(value, key=key, headers={**headers, **original.as_headers()},
                                           no_confirm=True))
    await asyncio.gather(*sends)


async def refuse(refused: Refused, raw: bytes, topic: str, partition: int, offset: int) -> asyncio.Future[Any]:
    dead = DeadLetter.of(refused.reason, refused.field, refused.message, raw)
    log.warning("dead_letter", reason=dead.reason, field=dead.field, topic=topic, partition=partition,
                offset=offset, error=dead.message)
    return await write_dead_letter(dead_letters_out, dead, service="ledger", topic=topic, partition=partition,
                                   offset=offset)


@batch_subscriber(broker, settings, PAYMENTS.name, group_id=group_id("ledger"), title="payments (journal)",
                  description="Payment instructions, clawbacks and forwarded settlements, in ledger order.")
async def on_journal(records: list[PaymentInstruction | Settlement], message: KafkaMessage) -> None:
    # `records` documents the wire format; the bytes are read and validated from `message`.
    bind_batch_context(raw_records_of(message))
    journal: list[JournalRecord] = []
    offsets: dict[str, int] = {}  # settlement id -> journal offset, for dead letters
    investment_offsets: dict[int, int] = {}  # id(record) -> journal offset
    sources: dict[int, SourceRecord] = {}  # id(record) -> the signed record, kept with its entry
    sends = []
    for record in raw_records_of(message):
        parsed = admit_journal(record, trust, tenancy)
        if isinstance(parsed, Refused):
            # Only our verifier and settlement forwarder may write here: anything else is
            # a forgery or a bug upstream. It moves no money, is dead-lettered, and stays
            # on the topic for inspection.
            sends.append(await refuse(parsed, record.value or b"", record.topic, record.partition, record.offset))
            continue
        journal.append(parsed)
        source = SourceRecord.of(record)
        if source is not None:
            sources[id(parsed)] = source
        if isinstance(parsed, Settlement):
            offsets[parsed.settlement_id] = record.offset
        elif not isinstance(parsed, PaymentInstruction):
            investment_offsets[id(parsed)] = record.offset
    plan = await apply_journal(database.pool, journal, sources, tenancy)
    for rejected in plan.rejected:
        dead = DeadLetter.of(rejected.reason.value, "payment_id", rejected.message,
                             rejected.settlement.model_dump_json().encode(),
                             rejected.settlement.settlement_id)
        log.warning("settlement_rejected", reason=rejected.reason.value,
                    settlement_id=rejected.settlement.settlement_id,
                    payment_id=rejected.settlement.payment_id)
        sends.append(await write_dead_letter(
            dead_letters_out, dead, service="ledger", topic=PAYMENTS.name, partition=0,
            offset=offsets.get(rejected.settlement.settlement_id, -1), key=rejected.settlement.settlement_id.encode()))
    for refused in plan.refused_investments:
        sends.append(await refuse_investment(refused.record, refused.reason.value, refused.message,
                                             investment_offsets.get(id(refused.record), -1)))
    await asyncio.gather(*sends)
    faults.reached("ledger.after_commit")
    await checkpoint()
    log.info("batch_projected", received=len(journal), written=plan.written,
             duplicates=plan.duplicates, rejected=len(plan.rejected), checkpointed_through=checkpointed[0])


async def refuse_investment(record: InvestmentRecord, reason: str, message: str, offset: int) -> asyncio.Future[Any]:
    """An investment record the ledger's book refuses (docs/investment.md: reason codes)."""
    dead = DeadLetter.of(reason, record.kind, message, record.model_dump_json().encode())
    log.warning("investment_refused", reason=reason, kind=record.kind, key=record_key(record), error=message)
    return await write_dead_letter(dead_letters_out, dead, service="ledger", topic=PAYMENTS.name, partition=0,
                                   offset=offset, key=record_key(record).encode())


def _reanchor_decision() -> ReanchorDecision | None:
    """An operator's signed decision to sign checkpoints again after anchors were removed."""
    import yaml

    from shared.domain.key_lists import DocumentError, verified_document

    path = settings.ledger_reanchor_decision_file
    if path is None:
        return None
    try:
        return verified_document(yaml.safe_load(path.read_text(encoding="utf-8")), ReanchorDecision,
                                 trust_roots(settings))
    except (OSError, yaml.YAMLError, DocumentError) as error:
        raise ConfigurationError(f"{path}: not a valid signed re-anchoring decision: {error}") from None


@app.after_startup
async def find_last_checkpoint() -> None:
    """Check the anchors at start (below). A SIGTERM can arrive while this still runs (it
    may checkpoint a predecessor's whole backlog): then the database closes under it, and
    the ledger stops cleanly instead of failing its start; the next start checks again.

    The database or the broker may go away while the check runs (the pool was opened a
    moment before): that is waited out like an outage at start, not an exit (chaos seed 2
    killed PostgreSQL just then, and the ledger exited 1)."""

    async def attempt() -> None:
        if not stopping.is_set():
            await check_anchors()

    try:
        await until_reachable("anchor check (postgresql and kafka)", attempt)
    except Exception as error:
        # Once the shutdown began, whatever the check's I/O raises is the shutdown's doing:
        # the pool closing (InterfaceError), or the broker's producer gone before a
        # checkpoint was published (FastStream's IncorrectState: a CI run saw it exit 1).
        if not stopping.is_set():
            raise
        log.info("anchor_check_stopped_by_shutdown", error=type(error).__name__,
                 checkpointed_through=checkpointed[0])


async def check_anchors() -> None:
    """Go on from the newest signed checkpoint, unless the anchors were tampered with:
    then sign nothing over older history until an operator's signed decision says so."""
    topic = await read_topic(settings.kafka_bootstrap_servers, LEDGER_CHECKPOINTS.name, last_only=True)
    checkpointed[0] = anchors_of(topic.records, trust).through
    async with database.pool.acquire() as connection:
        logged = await recorded_through(connection)
    decision = _reanchor_decision()
    problems = startup_problems(LEDGER_CHECKPOINTS.name, topic.start_offset, checkpointed[0], logged, decision)
    checkpointing_refused[0] = "; ".join(problems)
    LEDGER_ANCHORS_OK.set(0 if problems else 1)
    if problems:
        log.error("checkpointing_refused", problems=problems, checkpointed_through=checkpointed[0],
                  logged_through=logged)
    elif decision is not None and (topic.start_offset > 0 or checkpointed[0] < logged):
        log.warning("reanchoring_by_operator_decision", decided_by=decision.decided_by,
                    decided_at=decision.decided_at.isoformat(), from_sequence=decision.from_sequence,
                    start_offset=decision.start_offset, reason=decision.reason)
    log.info("checkpoints_found", checkpointed_through=checkpointed[0], logged_through=logged)
    anchors_checked[0] = True
    await checkpoint()  # what a predecessor, or a batch before this check, left unanchored


async def checkpoint() -> None:
    """Sign and publish the hashes of every entry committed since the last checkpoint,
    and record each in the anchor log once the broker has it."""
    if not anchors_checked[0]:
        return
    if checkpointing_refused[0]:
        log.error("checkpointing_refused", problems=checkpointing_refused[0], checkpointed_through=checkpointed[0])
        return
    async with checkpointing:
        while True:
            async with database.pool.acquire() as connection:
                rows = await entries_after(connection, checkpointed[0], CHECKPOINT_ENTRIES_MAX)
                rows = rows[:await _derivable(connection, rows)]
            if not rows:
                return
            for record in checkpoints_of(rows):
                value = record.model_dump_json().encode()
                await checkpoints_out.publish(value, key=CHECKPOINT_KEY, headers=signer.header_dict(
                    LEDGER_CHECKPOINTS.name, CHECKPOINT_KEY, value))
                async with database.pool.acquire() as connection:
                    await record_anchor(connection, record)
                checkpointed[0] = record.last_sequence


async def _derivable(connection: Any, rows: list[tuple[int, str]]) -> int:
    """How many of `rows` (from the start) are derived from signed journal records. At
    the first that is not, the ledger stops signing: it will not anchor a chain with an
    entry it cannot derive (services/ledger/provenance.py), and says so until an operator
    acts (log `unproven_entry`, gauge `stafet_ledger_unproven_entry`)."""
    if not rows:
        return 0
    full = await connection.fetch("SELECT * FROM ledger_entries WHERE sequence >= $1 AND sequence <= $2"
                                  " ORDER BY sequence", rows[0][0], rows[-1][0])
    unproven = await unproven_entries(connection, full, trust, PAYMENTS.name, tenancy)
    if not unproven:
        return len(rows)
    sequence, problem = unproven[0]
    checkpointing_refused[0] = f"entry {sequence}: {problem}"
    LEDGER_ANCHORS_OK.set(0)
    LEDGER_UNPROVEN_ENTRY.set(sequence)
    log.error("unproven_entry", sequence=sequence, problem=problem, unproven=len(unproven))
    return sequence - rows[0][0]
