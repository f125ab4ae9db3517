"""Disputes in the portal (shared/domain/disputes.py): what an institution disputed and
what became of it, the outcome a dispute is about, and the publishing of a dispute.

The front door writes a dispute only as a record on the disputes topic, signed with its
own key (it authenticated the user, checked the role, the institution and the review
window); the ledger keeps the records (services/ledger/disputes.py), and the portal reads
them back from there. Every query names the session's institution, except the operator's
queue (operator.py's role check guards it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from services.frontdoor.portal.accounts import Role
from services.frontdoor.portal.queries import event_time
from services.frontdoor.portal.sessions import Session
from services.frontdoor.portal.statement import provisional_line
from shared.domain.contracts.payments import IssuedInstruction, derived_from
from shared.domain.disputes import (
    NOTE_LENGTH_MAX,
    DisputeOpened,
    DisputeReason,
    DisputeResolved,
    DisputeState,
    window_refusal,
)
from shared.domain.events import PaymentKind

PENDING_STATUSES = ("pending_review", "pending_sustainment")  # not final: in the review window
Publish = Callable[[DisputeOpened | DisputeResolved], Awaitable[None]]


@dataclass(frozen=True)
class DisputableOutcome:
    """An outcome that names the institution among its payees, final or not."""

    outcome_key: str
    reference: str
    contract_id: str
    outcome_id: str
    status: str
    window_closes_on: dt.date   # the decision date: final from then
    event_time: dt.date         # the verifier's finality frontier now


@dataclass(frozen=True)
class DisputeView:
    dispute_id: str
    institution: str
    outcome_key: str
    state: DisputeState
    reason: str
    note: str
    opened_by: str
    opened_on: dt.date
    window_closes_on: dt.date
    opened_at: dt.datetime
    decision_note: str = ""        # the operator's words (a rejection's reason)
    decided_by: str = ""
    decided_on: dt.date | None = None
    correcting: tuple[str, str] | None = None  # upheld: (reporter, event id) of the correcting event
    requested_from: str | None = None          # a correction requested: of this source
    # Kept by the ledger after a payment of the outcome went out in this live payout run
    # (`already_in_payout_run`): the operator voids the run, or recovers the money.
    in_payout_run: str | None = None

    @property
    def holding(self) -> bool:
        return self.state in (DisputeState.OPEN, DisputeState.CORRECTION_REQUESTED)


def dispute_view(row: Mapping[str, object]) -> DisputeView:
    opened = json.loads(str(row["opened_record"]))
    latest = json.loads(str(row["latest_record"]))
    decided = latest.get("kind") == "dispute_resolved"
    opened_at = row["opened_at"]
    assert isinstance(opened_at, dt.datetime)
    return DisputeView(
        dispute_id=str(row["dispute_id"]), institution=str(row["institution"]), outcome_key=str(row["outcome_key"]),
        state=DisputeState(str(row["state"])), reason=opened["reason"], note=opened.get("note", ""),
        opened_by=opened["opened_by"], opened_on=dt.date.fromisoformat(opened["opened_on"]),
        window_closes_on=dt.date.fromisoformat(opened["window_closes_on"]), opened_at=opened_at,
        decision_note=latest.get("note", "") if decided else "", decided_by=latest.get("resolved_by", "") if decided
        else "", decided_on=dt.date.fromisoformat(latest["resolved_on"]) if decided else None,
        correcting=(latest["correcting_reported_by"], latest["correcting_event_id"])
        if decided and latest.get("correcting_event_id") else None,
        requested_from=latest.get("requested_from") if decided else None,
        in_payout_run=str(row["in_payout_run"]) if row.get("in_payout_run") else None)


@dataclass(frozen=True)
class CorrectionRequest:
    """An operator asks this institution (the authoritative source) to correct what it
    reported about a child: the request, and the institution's own events about the child
    (its references: the disputing institution and the child's other facts are not shown)."""

    dispute_id: str
    contract_id: str
    outcome_id: str
    note: str
    requested_on: dt.date | None
    own_events: tuple[Fact, ...]


class DisputeDesk(Protocol):
    async def corrections_requested_of(self, institution: str) -> list[CorrectionRequest]: ...
    async def open_disputes(self, contracts: Sequence[str] | None = None) -> list[DisputeView]: ...
    async def dispute_with_evidence(self, dispute: str) -> tuple[DisputeView, Evidence] | None: ...
    async def outcome(self, institution: str, reference: str) -> DisputableOutcome | None: ...
    async def disputes_of_outcome(self, institution: str, outcome_key: str) -> list[DisputeView]: ...
    async def disputes_of_payment(self, institution: str, payment_id: str) -> list[DisputeView]: ...
    async def publish(self, record: DisputeOpened | DisputeResolved) -> None: ...
    async def correction_landed(self, outcome_key: str, event_id: str) -> bool: ...


# The outcome by its reference (a hash of its key: provisional_reference), whatever its
# status now, if it names the institution among its payees.
_OUTCOME = """
SELECT o.outcome_key, o.status, o.decision, c.contract::json -> 'caps' ->> 'review_days' AS review_days
  FROM verifier_outcomes o
  JOIN verifier_contracts c
    ON c.contract_id = o.contract_id AND c.version = (o.decision::json ->> 'contract_version')::int
 WHERE substr(encode(sha256(convert_to(o.outcome_key, 'UTF8')), 'hex'), 1, 32) = $2
   AND o.decision::jsonb -> 'payees' @> jsonb_build_array(jsonb_build_array($1::text))
"""

_STATES = "SELECT * FROM ledger_dispute_states"


class PostgresDisputeDesk:
    def __init__(self, pool: asyncpg.Pool, publish: Publish) -> None:
        self._pool = pool
        self._publish = publish

    async def outcome(self, institution: str, reference: str) -> DisputableOutcome | None:
        async with self._pool.acquire() as connection:
            now = await event_time(connection)
            row = await connection.fetchrow(_OUTCOME, institution, reference)
        if row is None:
            return None
        decision = json.loads(row["decision"])
        line = provisional_line(reference, institution, decision, int(row["review_days"] or 0), now)
        if line is None:
            return None
        return DisputableOutcome(row["outcome_key"], reference, line.contract_id, line.outcome_id, row["status"],
                                 line.decided_on, now)

    async def disputes_of_outcome(self, institution: str, outcome_key: str) -> list[DisputeView]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(f"{_STATES} WHERE institution = $1 AND outcome_key = $2 ORDER BY opened_at",
                                          institution, outcome_key)
        return [dispute_view(r) for r in rows]

    async def disputes_of_payment(self, institution: str, payment_id: str) -> list[DisputeView]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"{_STATES} d WHERE d.institution = $1 AND d.outcome_key IN ("
                " SELECT e.contract_id || '|' || e.outcome_id || '|' || e.subject || '|' || e.trigger_event_id"
                "   FROM ledger_entries e WHERE e.payment_id = $2 AND e.payee = $1 AND e.payee_role = 'institution')"
                " ORDER BY d.opened_at", institution, payment_id)
        return [dispute_view(r) for r in rows]

    async def publish(self, record: DisputeOpened | DisputeResolved) -> None:
        await self._publish(record)

    async def correction_landed(self, outcome_key: str, event_id: str) -> bool:
        """Whether the ledger holds an adjustment of the outcome derived from the correcting
        event (services/ledger/payouts.py holds an upheld dispute's payments until it does)."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT payment_id, kind, reverses_payment_id, payee, payee_role FROM ledger_entries"
                " WHERE kind IN ('payment', 'clawback') AND contract_id = $1 AND outcome_id = $2 AND subject = $3"
                " AND trigger_event_id = $4 ORDER BY sequence", *outcome_key.split("|", 3))
        return derived_from(event_id, [IssuedInstruction(r["payment_id"], PaymentKind(r["kind"]),
                                                         r["reverses_payment_id"], outcome_key, r["payee"],
                                                         r["payee_role"]) for r in rows])

    async def open_disputes(self, contracts: Sequence[str] | None = None) -> list[DisputeView]:
        return await open_disputes(self._pool, contracts)

    async def dispute_with_evidence(self, dispute: str) -> tuple[DisputeView, Evidence] | None:
        return await dispute_with_evidence(self._pool, dispute)

    async def corrections_requested_of(self, institution: str) -> list[CorrectionRequest]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"{_STATES} WHERE state = 'correction_requested' AND latest_record ->> 'requested_from' = $1"
                " ORDER BY changed_at, dispute_id LIMIT $2", institution, QUEUE_MAX)
            found = []
            for row in rows:
                view = dispute_view(row)
                events = await connection.fetch(
                    "SELECT transition FROM verifier_events WHERE subject = $1 AND reported_by = $2 ORDER BY version",
                    subject_of(view.outcome_key), institution)
                contract_id, outcome_id = view.outcome_key.split("|")[:2]
                found.append(CorrectionRequest(view.dispute_id, contract_id, outcome_id, view.decision_note,
                                               view.decided_on,
                                               tuple(fact_of(json.loads(e["transition"])) for e in events)))
        return found


def may_dispute(session: Session, outcome: DisputableOutcome, disputes: list[DisputeView]) -> bool:
    return (session.user.role == Role.ADMINISTRATOR and not disputes and outcome.status in PENDING_STATUSES
            and window_refusal(outcome.window_closes_on, outcome.event_time) is None)


def dispute_context(session: Session, outcome: DisputableOutcome | None, disputes: list[DisputeView],
                    query: Mapping[str, str]) -> dict[str, Any]:
    """What the line's template needs to show the disputes and, if allowed, the form."""
    return {"disputes": disputes, "dispute_reasons": [reason.value for reason in DisputeReason],
            "may_dispute": outcome is not None and may_dispute(session, outcome, disputes),
            "viewer_only": session.user.role != Role.ADMINISTRATOR,
            "dispute_sent": query.get("disputed") == "1" and not disputes,
            "note_length_max": NOTE_LENGTH_MAX}


