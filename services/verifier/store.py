"""The verifier's PostgreSQL adapter: subject streams, issued payments, decisions,
caps, timers, the clock and the outbox. Every function takes a connection inside the
caller's transaction: one batch, one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from services.verifier.budgets import Days, StoredClaim
from shared.domain.contracts.model import Contract
from shared.domain.contracts.payments import BudgetRequest
from shared.domain.events import PaymentInstruction, Transition
from shared.domain.signing import BATCH_PROOF_HEADER, KEY_ID_HEADER, SIGNATURE_HEADER, RecordSigner, header


@dataclass(frozen=True)
class Appended:
    """What `append` stored, per subject that got new events: its stream's version
    before and after (read under the subject's lock) and its new events in stream order."""

    before: Mapping[str, int] = field(default_factory=dict)
    after: Mapping[str, int] = field(default_factory=dict)
    fresh: Mapping[str, tuple[Transition, ...]] = field(default_factory=dict)
    count: int = 0


async def append_events(connection: asyncpg.Connection, transitions: Sequence[Transition]
                        ) -> tuple[set[str], int]:
    """Append the transitions not yet stored; return the subjects that got new events
    and how many events were new."""
    appended = await append(connection, transitions)
    return set(appended.after), appended.count


async def append(connection: asyncpg.Connection, transitions: Sequence[Transition],
                 known_after: Mapping[tuple[str, str], dt.date] | None = None) -> Appended:
    """Append the transitions not yet stored, each subject's in the order given; the
    subjects that got new events are locked for the rest of the transaction.
    `known_after`: per (reporter, event id), the watermark of its partition when it
    arrived (EPOCH for those not named): a redelivered event keeps the one it was stored
    with."""
    # An event id belongs to its reporter: (reported_by, event_id) is the event's key.
    unique: dict[tuple[str, str], Transition] = {}
    for transition in transitions:
        unique.setdefault((transition.reported_by, transition.event_id), transition)
    known = {(r["reported_by"], r["event_id"]) for r in await connection.fetch(
        "SELECT reported_by, event_id FROM verifier_events"
        " WHERE (reported_by, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [reporter for reporter, _ in unique], [event_id for _, event_id in unique])}
    fresh = [t for key, t in unique.items() if key not in known]
    if not fresh:
        return Appended()
    subjects = sorted({t.subject for t in fresh})
    births = {t.subject: t.birth_date for t in fresh}
    await connection.execute(
        "INSERT INTO verifier_subjects (subject, birth_date, version)"
        " SELECT subject, birth_date, 0 FROM unnest($1::text[], $2::date[]) AS n(subject, birth_date)"
        " ON CONFLICT (subject) DO NOTHING", subjects, [births[s] for s in subjects])
    before = await lock_subjects(connection, subjects)
    versions = dict(before)
    columns: tuple[list[object], ...] = ([], [], [], [], [], [], [])
    per_subject: dict[str, list[Transition]] = {}
    on_arrival = known_after or {}
    for transition in fresh:
        versions[transition.subject] += 1
        per_subject.setdefault(transition.subject, []).append(transition)
        for column, value in zip(columns, (transition.subject, versions[transition.subject], transition.event_id,
                                           transition.occurred_on, transition.model_dump_json(),
                                           transition.reported_by,
                                           on_arrival.get((transition.reported_by, transition.event_id), EPOCH)),
                                          strict=True):
            column.append(value)
    # One statement per table (unnest), not one per row: batches are written in bulk.
    await connection.execute(
        "INSERT INTO verifier_events (subject, version, event_id, occurred_on, transition, reported_by, known_after)"
        " SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::date[], $5::text[], $6::text[], $7::date[])",
        *columns)
    # `s.subject = ANY($1)` as well as the join: without it PostgreSQL joins the
    # unnest against a sequential scan of every subject (a cost that grows with the
    # population); with it, it looks the batch's subjects up by the primary key.
    await connection.execute(
        "UPDATE verifier_subjects s SET version = v.version"
        " FROM unnest($1::text[], $2::int[]) AS v(subject, version)"
        " WHERE s.subject = v.subject AND s.subject = ANY($1::text[])",
        list(versions), list(versions.values()))
    return Appended(before, versions, {k: tuple(v) for k, v in per_subject.items()}, len(fresh))


async def load_streams(connection: asyncpg.Connection, subjects: Iterable[str]
                       ) -> dict[str, list[Transition]]:
    streams: dict[str, list[Transition]] = {}
    for row in await connection.fetch(
            "SELECT subject, transition FROM verifier_events WHERE subject = ANY($1::text[])"
            " ORDER BY subject, version", list(subjects)):
        streams.setdefault(row["subject"], []).append(
            Transition.model_validate_json(row["transition"]))
    return streams


async def issued_payments(connection: asyncpg.Connection, subjects: Iterable[str]
                          ) -> dict[tuple[str, str], list[PaymentInstruction]]:
    issued: dict[tuple[str, str], list[PaymentInstruction]] = {}
    for row in await connection.fetch(
            "SELECT subject, contract_id, instruction FROM verifier_payments"
            " WHERE subject = ANY($1::text[])", list(subjects)):
        issued.setdefault((row["subject"], row["contract_id"]), []).append(
            PaymentInstruction.model_validate_json(row["instruction"]))
    return issued


async def record_payments(connection: asyncpg.Connection, instructions: Sequence[PaymentInstruction],
                          payloads: Sequence[str] | None = None,
                          causes: Mapping[str, tuple[str, str | None]] | None = None) -> None:
    """`payloads`: the instructions as JSON, if the caller has them already; `causes`:
    per payment id, why it was issued (reason, correcting event), default `final`."""
    causes = causes or {}
    await connection.execute(
        "INSERT INTO verifier_payments (payment_id, subject, contract_id, instruction, reason, cause_event_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])",
        [i.payment_id for i in instructions], [i.subject for i in instructions],
        [i.contract_id for i in instructions],
        list(payloads) if payloads is not None else [i.model_dump_json() for i in instructions],
        [causes.get(i.payment_id, ("final", None))[0] for i in instructions],
        [causes.get(i.payment_id, ("final", None))[1] for i in instructions])


async def stored_decisions(connection: asyncpg.Connection, subjects: Iterable[str]
                           ) -> dict[str, tuple[str, str | None, int, int]]:
    return {r["outcome_key"]: (r["status"], r["reason"], int(r["owed_minor"]), int(r["version"]))
            for r in await connection.fetch(
                "SELECT outcome_key, status, reason, owed_minor,"
                " (decision::json ->> 'contract_version')::int AS version FROM verifier_outcomes"
                " WHERE subject = ANY($1::text[])", list(subjects))}


async def save_decisions(connection: asyncpg.Connection,
                         rows: Sequence[tuple[str, str, str, str, str | None, int, str]]) -> None:
    await connection.execute(
        "INSERT INTO verifier_outcomes (outcome_key, subject, contract_id, status, reason,"
        " owed_minor, decision)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])"
        " ON CONFLICT (outcome_key) DO UPDATE SET status = EXCLUDED.status,"
        " reason = EXCLUDED.reason, owed_minor = EXCLUDED.owed_minor,"
        " decision = EXCLUDED.decision", *_columns(rows, 7))


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    """Rows to columns, for one bulk `unnest` statement instead of one statement per row."""
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


_CLAIM_COLUMNS = ("budget, outcome_key, subject, occurred_on, requested_minor, total_cap_minor,"
                  " period_cap_minor, granted_minor")


def _claim(r: asyncpg.Record) -> StoredClaim:
    request = BudgetRequest(r["budget"], r["outcome_key"], r["subject"], r["occurred_on"],
                            int(r["requested_minor"]), r["total_cap_minor"], r["period_cap_minor"])
    return StoredClaim(request, -1 if r["granted_minor"] is None else int(r["granted_minor"]))


async def lock_budgets(connection: asyncpg.Connection, budgets: Iterable[str]) -> None:
    """Lock these budgets for the rest of the transaction (in name order): verifier
    instances on other partitions wait, so a budget's grants move one batch at a time."""
    for name in sorted(set(budgets)):
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext('stafet-budget:' || $1))", name)


async def budget_claims(connection: asyncpg.Connection, budgets: Iterable[str]) -> list[StoredClaim]:
    """Every claim on these budgets (granted -1 where none is stored yet), locked."""
    names = sorted(set(budgets))
    await lock_budgets(connection, names)
    return [_claim(r) for r in await connection.fetch(
        f"SELECT {_CLAIM_COLUMNS} FROM verifier_budget_requests WHERE budget = ANY($1::text[])", names)]


async def claims_of_subjects(connection: asyncpg.Connection, subjects: Sequence[str]) -> list[StoredClaim]:
    return [_claim(r) for r in await connection.fetch(
        f"SELECT {_CLAIM_COLUMNS} FROM verifier_budget_requests WHERE subject = ANY($1::text[])", list(subjects))]


async def ungranted(connection: asyncpg.Connection, budget: str) -> bool:
    """Claims stored before grants were (see sql/009): the budget needs one full grant."""
    return bool(await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM verifier_budget_requests WHERE budget = $1 AND granted_minor IS NULL)",
        budget))


