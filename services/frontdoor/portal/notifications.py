"""Notifications (issue 29, item 5): when a review window opens for an institution, an
e-mail to the address its administrator registered in the portal; and when an operator
requests a correction of it (the source of a disputed fact), one e-mail per request.

A window opens for an institution when an outcome that names it among its payees is
provisional (the verifier's `pending_review` or `pending_sustainment`). The front door looks
every FRONT_DOOR_NOTIFY_INTERVAL_S seconds: each (institution, outcome) is queued once
(`portal_notifications`, primary key: idempotent, however often it looks and however many
replicas look), and the due ones are sent, one e-mail per institution listing its newly
opened windows. SMTP cannot promise exactly once: a crash after the server took a message
and before the row says so sends it again, under the same Message-ID (derived from the
institution and its outcomes), so a mail system can drop the duplicate.

Bounded: at most INSTITUTIONS_PER_CYCLE_MAX e-mails per cycle, LINES_PER_MAIL_MAX windows in
one, an SMTP conversation of SMTP_TIMEOUT_S; a failed delivery is tried again after
retry_delay_s (doubling from RETRY_BASE_S up to RETRY_MAX_S) and given up after ATTEMPTS_MAX
attempts (state `failed`, with the last error). Rows are claimed with FOR UPDATE SKIP LOCKED
in a short transaction that counts the attempt and leases them (CLAIM_LEASE_S), so two
replicas never send the same one at once; no transaction is open while a mail server talks.

The e-mail names no child: the contract, the outcome, the institution's amount, the day
the window closes and the days left; the details are behind the log-in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import smtplib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

import asyncpg
import structlog

from services.frontdoor.portal import i18n
from services.frontdoor.portal.queries import event_time, provisional_reference
from services.frontdoor.portal.statement import ProvisionalLine, provisional_line
from shared.domain.institutions import InstitutionRegistry
from shared.platform import metrics

log = structlog.get_logger("frontdoor.notifications")

ATTEMPTS_MAX = 6
RETRY_BASE_S = 60.0
RETRY_MAX_S = 3600.0
INSTITUTIONS_PER_CYCLE_MAX = 50
LINES_PER_MAIL_MAX = 50
SMTP_TIMEOUT_S = 10.0
# A claimed row is due again after this if no result was recorded (a crash mid-cycle):
# longer than a cycle's sends can take (INSTITUTIONS_PER_CYCLE_MAX conversations of a few
# SMTP_TIMEOUT_S steps each), so that two replicas never send the same row at once.
CLAIM_LEASE_S = 1800.0
BACKOFF_MAX_S = 900.0  # the longest wait after cycles that raised
NO_RESULT = "no result was recorded for the last attempt (the front door stopped while sending?)"
ERROR_LENGTH_MAX = 300
WINDOW_CLOSED = "the review window closed before the e-mail was sent"
REQUEST_DECIDED = "the dispute was decided before the e-mail was sent"
EMAIL_LENGTH_MAX = 254
# One address, no display name, no line breaks (a header can carry nothing else).
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")

SendMail = Callable[[EmailMessage], Awaitable[None]]


def valid_email(address: str) -> bool:
    return len(address) <= EMAIL_LENGTH_MAX and EMAIL_PATTERN.fullmatch(address) is not None


def retry_delay_s(attempts: int) -> float:
    """How long after the `attempts`-th failed delivery the next is tried."""
    return float(min(RETRY_BASE_S * 2 ** max(0, attempts - 1), RETRY_MAX_S))


def message_id(institution: str, outcome_keys: list[str]) -> str:
    """The same institution and windows: the same message, however often it is sent."""
    digest = hashlib.sha256("|".join([institution, *sorted(outcome_keys)]).encode()).hexdigest()[:40]
    return f"<{digest}@stafet.portal>"


def window_message(institution_name: str, address: str, mail_from: str, lines: list[ProvisionalLine],
                   titles: dict[str, str], portal_url: str, outcome_keys: list[str], institution: str) -> EmailMessage:
    """The e-mail, in Danish and then English: what opened, for how long, where to look."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = address
    message["Subject"] = f"Stafet: {len(lines)} resultat(er) i indsigelsesfristen for {institution_name}"
    message["Message-ID"] = message_id(institution, outcome_keys)
    link = f"{portal_url.rstrip('/')}/portal/statement" if portal_url else "portalen"
    danish = [f"Til {institution_name}:", "",
              "Disse resultater udløser penge til jer, når deres indsigelsesfrist udløber. Tjek dem nu; "
              f"en administrator kan gøre indsigelse i portalen: {link}", ""]
    english = ["", f"To {institution_name}:", "",
               "These outcomes will pay you once their review window closes. Check them now; an "
               f"administrator may dispute them in the portal: {link}", ""]
    for line in lines:
        title = titles.get(line.contract_id, line.contract_id)
        danish.append(f"- {title}, {line.outcome_id}: {i18n.money(line.own_minor, line.currency, 'da')}, "
                      f"endelig {i18n.day(line.decided_on, 'da')} ({line.days_left} dage tilbage), "
                      f"reference {line.reference}")
        english.append(f"- {title}, {line.outcome_id}: {i18n.money(line.own_minor, line.currency, 'en')}, "
                       f"final on {i18n.day(line.decided_on, 'en')} ({line.days_left} days left), "
                       f"reference {line.reference}")
    message.set_content("\n".join(danish + english) + "\n")
    return message


