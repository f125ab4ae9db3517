"""Notifications, in-process: the retry schedule is bounded, an address is one address, the
e-mail names no child and is the same message when sent again; only an institution's
administrator sets its address."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.frontdoor.portal import notifications
from services.frontdoor.portal.accounts import Accounts, development_viewer
from services.frontdoor.portal.notifications import (
    ATTEMPTS_MAX,
    BACKOFF_MAX_S,
    RETRY_BASE_S,
    RETRY_MAX_S,
    CycleReport,
    message_id,
    notify_forever,
    retry_delay_s,
    valid_email,
    window_message,
)
from services.frontdoor.portal.pages import Portal, install
from services.frontdoor.portal.statement import provisional_line
from shared.platform import metrics
from tests.unit.test_portal_pages import PROVISIONAL_REF, REGISTRY, BooksOfTwo, MemoryStore, log_in

SUBJECT = "k1:" + "e" * 64
KEYS = [f"mobility-bonus|youth-education-completed|{SUBJECT}|ev-1", f"mobility-bonus|school_ready|{SUBJECT}|ev-2"]


def test_retries_double_up_to_a_ceiling_and_end() -> None:
    delays = [retry_delay_s(n) for n in range(1, ATTEMPTS_MAX + 3)]
    assert delays[:3] == [RETRY_BASE_S, 2 * RETRY_BASE_S, 4 * RETRY_BASE_S]
    assert max(delays) == RETRY_MAX_S
    assert delays == sorted(delays)
    assert 1 < ATTEMPTS_MAX <= 10


@pytest.mark.parametrize(("address", "valid"), [
    ("skole@example.dk", True), ("kontor.alsskolen+stafet@sonderborg.dk", True), ("a@b", False),
    ("Alsskolen <skole@example.dk>", False), ("skole@example.dk\r\nBcc: other@example.dk", False),
    ("skole@example.dk,other@example.dk", False), ("x" * 250 + "@example.dk", False), ("", False)])
def test_an_address_is_one_address_and_nothing_else(address: str, valid: bool) -> None:
    assert valid_email(address) is valid


def test_the_e_mail_names_no_child_and_is_the_same_message_when_sent_again() -> None:
    line = provisional_line(PROVISIONAL_REF, "alsskolen", BooksOfTwo.decision, 15, dt.date(2026, 7, 1))
    assert line is not None
    message = window_message("Alsskolen", "skole@example.dk", "stafet@example.dk", [line],
                             {"mobility-bonus": "Social mobility bonus"}, "https://stafet.example.dk", KEYS, "alsskolen")
    text = message.get_content()
    assert (message["To"], message["From"]) == ("skole@example.dk", "stafet@example.dk")
    assert "2.000,00\xa0kr." in text
    assert "DKK2,000.00" in text
    assert "8. jul. 2026" in text
    assert "7 dage tilbage" in text
    assert "https://stafet.example.dk/portal/statement" in text
    assert SUBJECT not in text
    assert "e" * 64 not in str(message)
    assert message["Message-ID"] == message_id("alsskolen", list(reversed(KEYS)))
    assert message["Message-ID"] != message_id("nordborg-skole", KEYS)


class MemoryBook:
    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}

    async def address(self, institution: str) -> str | None:
        return self.addresses.get(institution)

    async def set_address(self, institution: str, address: str | None, by: str) -> None:
        if address is None:
            self.addresses.pop(institution, None)
        else:
            self.addresses[institution] = address


@pytest.fixture
def book() -> MemoryBook:
    return MemoryBook()


@pytest.fixture
def client(book: MemoryBook) -> TestClient:
    app = FastAPI()
    install(app)
    portal = Portal(Accounts.from_settings(None, REGISTRY, production=False), REGISTRY, store=MemoryStore(),
                    reader=BooksOfTwo(), addresses=book)
    app.state.door = SimpleNamespace(portal=portal)
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def token_of(client: TestClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/portal/notifications").text)
    assert found
    return found.group(1)


def test_an_administrator_sets_and_removes_the_address(client: TestClient, book: MemoryBook) -> None:
    log_in(client, "alsskolen")
    assert "Ingen adresse er registreret" in client.get("/portal/notifications").text
    answer = client.post("/portal/notifications", data={"csrf_token": token_of(client), "email": "skole@example.dk"})
    assert answer.headers["location"] == "/portal/notifications?saved=1"
    assert book.addresses == {"alsskolen": "skole@example.dk"}
    assert 'data-address="skole@example.dk"' in client.get("/portal/notifications").text
    bad = client.post("/portal/notifications", data={"csrf_token": token_of(client), "email": "a@b\r\nBcc: x@y.dk"})
    assert bad.status_code == 400
    client.post("/portal/notifications", data={"csrf_token": token_of(client), "email": ""})
    assert book.addresses == {}


def test_the_address_is_refused_to_a_viewer_a_forged_token_no_session_and_an_operator(
        client: TestClient, book: MemoryBook) -> None:
    book.addresses["alsskolen"] = "skole@example.dk"
    assert client.get("/portal/notifications").headers["location"] == "/portal/login"
    assert client.post("/portal/notifications", data={"email": "x@y.dk"}).headers["location"] == "/portal/login"
    log_in(client, development_viewer("alsskolen"))
    page = client.get("/portal/notifications").text
    assert 'data-address="skole@example.dk"' in page
    assert 'name="email"' not in page
    assert client.post("/portal/notifications", data={"csrf_token": token_of(client), "email": "x@y.dk"}
                       ).status_code == 403
    client.cookies.clear()
    log_in(client, "alsskolen")
    assert client.post("/portal/notifications", data={"csrf_token": "forged", "email": "x@y.dk"}).status_code == 403
    client.cookies.clear()
    log_in(client, "operator", start="/portal/operator")
    assert client.get("/portal/notifications").headers["location"] == "/portal/operator"
    assert book.addresses == {"alsskolen": "skole@example.dk"}


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def error(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))

    info = error


async def test_a_cycle_that_raises_is_counted_and_waited_out_longer_and_the_notifier_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception in one cycle (a bug an odd row trips, the database away) is
    logged and counted, the next cycle waits longer, and a good cycle resets the wait:
    the notifier, and with it the front door, never stops on it."""
    outcomes: list[BaseException | None] = [RuntimeError("an odd row"), KeyError("x"), None, None]
    cycles = 0

    async def cycle() -> CycleReport:
        nonlocal cycles
        cycles += 1
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return CycleReport(0, 0, 0, 0)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if not outcomes:
            raise asyncio.CancelledError

    log = Log()
    monkeypatch.setattr(notifications, "log", log)
    before = metrics.NOTIFICATION_CYCLES_FAILED._value.get()
    with pytest.raises(asyncio.CancelledError):
        await notify_forever(cycle, 10.0, sleep)
    assert cycles == 4
    assert slept == [20.0, 40.0, 10.0, 10.0]
    assert metrics.NOTIFICATION_CYCLES_FAILED._value.get() - before == 2
    failed = [fields for event, fields in log.lines if event == "notifications_failed"]
    assert [(f["error"], str(f["exc_info"])) for f in failed] == [("RuntimeError", "an odd row"), ("KeyError", "'x'")]
    slept.clear()
    outcomes.extend([RuntimeError("again")] * 8)
    with pytest.raises(asyncio.CancelledError):
        await notify_forever(cycle, 10.0, sleep)
    assert max(slept) == BACKOFF_MAX_S
