"""Notifications (issue 29, item 5): when a review window opens for an institution, an
e-mail to the address its administrator registered in the portal.

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
attempts (state `failed`, with the last error). Rows are claimed with FOR UPDATE SKIP LOCKED,
so two replicas never send the same one at once.

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

from services.frontdoor.portal import i18n
from services.frontdoor.portal.queries import event_time, provisional_reference
from services.frontdoor.portal.statement import ProvisionalLine, provisional_line
from shared.domain.institutions import InstitutionRegistry

ATTEMPTS_MAX = 6
RETRY_BASE_S = 60.0
RETRY_MAX_S = 3600.0
INSTITUTIONS_PER_CYCLE_MAX = 50
LINES_PER_MAIL_MAX = 50
SMTP_TIMEOUT_S = 10.0
ERROR_LENGTH_MAX = 300
WINDOW_CLOSED = "the review window closed before the e-mail was sent"
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
INSERT INTO portal_notifications (institution, outcome_key, email)
SELECT a.institution, o.outcome_key, a.email
  FROM portal_notification_addresses a
  JOIN verifier_outcomes o
    ON o.status IN ('pending_review', 'pending_sustainment')
   AND o.decision::jsonb -> 'payees' @> jsonb_build_array(jsonb_build_array(a.institution))
ON CONFLICT (institution, outcome_key) DO NOTHING
"""

_DUE = """
SELECT n.institution, n.outcome_key, n.email, n.attempts, o.status, o.decision,
       c.contract::json -> 'caps' ->> 'review_days' AS review_days
  FROM portal_notifications n
  JOIN verifier_outcomes o ON o.outcome_key = n.outcome_key
  JOIN verifier_contracts c
    ON c.contract_id = o.contract_id AND c.version = (o.decision::json ->> 'contract_version')::int
 WHERE n.state = 'pending' AND n.next_attempt_at <= clock_timestamp()
 ORDER BY n.created_at, n.institution, n.outcome_key
 LIMIT $1
   FOR UPDATE OF n SKIP LOCKED
"""


async def notify_once(pool: asyncpg.Pool, send: SendMail, registry: InstitutionRegistry, mail_from: str,
                      portal_url: str) -> CycleReport:
    """Queue what opened since the last look, and send what is due: one cycle."""
    sent = retried = failed = 0
    async with pool.acquire() as connection, connection.transaction():
        queued = int((await connection.execute(_ENQUEUE)).split()[-1])
        now = await event_time(connection)
        rows = await connection.fetch(_DUE, INSTITUTIONS_PER_CYCLE_MAX * LINES_PER_MAIL_MAX)
        titles = {r["contract_id"]: r["title"] or r["contract_id"] for r in await connection.fetch(
            "SELECT DISTINCT ON (contract_id) contract_id, contract::json ->> 'title' AS title"
            " FROM verifier_contracts ORDER BY contract_id, version DESC")}
        groups: dict[tuple[str, str], list[asyncpg.Record]] = {}
        for row in rows:
            group = groups.setdefault((row["institution"], row["email"]), [])
            if len(groups) <= INSTITUTIONS_PER_CYCLE_MAX and len(group) < LINES_PER_MAIL_MAX:
                group.append(row)
        for (institution, address), members in list(groups.items())[:INSTITUTIONS_PER_CYCLE_MAX]:
            lines, keys, closed = [], [], []
            for r in members:
                line = provisional_line(provisional_reference(r["outcome_key"]), institution,
                                        json.loads(r["decision"]), int(r["review_days"] or 0), now)
                if line is None or line.days_left <= 0 or r["status"] not in ("pending_review", "pending_sustainment"):
                    closed.append(r["outcome_key"])
                else:
                    lines.append(line)
                    keys.append(r["outcome_key"])
            if closed:  # final before it was told: nothing to review any more, nothing sent
                await connection.execute(
                    "UPDATE portal_notifications SET state = 'failed', last_error = $3"
                    " WHERE institution = $1 AND outcome_key = ANY($2::text[])",
                    institution, closed, WINDOW_CLOSED)
            if not lines:
                continue
            found = registry.get(institution)
            try:
                await send(window_message(found.name if found else institution, address, mail_from, lines, titles,
                                          portal_url, keys, institution))
            except (OSError, smtplib.SMTPException) as error:
                attempts = max(r["attempts"] for r in members if r["outcome_key"] in keys) + 1
                gave_up = attempts >= ATTEMPTS_MAX
                failed, retried = failed + gave_up, retried + (not gave_up)
                await connection.execute(
                    "UPDATE portal_notifications SET attempts = attempts + 1, last_error = $3,"
                    " state = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,"
                    " next_attempt_at = clock_timestamp() + $5::interval"
                    " WHERE institution = $1 AND outcome_key = ANY($2::text[])",
                    institution, keys, f"{type(error).__name__}: {error}"[:ERROR_LENGTH_MAX], gave_up,
                    dt.timedelta(seconds=retry_delay_s(attempts)))
                continue
            sent += 1
            await connection.execute(
                "UPDATE portal_notifications SET attempts = attempts + 1, state = 'sent', sent_at = clock_timestamp()"
                " WHERE institution = $1 AND outcome_key = ANY($2::text[])", institution, keys)
    return CycleReport(queued, sent, retried, failed)


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
