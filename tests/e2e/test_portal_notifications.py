"""Notifications on the real PostgreSQL with a local SMTP sink (aiosmtpd): a review window
that opens for an institution with a registered address is e-mailed once, however often
the front door looks; a delivery that fails is retried later and given up after the last
attempt; nothing names the child."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from services.frontdoor.portal.notifications import ATTEMPTS_MAX, NotificationAddresses, notify_once, smtp_sender
from shared.domain.disputes import DisputeOpened, DisputeReason, DisputeResolved, Resolution, dispute_id, resolution_id
from shared.domain.institutions import InstitutionRegistry
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.stack import free_port
from tests.e2e.test_frontdoor import wait_until_serving
from tests.e2e.test_portal_queries import KEY, as_owner
from tests.servers import Servers
from tests.unit.builders import SUBJECT

pytestmark = pytest.mark.e2e
REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")


class Sink:
    """What the SMTP server was given: (recipients, message bytes)."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler, port = Sink(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


async def test_a_window_is_mailed_once_and_a_failed_delivery_is_retried_then_given_up(
        servers: Servers, database_url: str, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    await as_owner(database_url)  # an outcome in its review window paying Alsskolen and Nordborg Skole
    pool = await asyncpg.create_pool(servers.role_url("frontdoor", database_url.rpartition("/")[2]),
                                     min_size=1, max_size=2)
    assert pool is not None
    owner = await asyncpg.connect(database_url)
    try:
        book = NotificationAddresses(pool)
        await book.set_address("alsskolen", "skole@example.dk", "alsskolen")
        send = smtp_sender("127.0.0.1", port)
        report = await notify_once(pool, send, REGISTRY, "stafet@example.dk", "https://stafet.example.dk")
        assert (report.queued, report.sent, report.retried, report.failed) == (1, 1, 0, 0)
        [(recipients, raw)] = handler.received
        assert recipients == ["skole@example.dk"]
        mail = message_from_bytes(raw)
        body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert "20.000,00\xa0kr." in body  # Alsskolen's 2,000,000 minor units
        assert "8. jul. 2023" in body
        assert "8 dage tilbage" in body
        assert SUBJECT not in raw.decode()

        # Looking again sends nothing: the window was told once.
        again = await notify_once(pool, send, REGISTRY, "stafet@example.dk", "")
        assert (again.queued, again.sent) == (0, 0)
        assert len(handler.received) == 1

        # Nordborg Skole's server is not there: tried again later, then given up.
        await book.set_address("nordborg-skole", "kontor@nordborg.example.dk", "nordborg-skole")
        nowhere = smtp_sender("127.0.0.1", free_port())
        failed_once = await notify_once(pool, nowhere, REGISTRY, "stafet@example.dk", "")
        assert (failed_once.queued, failed_once.sent, failed_once.retried) == (1, 0, 1)
        row = await owner.fetchrow("SELECT state, attempts, next_attempt_at > clock_timestamp() AS later, last_error"
                                   " FROM portal_notifications WHERE institution = 'nordborg-skole'")
        assert (row["state"], row["attempts"], row["later"]) == ("pending", 1, True)
        assert "Connection" in row["last_error"] or "refused" in row["last_error"].lower()
        not_yet = await notify_once(pool, nowhere, REGISTRY, "stafet@example.dk", "")
        assert (not_yet.sent, not_yet.retried, not_yet.failed) == (0, 0, 0)  # not due yet
        await owner.execute("UPDATE portal_notifications SET attempts = $1, next_attempt_at = clock_timestamp()"
                            " WHERE institution = 'nordborg-skole'", ATTEMPTS_MAX - 1)
        last = await notify_once(pool, nowhere, REGISTRY, "stafet@example.dk", "")
        assert (last.retried, last.failed) == (0, 1)
        assert await owner.fetchval("SELECT state FROM portal_notifications WHERE institution = 'nordborg-skole'"
                                    ) == "failed"
        assert await owner.fetchval("SELECT count(*) FROM portal_notifications WHERE outcome_key = $1", KEY) == 2
        assert len(handler.received) == 1
    finally:
        await owner.close()
        await pool.close()


async def test_the_running_front_door_mails_a_window_that_opened(
        servers: Servers, database_url: str, service_env: dict[str, str], sink: tuple[Sink, int],
        tmp_path: Path) -> None:
    """The wiring: FRONT_DOOR_SMTP_HOST set, the front door looks on its own and sends."""
    handler, port = sink
    await as_owner(database_url)
    owner = await asyncpg.connect(database_url)
    try:
        await owner.execute("INSERT INTO portal_notification_addresses (institution, email, set_by)"
                            " VALUES ('alsskolen', 'skole@example.dk', 'alsskolen')")
    finally:
        await owner.close()
    web = free_port()
    log = tmp_path / "frontdoor.log"
    door = ServiceProcess("frontdoor", {**service_env, "FRONT_DOOR_PORT": str(web), "FRONT_DOOR_SMTP_HOST": "127.0.0.1",
                                        "FRONT_DOOR_SMTP_PORT": str(port), "FRONT_DOOR_NOTIFY_INTERVAL_S": "0.5"}, log)
    door.start()
    try:
        await wait_until_serving(f"http://127.0.0.1:{web}", door, log)
        deadline = asyncio.get_running_loop().time() + 30
        while not handler.received:
            assert door.running(), log.read_text()[-3000:]
            assert asyncio.get_running_loop().time() < deadline, "no e-mail from the running front door"
            await asyncio.sleep(0.2)
    finally:
        door.stop()
    [(recipients, _)] = handler.received
    assert recipients == ["skole@example.dk"]


async def test_a_correction_requested_of_an_institution_is_mailed_to_it_once_with_its_own_events(
        servers: Servers, database_url: str, sink: tuple[Sink, int]) -> None:
    handler, port = sink
    await as_owner(database_url)
    opened = DisputeOpened(dispute_id=dispute_id(KEY, "nordborg-skole"), outcome_key=KEY,
                           contract_id="mobility-bonus", outcome_id="youth-education-completed",
                           institution="nordborg-skole", reason=DisputeReason.STAY_MISSING, note="",
                           opened_by="nordborg-skole", opened_on=dt.date(2023, 6, 30),
                           window_closes_on=dt.date(2023, 7, 8))
    note = "Alsskolen: meld udmeldelsen 31. juli 2017."
    requested = DisputeResolved(
        resolution_id=resolution_id(opened.dispute_id, Resolution.CORRECTION_REQUESTED, note, None, "alsskolen"),
        dispute_id=opened.dispute_id, resolution=Resolution.CORRECTION_REQUESTED, note=note,
        resolved_by="operator", resolved_on=dt.date(2023, 7, 1), requested_from="alsskolen")
    owner = await asyncpg.connect(database_url)
    try:
        for record, state in ((opened, "open"), (requested, "correction_requested")):
            await owner.execute(
                "INSERT INTO ledger_disputes (record_id, dispute_id, kind, outcome_key, institution, state, record)"
                " VALUES ($1, $2, $3, $4, 'nordborg-skole', $5, $6::jsonb)",
                getattr(record, "resolution_id", opened.dispute_id), opened.dispute_id, record.kind, KEY, state,
                record.model_dump_json())
    finally:
        await owner.close()
    pool = await asyncpg.create_pool(servers.role_url("frontdoor", database_url.rpartition("/")[2]),
                                     min_size=1, max_size=2)
    assert pool is not None
    try:
        await NotificationAddresses(pool).set_address("alsskolen", "skole@example.dk", "alsskolen")
        send = smtp_sender("127.0.0.1", port)
        report = await notify_once(pool, send, REGISTRY, "stafet@example.dk", "")
        assert (report.queued, report.sent) == (2, 2)  # its window opened, and the request
        again = await notify_once(pool, send, REGISTRY, "stafet@example.dk", "")
        assert (again.queued, again.sent) == (0, 0)
    finally:
        await pool.close()
    mails = [message_from_bytes(raw) for _, raw in handler.received]
    [request] = [m for m in mails if "rettelse" in str(m["Subject"])]
    body = request.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert note in body
    assert "a-3 (1. aug. 2010)" in body  # Alsskolen's own events about the child
    assert "a-4 (30. jun. 2017)" in body
    assert "a-5" not in body  # Nordborg Skole's, the disputing institution's
    assert "nordborg" not in body.lower()


async def test_mail_is_sent_outside_any_transaction_and_an_odd_row_fails_alone(
        servers: Servers, database_url: str) -> None:
    """While an e-mail is being sent its rows are claimed (the attempt counted, committed) and
    locked by nobody; a send that raises something unexpected is that row's failed attempt,
    recorded, and the other institution's e-mail goes all the same."""
    await as_owner(database_url)
    pool = await asyncpg.create_pool(servers.role_url("frontdoor", database_url.rpartition("/")[2]),
                                     min_size=1, max_size=2)
    assert pool is not None
    owner = await asyncpg.connect(database_url)
    seen: list[tuple[str, int]] = []

    async def send(message: Any) -> None:
        # NOWAIT: raises at once if the cycle still held the rows in a transaction.
        row = await owner.fetchrow("SELECT attempts FROM portal_notifications WHERE email = $1 FOR UPDATE NOWAIT",
                                   message["To"])
        seen.append((message["To"], row["attempts"]))
        if message["To"] == "kontor@nordborg.example.dk":
            raise ValueError("an address the relay's library chokes on")

    try:
        book = NotificationAddresses(pool)
        await book.set_address("alsskolen", "skole@example.dk", "alsskolen")
        await book.set_address("nordborg-skole", "kontor@nordborg.example.dk", "nordborg-skole")
        report = await notify_once(pool, send, REGISTRY, "stafet@example.dk", "")
        assert sorted(seen) == [("kontor@nordborg.example.dk", 1), ("skole@example.dk", 1)]
        assert (report.sent, report.retried, report.failed) == (1, 1, 0)
        rows = {r["institution"]: r for r in await owner.fetch(
            "SELECT institution, state, attempts, last_error, next_attempt_at > clock_timestamp() AS later"
            " FROM portal_notifications")}
        assert (rows["alsskolen"]["state"], rows["alsskolen"]["attempts"]) == ("sent", 1)
        odd = rows["nordborg-skole"]
        assert (odd["state"], odd["attempts"], odd["later"]) == ("pending", 1, True)
        assert odd["last_error"].startswith("ValueError: ")
    finally:
        await owner.close()
        await pool.close()
