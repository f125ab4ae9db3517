"""The portal's pages in-process (no servers): log-in, CSRF, lock-out, language, and that
an institution reads only its own lines. The same paths run in Chromium against the real
stack in tests/e2e/test_portal_browser.py."""

from __future__ import annotations

import datetime as dt
import io
import re
import secrets
from types import SimpleNamespace
from typing import ClassVar

import pypdf
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.frontdoor.portal.accounts import FAILURES_MAX, Accounts, PortalUser, development_password
from services.frontdoor.portal.drilldown import LineDetail, line_detail
from services.frontdoor.portal.operator import Overview, contract_money
from services.frontdoor.portal.pages import SESSION_COOKIE, Portal, install
from services.frontdoor.portal.sessions import Session, session_hash
from services.frontdoor.portal.statement import (
    LedgerRow,
    PaymentState,
    ProvisionalLine,
    Statement,
    StatementLine,
    assemble,
    provisional_line,
    statement_lines,
)
from services.frontdoor.portal.statement_pdf import Reader as PdfReader
from services.frontdoor.portal.statement_pdf import statement_pdf
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
SCHOOL_LINE = "a" * 32
OTHER_LINE = "b" * 32
PROVISIONAL_REF = "d" * 32


class MemoryStore:
    def __init__(self) -> None:
        self.clock = dt.datetime(2026, 12, 5, 7, 0, tzinfo=dt.UTC)
        self.failed: dict[str, list[dt.datetime]] = {}
        self.sessions: dict[str, Session] = {}

    async def now(self) -> dt.datetime:
        return self.clock

    async def failures(self, username: str) -> list[dt.datetime]:
        return list(self.failed.get(username, []))

    async def record_failure(self, username: str) -> None:
        self.failed.setdefault(username, []).append(self.clock)

    async def clear_failures(self, username: str) -> None:
        self.failed.pop(username, None)

    async def open_session(self, user: PortalUser) -> tuple[str, Session]:
        cookie = secrets.token_urlsafe(32)
        self.sessions[session_hash(cookie)] = Session(user, secrets.token_urlsafe(32), self.clock + dt.timedelta(hours=8))
        return cookie, self.sessions[session_hash(cookie)]

    async def session(self, cookie: str) -> Session | None:
        return self.sessions.get(session_hash(cookie))

    async def close_session(self, cookie: str) -> None:
        self.sessions.pop(session_hash(cookie), None)


def ledger_row(payment_id: str, amount: int) -> LedgerRow:
    return LedgerRow("payment", payment_id, None, "mobility-bonus", 1, "youth-education-completed", "k1:x", "DKK",
                     amount, dt.date(2023, 6, 23), payer="sonderborg-kommune")