async def budget_days(connection: asyncpg.Connection, budget: str) -> Days:
    return Days.of((r["day"], int(r["requested_minor"]), int(r["granted_minor"])) for r in await connection.fetch(
        "SELECT day, requested_minor, granted_minor FROM verifier_budget_days WHERE budget = $1", budget))


async def before_on_day(connection: asyncpg.Connection, budget: str, rank: tuple[dt.date, str]
                        ) -> tuple[int, int]:
    """Granted and requested by the claims on `rank`'s day that rank before it."""
    row = await connection.fetchrow(
        "SELECT coalesce(sum(granted_minor), 0) AS granted, coalesce(sum(requested_minor), 0) AS requested"
        " FROM verifier_budget_requests WHERE budget = $1 AND occurred_on = $2 AND outcome_key < $3",
        budget, *rank)
    assert row is not None
    return int(row["granted"]), int(row["requested"])


async def claims_from(connection: asyncpg.Connection, budget: str, rank: tuple[dt.date, str],
                      inclusive: bool, limit: int) -> list[StoredClaim]:
    """The next `limit` claims of the budget in rank order, from `rank` on."""
    compare = ">=" if inclusive else ">"
    return [_claim(r) for r in await connection.fetch(
        f"SELECT {_CLAIM_COLUMNS} FROM verifier_budget_requests"
        f" WHERE budget = $1 AND (occurred_on, outcome_key) {compare} ($2, $3)"
        " ORDER BY occurred_on, outcome_key LIMIT $4", budget, *rank, limit)]