# ---- the operator's queue (role operator only: operator_disputes.py checks it) -------------

QUEUE_MAX = 500


@dataclass(frozen=True)
class Fact:
    """One fact of the child's stream as the verifier holds it: what the decision used."""

    event_id: str
    reported_by: str
    occurred_on: dt.date
    type: str
    institution: str            # the institution a stay names, "" for other facts
    corrects: str               # for a retraction or amendment: the event it corrects
    recorded_at: dt.datetime | None = None  # when the verifier stored it (none: not known)


@dataclass(frozen=True)
class Evidence:
    """The verifier's decision on the disputed outcome now, and the facts it holds."""

    status: str | None
    reason: str | None
    counts_on: dt.date | None
    owed_minor: int | None
    currency: str
    payees: tuple[tuple[str, int], ...]
    facts: tuple[Fact, ...]


def subject_of(outcome_key: str) -> str:
    """contract|outcome|subject|trigger: the subject's pseudonym."""
    return outcome_key.split("|")[2]


def fact_of(transition: Mapping[str, Any], recorded_at: dt.datetime | None = None) -> Fact:
    body = transition.get("body") or {}
    corrected = body.get("retracts_event_id") or body.get("amends_event_id") or ""
    return Fact(str(transition["event_id"]), str(transition["reported_by"]),
                dt.date.fromisoformat(str(transition["occurred_on"])), str(body.get("type", "")),
                str(body.get("institution", "") or (body.get("body") or {}).get("institution", "") or ""),
                str(corrected), recorded_at)