class BooksOfTwo:
    """Alsskolen has one line, Nordborg Skole another."""

    lines: ClassVar[dict[str, list[LedgerRow]]] = {
        "alsskolen": [ledger_row(SCHOOL_LINE, 134_233)], "nordborg-skole": [ledger_row(OTHER_LINE, 99_900)]}

    async def statement(self, institution: str) -> tuple[Statement, bool]:
        return assemble(institution, statement_lines(self.lines.get(institution, []), {}, {})), False

    async def line(self, institution: str, payment_id: str) -> LineDetail | None:
        found = [r for r in self.lines.get(institution, []) if r.payment_id == payment_id]
        if not found:
            return None
        return line_detail(statement_lines(found, {}, {})[0], institution, None, None, [])

    async def contract_titles(self) -> dict[str, str]:
        return {"mobility-bonus": "Social mobility bonus"}

    # One provisional outcome pays both: Alsskolen 2,000.00 and Nordborg Skole 500.00 of 3,000.00.
    decision: ClassVar[dict[str, object]] = {
        "contract_id": "mobility-bonus", "contract_version": 1, "outcome_id": "youth-education-completed",
        "occurred_on": "2026-06-23", "currency": "DKK", "owed_minor": 300_000, "status": "pending_review",
        "payees": [["alsskolen", 200_000], ["nordborg-skole", 50_000], ["bornehuset-solsikken", 50_000]]}

    # Who pays each contract (docs/tenancy.md), and the payer each overview was asked for.
    payers: ClassVar[dict[str, str]] = {"mobility-bonus": "sonderborg-kommune"}
    overviews_for: ClassVar[list[str | None]] = []

    async def overview(self, payer: str | None = None) -> Overview:
        self.overviews_for.append(payer)
        money = [("mobility-bonus", "DKK", "payment", 234_133)] if payer in (None, self.payers["mobility-bonus"]) else []
        return Overview(contract_money(money, [("mobility-bonus", "DKK", 300_000)] if money else []),
                        (), ((0, dt.date(2026, 7, 1)),), ())

    async def contract_payers(self) -> dict[str, str]:
        return dict(self.payers)

    async def provisional(self, institution: str) -> tuple[list[ProvisionalLine], dt.date]:
        today = dt.date(2026, 7, 1)
        found = provisional_line(PROVISIONAL_REF, institution, self.decision, 15, today)
        return ([found] if found else []), today

    async def provisional_line(self, institution: str, reference: str
                               ) -> tuple[ProvisionalLine, LineDetail] | None:
        lines, _ = await self.provisional(institution)
        if not lines or reference != PROVISIONAL_REF:
            return None
        line = lines[0]
        shown = StatementLine(reference, "provisional", line.contract_id, line.contract_version, line.outcome_id,
                              line.counts_on, line.currency, line.own_minor, PaymentState.PROVISIONAL, line.decided_on)
        return line, line_detail(shown, institution, self.decision, None, [])


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def client(store: MemoryStore) -> TestClient:
    app = FastAPI()
    install(app)
    portal = Portal(Accounts.from_settings(None, REGISTRY, production=False), REGISTRY, store=store, reader=BooksOfTwo())
    app.state.door = SimpleNamespace(portal=portal)
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def login_token(client: TestClient) -> str:
    page = client.get("/portal/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def log_in(client: TestClient, username: str = "alsskolen", password: str | None = None,
           start: str = "/portal/statement") -> TestClient:
    token = login_token(client)
    answer = client.post("/portal/login", data={"username": username, "csrf_token": token,
                                               "password": password or development_password(username)})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == start
    return client


def session_csrf(client: TestClient) -> str:
    page = client.get("/portal/statement")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def test_the_statement_needs_a_session_and_shows_the_institutions_line_in_danish(client: TestClient) -> None:
    assert client.get("/portal/statement").headers["location"] == "/portal/login"
    page = log_in(client).get("/portal/statement")
    assert page.status_code == 200
    assert '<html lang="da">' in page.text
    assert "Kontoudtog for Alsskolen" in page.text
    assert "1.342,33\xa0kr." in page.text
    assert "Godkendt, afventer betaling" in page.text
    assert "999,00" not in page.text  # the other institution's line
    # Who pays: across a border another municipality than the institution's (docs/tenancy.md).
    assert "<th scope=\"col\">Betalt af</th>" in page.text
    assert '<td data-payer="sonderborg-kommune">Sønderborg Kommune (synthetic)</td>' in page.text


def test_the_session_cookie_is_secure_http_only_and_same_site(client: TestClient) -> None:
    token = login_token(client)
    answer = client.post("/portal/login", data={"username": "alsskolen", "csrf_token": token,
                                               "password": development_password("alsskolen")})
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "default-src 'none'" in answer.headers["content-security-policy"]


def test_english_on_request_and_back(client: TestClient) -> None:
    log_in(client)
    switched = client.get("/portal/language/en", params={"next": "/portal/statement"})
    assert switched.headers["location"] == "/portal/statement"
    page = client.get("/portal/statement")
    assert '<html lang="en">' in page.text
    assert "Statement for Alsskolen" in page.text
    assert "DKK1,342.33" in page.text
    # The switch never sends anyone off the portal.
    assert client.get("/portal/language/da", params={"next": "https://evil.example/"}).headers["location"] == "/portal"
    assert client.get("/portal/language/da", params={"next": "//evil.example/"}).headers["location"] == "/portal"


def test_a_wrong_password_is_refused_and_the_fifth_locks_the_name_even_for_the_right_one(
        client: TestClient, store: MemoryStore) -> None:
    for attempt in range(1, FAILURES_MAX + 1):
        answer = client.post("/portal/login", data={"username": "alsskolen", "password": f"wrong-{attempt}",
                                                   "csrf_token": login_token(client)})
        assert answer.status_code == (401 if attempt < FAILURES_MAX else 429), attempt
    assert "For mange mislykkede log ind-forsøg" in answer.text
    right = client.post("/portal/login", data={"username": "alsskolen", "csrf_token": login_token(client),
                                              "password": development_password("alsskolen")})
    assert right.status_code == 429
    assert SESSION_COOKIE not in right.headers.get("set-cookie", "")
    store.clock += dt.timedelta(minutes=16)  # the lock runs out
    log_in(client)