def correction_message(institution_name: str, address: str, mail_from: str, note: str, contract_title: str,
                       outcome_id: str, own_events: list[tuple[str, dt.date]], portal_url: str,
                       request_id: str) -> EmailMessage:
    """An operator asks the institution to correct what it reported: the request and the
    institution's own event ids about the child (its references; nothing of anyone else's)."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = address
    message["Subject"] = f"Stafet: en rettelse ønskes fra {institution_name}"
    message["Message-ID"] = f"<{request_id}@stafet.portal>"
    link = f"{portal_url.rstrip('/')}/portal/statement" if portal_url else "portalen"
    events = ", ".join(f"{event_id} ({i18n.day(day, 'da')})" for event_id, day in own_events) or "-"
    english_events = ", ".join(f"{event_id} ({i18n.day(day, 'en')})" for event_id, day in own_events) or "-"
    message.set_content("\n".join([
        f"Til {institution_name}:", "",
        f"En operatør beder jer rette det, I har indberettet om et barn ({contract_title}, {outcome_id}).",
        f"Operatørens bemærkning: {note}", f"Jeres hændelser om barnet: {events}",
        f"Send rettelsen, som I sender alle hændelser. Se anmodningen i portalen: {link}", "",
        f"To {institution_name}:", "",
        f"An operator asks you to correct what you reported about a child ({contract_title}, {outcome_id}).",
        f"The operator's note: {note}", f"Your events about the child: {english_events}",
        f"Send the correction as you send any event. The request is in the portal: {link}", ""]))
    return message


def smtp_sender(host: str, port: int) -> SendMail:
    """Send through an SMTP server (a relay on the cluster, or a local sink in tests)."""
    def send(message: EmailMessage) -> None:
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S) as server:
            server.send_message(message)

    async def send_async(message: EmailMessage) -> None:
        await asyncio.to_thread(send, message)

    return send_async


@dataclass(frozen=True)
class CycleReport:
    queued: int
    sent: int
    retried: int
    failed: int


_ENQUEUE = """
INSERT INTO portal_notifications (institution, outcome_key, email, kind, about)
SELECT a.institution, o.outcome_key, a.email, 'window_opened', ''
  FROM portal_notification_addresses a
  JOIN verifier_outcomes o
    ON o.status IN ('pending_review', 'pending_sustainment')
   AND o.decision::jsonb -> 'payees' @> jsonb_build_array(jsonb_build_array(a.institution))
ON CONFLICT (institution, outcome_key, kind, about) DO NOTHING
"""

# A correction requested of an institution with an address: one e-mail per request.
_ENQUEUE_CORRECTIONS = """
INSERT INTO portal_notifications (institution, outcome_key, email, kind, about)
SELECT a.institution, d.outcome_key, a.email, 'correction_requested', d.latest_record ->> 'resolution_id'
  FROM portal_notification_addresses a
  JOIN ledger_dispute_states d
    ON d.state = 'correction_requested' AND d.latest_record ->> 'requested_from' = a.institution
ON CONFLICT (institution, outcome_key, kind, about) DO NOTHING
"""

# Due correction notices, with the request if it still stands (NULL: decided since).
_DUE_CORRECTIONS = """
SELECT n.id, n.institution, n.outcome_key, n.email, n.attempts, n.about, d.latest_record
  FROM portal_notifications n
  LEFT JOIN ledger_dispute_states d
    ON d.outcome_key = n.outcome_key AND d.state = 'correction_requested'
   AND d.latest_record ->> 'resolution_id' = n.about
 WHERE n.kind = 'correction_requested' AND n.state = 'pending' AND n.next_attempt_at <= clock_timestamp()
 ORDER BY n.created_at, n.id
 LIMIT $1
   FOR UPDATE OF n SKIP LOCKED
"""

# Rows whose last attempt was claimed and never recorded (a crash), with no attempt left.
_GIVE_UP_UNRECORDED = """
UPDATE portal_notifications SET state = 'failed', last_error = $2
 WHERE state = 'pending' AND attempts >= $1 AND next_attempt_at <= clock_timestamp()