async def replace_budget_requests(connection: asyncpg.Connection, subjects: Sequence[str],
                                  requests: Sequence[BudgetRequest],
                                  grants: Mapping[str, int] | None = None) -> None:
    """These subjects' claims are now exactly `requests`, with their `grants`."""
    grants = grants or {}
    await connection.execute(
        "DELETE FROM verifier_budget_requests WHERE subject = ANY($1::text[])", list(subjects))
    await connection.execute(
        "INSERT INTO verifier_budget_requests (budget, outcome_key, subject, occurred_on,"
        " requested_minor, total_cap_minor, period_cap_minor, granted_minor)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::bigint[],"
        " $6::bigint[], $7::bigint[], $8::bigint[])",
        *_columns([(r.budget, r.outcome_key, r.subject, r.occurred_on, r.requested_minor,
                    r.total_cap_minor, r.period_cap_minor, grants.get(r.outcome_key)) for r in requests], 8))


async def set_grants(connection: asyncpg.Connection, budget: str, grants: Mapping[str, int]) -> None:
    """Claims of other subjects whose grant moved (or every claim of a budget granted in full)."""
    keys = sorted(grants)
    await connection.execute(
        "UPDATE verifier_budget_requests r SET granted_minor = g.granted"
        " FROM unnest($2::text[], $3::bigint[]) AS g(outcome_key, granted)"
        " WHERE r.budget = $1 AND r.outcome_key = g.outcome_key", budget, keys, [grants[k] for k in keys])