def test_a_post_without_the_csrf_token_or_from_another_site_is_refused(client: TestClient) -> None:
    token = login_token(client)
    no_token = client.post("/portal/login", data={"username": "alsskolen",
                                                 "password": development_password("alsskolen")})
    assert no_token.status_code == 403
    forged = client.post("/portal/login", data={"username": "alsskolen", "csrf_token": "forged",
                                               "password": development_password("alsskolen")})
    assert forged.status_code == 403
    elsewhere = client.post("/portal/login", headers={"origin": "https://evil.example"},
                            data={"username": "alsskolen", "csrf_token": token,
                                  "password": development_password("alsskolen")})
    assert elsewhere.status_code == 403
    log_in(client)
    assert client.post("/portal/logout").status_code == 403
    assert client.post("/portal/logout", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/portal/statement").status_code == 200  # still logged in
    out = client.post("/portal/logout", data={"csrf_token": session_csrf(client)})
    assert out.status_code == 303
    assert client.get("/portal/statement").headers["location"] == "/portal/login"


def test_an_institution_cannot_open_another_institutions_line(client: TestClient) -> None:
    log_in(client)
    own = client.get(f"/portal/lines/{SCHOOL_LINE}")
    assert own.status_code == 200
    assert "1.342,33\xa0kr." in own.text
    other = client.get(f"/portal/lines/{OTHER_LINE}")
    assert other.status_code == 404
    assert "999,00" not in other.text
    # The same answer as for a line that does not exist at all, and for a malformed id.
    assert client.get(f"/portal/lines/{'c' * 32}").status_code == 404
    assert client.get("/portal/lines/not-an-id").status_code == 404
    # htmx asks for the line alone, to put it into the statement page.
    fragment = client.get(f"/portal/lines/{SCHOOL_LINE}", headers={"hx-request": "true"})
    assert fragment.text.lstrip().startswith("<article")


def test_the_csv_is_for_danish_excel(client: TestClient) -> None:
    log_in(client)
    answer = client.get("/portal/statement.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    text = answer.content.decode("utf-8")
    assert text.startswith("\ufeffDato;Kontrakt;")
    assert ";1342,33;DKK;" in text
    assert OTHER_LINE not in text


def pdf_text(content: bytes) -> tuple[str, pypdf.PdfReader]:
    """The text a PDF reader finds in the file, with its spaces made plain."""
    document = pypdf.PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in document.pages).replace("\xa0", " "), document


def test_the_pdf_statement_opens_in_a_pdf_reader_and_holds_only_the_institutions_own_lines(
        client: TestClient) -> None:
    log_in(client)
    answer = client.get("/portal/statement.pdf")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"].startswith('attachment; filename="stafet-alsskolen-')
    text, document = pdf_text(answer.content)
    assert document.metadata is not None
    assert document.metadata.title == "Kontoudtog for Alsskolen"
    assert "Kontoudtog for Alsskolen" in text
    assert "1.342,33 kr." in text                  # its own line, in Danish
    assert "Betalt af" in text
    assert "Sønderborg" in text
    assert "Forventet, til gennemsyn" in text      # the expected money in its review window
    assert "2.000,00 kr." in text
    assert "1.000,00 kr." in text
    assert "999,00" not in text                    # Nordborg Skole's line is not in Alsskolen's file
    assert "k1:x" not in text                      # the child's pseudonym never is
    # In English on request, as the page.
    client.get("/portal/language/en", params={"next": "/portal/statement"})
    english, _ = pdf_text(client.get("/portal/statement.pdf").content)
    assert "Statement for Alsskolen" in english
    assert "DKK1,342.33" in english


def test_a_long_statement_runs_onto_pages_that_repeat_the_tables_header() -> None:
    lines = [ledger_row(f"{n:032x}", 100_000 + n) for n in range(120)]
    statement = assemble("alsskolen", statement_lines(lines, {}, {}))
    reader = PdfReader(language="da", gettext=lambda text: text, state_words=str, reason_words=str,
                       contract_titles={}, payer_name=str)
    content = statement_pdf(statement, [], institution_name="Alsskolen", made_on=dt.date(2026, 12, 5),
                            event_time=None, reader=reader)
    text, document = pdf_text(content)
    assert len(document.pages) >= 3
    pages = [page.extract_text() for page in document.pages]
    assert all("Contract" in page for page in pages[:-1])  # the header on each page the lines run onto
    assert f"1/{len(pages)}" in pages[0]
    assert "1.000,00 kr." in text
    assert "1.001,19 kr." in text


def test_a_provisional_entitlement_shows_with_its_days_left_and_only_to_those_it_pays(client: TestClient) -> None:
    page = log_in(client).get("/portal/statement")
    assert "Forventet, til gennemsyn" in page.text
    row = re.search(r'<tr data-reference="d{32}" data-days-left="(\d+)">(.*?)</tr>', page.text, flags=re.DOTALL)
    assert row
    # Counts 23 June 2026, final 15 days later (8 July); event time 1 July: 7 days left.
    assert row.group(1) == "7"
    assert "2.000,00\xa0kr." in row.group(2)   # Alsskolen's part
    assert "1.000,00\xa0kr." in row.group(2)   # everyone else's, as one sum
    assert "8. jul. 2026" in row.group(2)
    opened = client.get(f"/portal/provisional/{PROVISIONAL_REF}")
    assert opened.status_code == 200
    assert 'data-days-left="7"' in opened.text
    assert "nordborg" not in opened.text.lower()
    assert "solsikken" not in opened.text.lower()


def test_an_institution_the_outcome_does_not_pay_sees_nothing_of_it(client: TestClient) -> None:
    page = log_in(client, "jobvejen").get("/portal/statement")
    assert "Forventet, til gennemsyn" not in page.text
    assert client.get(f"/portal/provisional/{PROVISIONAL_REF}").status_code == 404


@pytest.mark.parametrize("path", ["/portal/statement", "/portal/statement.csv", "/portal/statement.pdf",
                                  f"/portal/lines/{SCHOOL_LINE}",
                                  f"/portal/provisional/{PROVISIONAL_REF}"])
def test_every_page_without_a_session_sends_to_the_log_in(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/login"
    # A cookie that is no session's is no session either.
    client.cookies.set(SESSION_COOKIE, "forged", domain="testserver")
    assert client.get(path).headers["location"] == "/portal/login"


def test_the_operator_reads_the_overview_and_no_statement(client: TestClient) -> None:
    log_in(client, "operator", start="/portal/operator")
    page = client.get("/portal/operator")
    assert page.status_code == 200
    row = re.search(r'<tr data-contract="mobility-bonus">(.*?)</tr>', page.text, flags=re.DOTALL)
    assert row
    assert "3.000,00\xa0kr." in row.group(1)   # provisional
    assert "2.341,33\xa0kr." in row.group(1)   # instructed, and owed (nothing paid)
    # An operator reads no institution's statement or line.
    assert client.get("/portal/statement").headers["location"] == "/portal/operator"
    assert client.get(f"/portal/lines/{SCHOOL_LINE}").headers["location"] == "/portal/operator"


def test_an_institutions_user_is_refused_the_operators_overview(client: TestClient) -> None:
    log_in(client)
    refused = client.get("/portal/operator")
    assert refused.status_code == 403
    assert "2.341,33" not in refused.text


def test_the_overview_adds_up_the_ledgers_kinds_per_contract() -> None:
    (row,) = contract_money([("c", "DKK", "payment", 10_000), ("c", "DKK", "clawback", 1_000),
                             ("c", "DKK", "settled", 6_000), ("c", "DKK", "returned", 2_000),
                             ("c", "DKK", "failed", 500)], [("c", "DKK", 7_000)])
    assert (row.instructed_minor, row.clawed_back_minor, row.paid_minor, row.failed_minor, row.returned_minor,
            row.provisional_minor) == (10_000, 1_000, 4_000, 500, 2_000, 7_000)
    # A refused payment is void (back to the budget); a returned one is owed again.
    assert row.owed_minor == 10_000 - 1_000 - 4_000 - 500
    # A clawback that was settled brought money back; one the bank refused is void.
    (back,) = contract_money([("c", "DKK", "payment", 10_000), ("c", "DKK", "settled", 10_000),
                              ("c", "DKK", "clawback", 3_000), ("c", "DKK", "settled:clawback", 3_000)], [])
    assert (back.paid_minor, back.clawed_back_minor, back.owed_minor) == (7_000, 3_000, 0)