async def open_disputes(pool: asyncpg.Pool, contracts: Sequence[str] | None = None) -> list[DisputeView]:
    """Disputes that hold money now, the oldest first; `contracts`: only on these (a
    tenant's operator's scope), filtered before the queue's bound, so that other tenants'
    older disputes never crowd a tenant's own out of its queue."""
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            f"{_STATES} WHERE state IN ('open', 'correction_requested')"
            " AND ($2::text[] IS NULL OR split_part(outcome_key, '|', 1) = ANY($2::text[]))"
            " ORDER BY opened_at, dispute_id LIMIT $1",
            QUEUE_MAX, None if contracts is None else list(contracts))
    return [dispute_view(r) for r in rows]


async def dispute_with_evidence(pool: asyncpg.Pool, dispute: str) -> tuple[DisputeView, Evidence] | None:
    async with pool.acquire() as connection:
        row = await connection.fetchrow(f"{_STATES} WHERE dispute_id = $1", dispute)
        if row is None:
            return None
        decided = await connection.fetchrow(
            "SELECT status, reason, decision FROM verifier_outcomes WHERE outcome_key = $1", row["outcome_key"])
        stream = await connection.fetch(
            "SELECT transition, recorded_at FROM verifier_events WHERE subject = $1 ORDER BY version",
            subject_of(row["outcome_key"]))
    decision = json.loads(decided["decision"]) if decided is not None else {}
    evidence = Evidence(
        status=decided["status"] if decided else None, reason=decided["reason"] if decided else None,
        counts_on=dt.date.fromisoformat(decision["occurred_on"]) if decision.get("occurred_on") else None,
        owed_minor=int(decision["owed_minor"]) if "owed_minor" in decision else None,
        currency=str(decision.get("currency", "")),
        payees=tuple((str(p), int(a)) for p, a in decision.get("payees") or ()),
        facts=tuple(fact_of(json.loads(r["transition"]), r["recorded_at"]) for r in stream))
    return dispute_view(row), evidence
