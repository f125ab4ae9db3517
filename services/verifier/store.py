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


async def append(connection: asyncpg.Connection, transitions: Sequence[Transition]) -> Appended:
    """Append the transitions not yet stored, each subject's in the order given; the
    subjects that got new events are locked for the rest of the transaction."""
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
    columns: tuple[list[object], ...] = ([], [], [], [], [], [])
    per_subject: dict[str, list[Transition]] = {}
    for transition in fresh:
        versions[transition.subject] += 1
        per_subject.setdefault(transition.subject, []).append(transition)
        for column, value in zip(columns, (transition.subject, versions[transition.subject], transition.event_id,
                                           transition.occurred_on, transition.model_dump_json(),
                                           transition.reported_by), strict=True):
            column.append(value)
    # One statement per table (unnest), not one per row: batches are written in bulk.
    await connection.execute(
        "INSERT INTO verifier_events (subject, version, event_id, occurred_on, transition, reported_by)"
        " SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::date[], $5::text[], $6::text[])", *columns)
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
                          payloads: Sequence[str] | None = None) -> None:
    """`payloads`: the instructions as JSON, if the caller has them already."""
    await connection.execute(
        "INSERT INTO verifier_payments (payment_id, subject, contract_id, instruction)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])",
        [i.payment_id for i in instructions], [i.subject for i in instructions],
        [i.contract_id for i in instructions],
        list(payloads) if payloads is not None else [i.model_dump_json() for i in instructions])


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


EPOCH = dt.date(1900, 1, 1)  # the clock before anything was seen
UNPARTITIONED = -1  # the clock row of replays that consume no partition


async def advance_clock(connection: asyncpg.Connection, seen: Mapping[int, dt.date]) -> dt.date:
    """Move each consumed partition's clock forward to what it saw there (never back);
    return event time: the latest date any partition has seen.

    Each partition's row is written only by the replica consuming that partition, so
    replicas do not wait on one another here; the others' clocks are read, not locked
    (a clock another replica has not committed yet counts from its next batch on)."""
    partitions = sorted(seen)
    today = await connection.fetchval(
        "WITH moved AS (INSERT INTO verifier_clocks (partition, today)"
        " SELECT * FROM unnest($1::int[], $2::date[])"
        " ON CONFLICT (partition) DO UPDATE SET today = greatest(verifier_clocks.today, EXCLUDED.today)"
        " RETURNING today)"
        " SELECT greatest((SELECT max(today) FROM verifier_clocks), (SELECT max(today) FROM moved))",
        partitions, [seen[p] for p in partitions])
    return today or EPOCH  # type: ignore[no-any-return]


async def clock_today(connection: asyncpg.Connection) -> dt.date:
    """Event time as the last committed batches left it."""
    return await connection.fetchval(  # type: ignore[no-any-return]
        "SELECT coalesce(max(today), $1) FROM verifier_clocks", EPOCH)


async def lock_subjects(connection: asyncpg.Connection, subjects: Iterable[str]) -> dict[str, int]:
    """Lock these subjects for the rest of the transaction, in one order (subject): two
    replicas never evaluate the same subject at once (one may hold it for a new event,
    the other for a due timer), and the later one reads what the earlier committed.
    Returns their streams' versions, which no one else can move while the locks hold."""
    return {r["subject"]: int(r["version"]) for r in await connection.fetch(
        "SELECT subject, version FROM verifier_subjects WHERE subject = ANY($1::text[])"
        " ORDER BY subject FOR UPDATE", sorted(set(subjects)))}


async def take_due_timers(connection: asyncpg.Connection, today: dt.date, limit: int) -> set[str]:
    """Remove and return at most `limit` subjects whose timers are due (oldest first)."""
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
    """Outbox records not yet published plus timers already due: zero when the verifier
    has done everything the transitions it has consumed call for."""
    return int(await connection.fetchval(
        "SELECT (SELECT count(*) FROM verifier_outbox)"
        " + (SELECT count(*) FROM verifier_timers"
        "    WHERE due_on <= (SELECT coalesce(max(today), $1) FROM verifier_clocks))", EPOCH))


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


async def unpublished(connection: asyncpg.Connection, limit: int
                      ) -> list[tuple[int, str, str, str]]:
    rows = await connection.fetch(
        "SELECT sequence, topic, key, payload FROM verifier_outbox"
        " ORDER BY sequence LIMIT $1", limit)
    return [(r["sequence"], r["topic"], r["key"], r["payload"]) for r in rows]


async def mark_published(connection: asyncpg.Connection, sequences: Sequence[int]) -> None:
    """Published records leave the outbox: they are on Kafka now."""
    await connection.execute(
        "DELETE FROM verifier_outbox WHERE sequence = ANY($1::bigint[])",
        list(sequences))