async def add_to_days(connection: asyncpg.Connection, budget: str,
                      deltas: Mapping[dt.date, tuple[int, int, int]]) -> None:
    """Add (requested, granted, claims) to the budget's day sums; drop days left empty."""
    days = sorted(d for d, delta in deltas.items() if any(delta))
    if not days:
        return
    await connection.execute(
        "INSERT INTO verifier_budget_days AS d (budget, day, requested_minor, granted_minor, claims)"
        " SELECT $1, * FROM unnest($2::date[], $3::bigint[], $4::bigint[], $5::int[])"
        " ON CONFLICT (budget, day) DO UPDATE SET requested_minor = d.requested_minor + EXCLUDED.requested_minor,"
        " granted_minor = d.granted_minor + EXCLUDED.granted_minor, claims = d.claims + EXCLUDED.claims",
        budget, days, *_columns([deltas[d] for d in days], 3))
    await connection.execute(
        "DELETE FROM verifier_budget_days WHERE budget = $1 AND day = ANY($2::date[]) AND claims = 0", budget, days)


async def recount_days(connection: asyncpg.Connection, budget: str) -> None:
    """The budget's day sums from its claims (after a full grant)."""
    await connection.execute("DELETE FROM verifier_budget_days WHERE budget = $1", budget)
    await connection.execute(
        "INSERT INTO verifier_budget_days (budget, day, requested_minor, granted_minor, claims)"
        " SELECT budget, occurred_on, sum(requested_minor), sum(granted_minor), count(*)"
        " FROM verifier_budget_requests WHERE budget = $1 GROUP BY budget, occurred_on", budget)


EPOCH = dt.date(1900, 1, 1)  # event time before any watermark
UNPARTITIONED = -1  # the watermark row of replays that consume no partition


async def watermarks(connection: asyncpg.Connection) -> dict[int, dt.date]:
    """Each transitions partition's watermark (the latest `stafet clock` mark read there)."""
    return {int(r["partition"]): r["today"] for r in await connection.fetch(
        "SELECT partition, today FROM verifier_clocks")}


async def advance_watermarks(connection: asyncpg.Connection, marks: Mapping[int, dt.date]) -> None:
    """Move each consumed partition's watermark forward to the latest mark read there
    (never back). Each partition's row is written only by the replica consuming it."""
    partitions = sorted(marks)
    if not partitions:
        return
    await connection.execute(
        "INSERT INTO verifier_clocks (partition, today) SELECT * FROM unnest($1::int[], $2::date[])"
        " ON CONFLICT (partition) DO UPDATE SET today = greatest(verifier_clocks.today, EXCLUDED.today)",
        partitions, [marks[p] for p in partitions])


def global_watermark(marks: Mapping[int, dt.date], partitions: Sequence[int]) -> dt.date:
    """The least watermark of all the topic's partitions: a partition without one holds
    event time at EPOCH (its facts may still be coming)."""
    return min((marks.get(p, EPOCH) for p in partitions), default=EPOCH)


FRONTIER_LOCK = "stafet-verifier-frontier"