"""

_DUE = """
SELECT n.id, n.institution, n.outcome_key, n.email, n.attempts, o.status, o.decision,
       c.contract::json -> 'caps' ->> 'review_days' AS review_days
  FROM portal_notifications n
  JOIN verifier_outcomes o ON o.outcome_key = n.outcome_key
  JOIN verifier_contracts c
    ON c.contract_id = o.contract_id AND c.version = (o.decision::json ->> 'contract_version')::int
 WHERE n.kind = 'window_opened' AND n.state = 'pending' AND n.next_attempt_at <= clock_timestamp()
 ORDER BY n.created_at, n.institution, n.outcome_key
 LIMIT $1
   FOR UPDATE OF n SKIP LOCKED
"""


@dataclass(frozen=True)
class _Mail:
    """One e-mail to send for some claimed notification rows."""

    message: EmailMessage
    ids: list[int]
    attempts: int   # counting this one (counted when the rows were claimed)
    what: str       # the kind, for the log


async def notify_once(pool: asyncpg.Pool, send: SendMail, registry: InstitutionRegistry, mail_from: str,
                      portal_url: str) -> CycleReport:
    """Queue what opened (and what was requested) since the last look, and send what is due: one cycle.

    Three steps, none of which holds a transaction across the network: claim the due rows in
    one short transaction (each claim counts an attempt and leases the row for CLAIM_LEASE_S,
    so that a crash or a lost result retries it like a failure, never more than ATTEMPTS_MAX
    times); send each e-mail outside any transaction; record each result on its own."""
    async with pool.acquire() as connection, connection.transaction():
        queued = int((await connection.execute(_ENQUEUE)).split()[-1])
        queued += int((await connection.execute(_ENQUEUE_CORRECTIONS)).split()[-1])
        await connection.execute(_GIVE_UP_UNRECORDED, ATTEMPTS_MAX, NO_RESULT)
        titles = {r["contract_id"]: r["title"] or r["contract_id"] for r in await connection.fetch(
            "SELECT DISTINCT ON (contract_id) contract_id, contract::json ->> 'title' AS title"
            " FROM verifier_contracts ORDER BY contract_id, version DESC")}
        mails = await _windows(connection, registry, mail_from, portal_url, titles)
        mails += await _corrections(connection, registry, mail_from, portal_url, titles)
        await connection.execute(
            "UPDATE portal_notifications SET attempts = attempts + 1,"
            " next_attempt_at = clock_timestamp() + $2::interval WHERE id = ANY($1::bigint[])",
            [i for mail in mails for i in mail.ids], dt.timedelta(seconds=CLAIM_LEASE_S))
    sent = retried = failed = 0
    for mail in mails:
        outcome = await _deliver(pool, send, mail)
        sent, retried, failed = sent + (outcome == "sent"), retried + (outcome == "retry"), failed + (outcome == "failed")
    return CycleReport(queued, sent, retried, failed)


async def _deliver(pool: asyncpg.Pool, send: SendMail, mail: _Mail) -> str:
    """Send one e-mail (no transaction open) and record what became of it: sent, retry, failed.
    Anything the send raises is that row's failed attempt: an odd address or message never
    stops the cycle, and after ATTEMPTS_MAX it is given up like any other."""
    try:
        await send(mail.message)
    except Exception as error:  # every failure of one send is that row's, recorded below
        if not isinstance(error, OSError | smtplib.SMTPException):
            log.error("notification_send_failed", kind=mail.what, attempts=mail.attempts, exc_info=error)
        gave_up = mail.attempts >= ATTEMPTS_MAX
        async with pool.acquire() as connection:
            await connection.execute(
                "UPDATE portal_notifications SET last_error = $2,"
                " state = CASE WHEN $3 THEN 'failed' ELSE 'pending' END,"
                " next_attempt_at = clock_timestamp() + $4::interval WHERE id = ANY($1::bigint[])",
                mail.ids, f"{type(error).__name__}: {error}"[:ERROR_LENGTH_MAX], gave_up,
                dt.timedelta(seconds=retry_delay_s(mail.attempts)))
        return "failed" if gave_up else "retry"
    async with pool.acquire() as connection:
        await connection.execute("UPDATE portal_notifications SET state = 'sent', sent_at = clock_timestamp()"
                                 " WHERE id = ANY($1::bigint[])", mail.ids)
    return "sent"


async def _drop(connection: asyncpg.Connection, rows: list[asyncpg.Record], why: str) -> None:
    """Nothing to tell any more: the window closed, or the request was decided, first."""
    await connection.execute("UPDATE portal_notifications SET state = 'failed', last_error = $2"
                             " WHERE id = ANY($1::bigint[])", [r["id"] for r in rows], why)


async def _windows(connection: asyncpg.Connection, registry: InstitutionRegistry, mail_from: str,
                   portal_url: str, titles: dict[str, str]) -> list[_Mail]:
    now = await event_time(connection)
    rows = await connection.fetch(_DUE, INSTITUTIONS_PER_CYCLE_MAX * LINES_PER_MAIL_MAX)
    groups: dict[tuple[str, str], list[asyncpg.Record]] = {}
    for row in rows:
        group = groups.setdefault((row["institution"], row["email"]), [])
        if len(groups) <= INSTITUTIONS_PER_CYCLE_MAX and len(group) < LINES_PER_MAIL_MAX:
            group.append(row)
    mails = []
    for (institution, address), members in list(groups.items())[:INSTITUTIONS_PER_CYCLE_MAX]:
        lines, open_rows, closed = [], [], []
        for r in members:
            line = provisional_line(provisional_reference(r["outcome_key"]), institution,
                                    json.loads(r["decision"]), int(r["review_days"] or 0), now)
            if line is None or line.days_left <= 0 or r["status"] not in ("pending_review", "pending_sustainment"):
                closed.append(r)
            else:
                lines.append(line)
                open_rows.append(r)
        if closed:
            await _drop(connection, closed, WINDOW_CLOSED)
        if lines:
            found = registry.get(institution)
            mails.append(_Mail(window_message(found.name if found else institution, address, mail_from, lines, titles,
                                              portal_url, [r["outcome_key"] for r in open_rows], institution),
                               [r["id"] for r in open_rows], max(r["attempts"] for r in open_rows) + 1,
                               "window_opened"))
    return mails


async def _corrections(connection: asyncpg.Connection, registry: InstitutionRegistry,
                       mail_from: str, portal_url: str, titles: dict[str, str]) -> list[_Mail]:
    mails = []
    for row in await connection.fetch(_DUE_CORRECTIONS, INSTITUTIONS_PER_CYCLE_MAX):
        if row["latest_record"] is None:
            await _drop(connection, [row], REQUEST_DECIDED)
            continue
        contract_id, outcome_id, subject = row["outcome_key"].split("|")[:3]
        events = await connection.fetch(
            "SELECT event_id, occurred_on FROM verifier_events WHERE subject = $1 AND reported_by = $2"
            " ORDER BY version LIMIT $3", subject, row["institution"], LINES_PER_MAIL_MAX)
        found = registry.get(row["institution"])
        message = correction_message(
            found.name if found else row["institution"], row["email"], mail_from,
            str(json.loads(row["latest_record"]).get("note", "")), titles.get(contract_id, contract_id), outcome_id,
            [(e["event_id"], e["occurred_on"]) for e in events], portal_url, row["about"])
        mails.append(_Mail(message, [row["id"]], row["attempts"] + 1, "correction_requested"))
    return mails


async def notify_forever(cycle: Callable[[], Awaitable[CycleReport]], interval_s: float,
                         sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Run `cycle` every `interval_s` until cancelled. A cycle that raises (the database
    away, or a bug one odd row trips) is logged with its exception and counted
    (`stafet_frontdoor_notification_cycles_failed_total`), and the next waits longer
    (doubling, at most BACKOFF_MAX_S): neither the notifier nor the front door stops."""
    failures = 0
    while True:
        try:
            report = await cycle()
        except Exception as error:  # logged and counted; the front door keeps serving
            failures += 1
            metrics.NOTIFICATION_CYCLES_FAILED.inc()
            log.error("notifications_failed", error=type(error).__name__, failures=failures, exc_info=error)
        else:
            failures = 0
            if report.queued or report.sent or report.retried or report.failed:
                log.info("notifications", queued=report.queued, sent=report.sent, retried=report.retried,
                         failed=report.failed)
        await sleep(min(interval_s * 2 ** min(failures, 16), max(interval_s, BACKOFF_MAX_S)))


class NotificationAddresses:
    """Where an institution wants to hear of its review windows (its administrators set it)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def address(self, institution: str) -> str | None:
        async with self._pool.acquire() as connection:
            found: str | None = await connection.fetchval(
                "SELECT email FROM portal_notification_addresses WHERE institution = $1", institution)
        return found

    async def set_address(self, institution: str, address: str | None, by: str) -> None:
        async with self._pool.acquire() as connection:
            if address is None:
                await connection.execute("DELETE FROM portal_notification_addresses WHERE institution = $1",
                                         institution)
                return
            await connection.execute(
                "INSERT INTO portal_notification_addresses (institution, email, set_by) VALUES ($1, $2, $3)"
                " ON CONFLICT (institution) DO UPDATE SET email = $2, set_by = $3, set_at = clock_timestamp()",
                institution, address, by)