async def lock_frontier(connection: asyncpg.Connection, exclusive: bool) -> None:
    """A batch that moves the frontier holds it alone; every other batch holds it shared,
    so no batch decides at a frontier that is moving under it."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await connection.execute(f"SELECT {function}(hashtext($1))", FRONTIER_LOCK)


async def frontier(connection: asyncpg.Connection) -> tuple[dt.date, dt.date]:
    """(final through, the global watermark last seen)."""
    row = await connection.fetchrow("SELECT final_through, watermark FROM verifier_frontier")
    return (EPOCH, EPOCH) if row is None else (row["final_through"], row["watermark"])


async def set_frontier(connection: asyncpg.Connection, final_through: dt.date, watermark: dt.date) -> None:
    await connection.execute(
        "UPDATE verifier_frontier SET final_through = greatest(final_through, $1),"
        " watermark = greatest(watermark, $2)", final_through, watermark)


async def note_watermark(connection: asyncpg.Connection, watermark: dt.date) -> None:
    """Remember a higher global watermark (for `work_left`); no row lock unless it moved."""
    await connection.execute("UPDATE verifier_frontier SET watermark = $1 WHERE watermark < $1", watermark)


async def next_known_after(connection: asyncpg.Connection, after: dt.date) -> dt.date | None:
    """The first day after `after` on which some partition's facts became known: the
    frontier stops there, so that each such day is decided as its own view."""
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT min(known_after) FROM verifier_events WHERE known_after > $1", after)


async def due_counts(connection: asyncpg.Connection, through: dt.date) -> list[tuple[dt.date, int]]:
    """Per day on or before `through` with timers due, how many (in day order)."""
    return [(r["due_on"], int(r["n"])) for r in await connection.fetch(
        "SELECT due_on, count(*) AS n FROM verifier_timers WHERE due_on <= $1 GROUP BY due_on ORDER BY due_on",
        through)]


async def known_after_of(connection: asyncpg.Connection, subjects: Iterable[str]
                         ) -> dict[tuple[str, str], dt.date]:
    """Per (reporter, event id) of these subjects' events, the watermark of its partition
    when it arrived."""
    return {(r["reported_by"], r["event_id"]): r["known_after"] for r in await connection.fetch(
        "SELECT reported_by, event_id, known_after FROM verifier_events WHERE subject = ANY($1::text[])",
        list(subjects))}


async def lock_subjects(connection: asyncpg.Connection, subjects: Iterable[str]) -> dict[str, int]:
    """Lock these subjects for the rest of the transaction, in one order (subject): two
    replicas never evaluate the same subject at once (one may hold it for a new event,
    the other for a due timer), and the later one reads what the earlier committed.
    Returns their streams' versions, which no one else can move while the locks hold."""
    return {r["subject"]: int(r["version"]) for r in await connection.fetch(
        "SELECT subject, version FROM verifier_subjects WHERE subject = ANY($1::text[])"
        " ORDER BY subject FOR UPDATE", sorted(set(subjects)))}


async def take_due_timers(connection: asyncpg.Connection, today: dt.date, limit: int | None) -> set[str]:
    """Remove and return the subjects whose timers are due (oldest first; at most `limit`
    unless None: every due timer)."""
    rows = await connection.fetch(
        "DELETE FROM verifier_timers WHERE (subject, due_on) IN ("
        " SELECT subject, due_on FROM verifier_timers WHERE due_on <= $1"
        " ORDER BY due_on, subject LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING subject",
        today, limit)
    return {r["subject"] for r in rows}


async def timers_due(connection: asyncpg.Connection, today: dt.date) -> int:
    return int(await connection.fetchval(
        "SELECT count(*) FROM verifier_timers WHERE due_on <= $1", today))


async def work_left(connection: asyncpg.Connection) -> int:
    """Outbox records not yet published, timers already due and a frontier behind the
    watermark: zero when the verifier has done everything the transitions it has
    consumed call for."""
    return int(await connection.fetchval(
        "SELECT (SELECT count(*) FROM verifier_outbox)"
        " + (SELECT count(*) FROM verifier_timers WHERE due_on <= (SELECT watermark FROM verifier_frontier))"
        " + (SELECT count(*) FROM verifier_frontier WHERE final_through < watermark)"))


async def work_due(connection: asyncpg.Connection) -> int:
    """Timers due by the global watermark, and a frontier behind it: what the ticker does."""
    return int(await connection.fetchval(
        "SELECT (SELECT count(*) FROM verifier_timers WHERE due_on <= (SELECT watermark FROM verifier_frontier))"
        " + (SELECT count(*) FROM verifier_frontier WHERE final_through < watermark)"))


async def work_left_at(database_url: str) -> int:
    """`work_left` over a connection of its own, for progress checks from outside the
    service; a database the verifier has not migrated yet counts as work ahead."""
    connection = await asyncpg.connect(database_url)
    try:
        return await work_left(connection)
    except asyncpg.UndefinedTableError:
        return 1
    finally:
        await connection.close()


async def save_contract(connection: asyncpg.Connection, contract: Contract) -> bool:
    """Remember a contract version; True if new. A new version re-evaluates everyone:
    it schedules every known subject as due now."""
    inserted = await connection.fetchval(
        "INSERT INTO verifier_contracts (contract_id, version, contract) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        contract.contract_id, contract.version, contract.model_dump_json())
    if inserted:
        await schedule_everyone(connection)
    return bool(inserted)


async def schedule_everyone(connection: asyncpg.Connection) -> None:
    """Make every known subject due now: each is re-evaluated under the current book."""
    await connection.execute(
        "INSERT INTO verifier_timers (subject, due_on) SELECT subject, DATE '1900-01-01'"
        " FROM verifier_subjects ON CONFLICT DO NOTHING")


async def load_contracts(connection: asyncpg.Connection) -> list[Contract]:
    return [Contract.model_validate_json(r["contract"]) for r in await connection.fetch(
        "SELECT contract FROM verifier_contracts ORDER BY contract_id, version")]


async def set_timers(connection: asyncpg.Connection, timers: Iterable[tuple[str, dt.date]]) -> None:
    await connection.executemany(
        "INSERT INTO verifier_timers (subject, due_on) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        list(timers))


async def enqueue(connection: asyncpg.Connection, records: Sequence[tuple[str, str, str]]) -> None:
    """Add (topic, key, payload) records to the outbox, in order."""
    await connection.execute(
        "INSERT INTO verifier_outbox (topic, key, payload)"
        " SELECT topic, key, payload"
        " FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(topic, key, payload, n)"
        " ORDER BY n", [r[0] for r in records], [r[1] for r in records], [r[2] for r in records])


RELAY_LOCK = "stafet-verifier-relay"


async def lock_relay(connection: asyncpg.Connection) -> None:
    """Make this transaction the only relay (of every replica) until it ends: two relays
    would read the same unpublished rows and publish them twice. Waits for the other
    relay's round, which publishes this replica's rows too if they were committed."""
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", RELAY_LOCK)


async def sign_outbox(connection: asyncpg.Connection, signer: RecordSigner) -> int:
    """Sign the outbox records this transaction wrote (and only those: a row another
    transaction wrote, with a database login, stays unsigned), as batches: one signature
    per tree of records, each record with its proof (shared/domain/signing.py). Returns
    how many were signed."""
    rows = await connection.fetch(
        "SELECT sequence, topic, key, payload FROM verifier_outbox"
        " WHERE signature IS NULL AND xmin::text::bigint = txid_current() % 4294967296 ORDER BY sequence")
    if not rows:
        return 0
    signed = signer.batch_headers([(r["topic"], r["key"].encode(), r["payload"].encode()) for r in rows])
    await connection.execute(
        "UPDATE verifier_outbox o SET key_id = s.key_id, signature = s.signature, batch_proof = s.batch_proof"
        " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS s(sequence, key_id, signature, batch_proof)"
        " WHERE o.sequence = s.sequence",
        [r["sequence"] for r in rows],
        *([_text(header(h, name)) for h in signed] for name in (KEY_ID_HEADER, SIGNATURE_HEADER, BATCH_PROOF_HEADER)))
    return len(rows)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("ascii")


async def unpublished(connection: asyncpg.Connection, limit: int
                      ) -> list[tuple[int, str, str, str, list[tuple[str, bytes]]]]:
    """The next records to publish, each with the signature headers stored with it (none
    when no verifier process signed it: the ledger refuses such a record)."""
    rows = await connection.fetch(
        "SELECT sequence, topic, key, payload, key_id, signature, batch_proof FROM verifier_outbox"
        " ORDER BY sequence LIMIT $1", limit)
    return [(r["sequence"], r["topic"], r["key"], r["payload"], _headers(r)) for r in rows]


def _headers(row: asyncpg.Record) -> list[tuple[str, bytes]]:
    found = [(name, row[column].encode()) for name, column in (
        (KEY_ID_HEADER, "key_id"), (SIGNATURE_HEADER, "signature"), (BATCH_PROOF_HEADER, "batch_proof"))
        if row[column] is not None]
    return found


async def mark_published(connection: asyncpg.Connection, sequences: Sequence[int]) -> None:
    """Published records leave the outbox: they are on Kafka now."""
    await connection.execute(
        "DELETE FROM verifier_outbox WHERE sequence = ANY($1::bigint[])",
        list(sequences))
