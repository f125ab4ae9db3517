"""The portal's pages: log in, the statement, one line opened, the CSV, the language.

Server-rendered (Jinja2, autoescaped), with htmx only to open a line in place; every page
works without JavaScript. Security, all here:
- a session is a random cookie (`__Host-`, Secure, HttpOnly, SameSite=Lax) whose hash is
  looked up in PostgreSQL (sessions.py); logging out deletes it;
- every POST carries a CSRF token: the session's (a form field, or htmx's X-CSRF-Token
  header), or before log-in a double-submit cookie; a POST whose Origin is another
  site's is refused too;
- lock-out after repeated failed log-ins per user name (accounts.locked_until);
- everything an institution sees is read for the session's institution only; another
  institution's line is "not found", exactly like a line that does not exist;
- a Content-Security-Policy that allows this site's own scripts and styles only.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gettext
import hmac
import io
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import asyncpg
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.frontdoor.portal import i18n
from services.frontdoor.portal.accounts import USERNAME_LENGTH_MAX, Accounts, PortalUser, Role, locked_until
from services.frontdoor.portal.disputes import DisputeDesk, PostgresDisputeDesk, Publish, dispute_context
from services.frontdoor.portal.drilldown import LineDetail
from services.frontdoor.portal.notifications import NotificationAddresses
from services.frontdoor.portal.operator import Overview, read_overview
from services.frontdoor.portal.queries import (
    STATEMENT_ENTRIES_MAX,
    read_line,
    read_provisional,
    read_provisional_line,
    read_statement,
)
from services.frontdoor.portal.sessions import PortalStore, PostgresPortalStore, Session
from services.frontdoor.portal.statement import ProvisionalLine, Statement
from services.frontdoor.portal.statement_pdf import Reader as PdfReader
from services.frontdoor.portal.statement_pdf import statement_pdf as render_statement_pdf
from shared.domain.institutions import InstitutionRegistry
from shared.domain.tenancy import OperatorRefusedError, Tenancy

HERE = Path(__file__).parent
SESSION_COOKIE = "__Host-stafet-portal"
LOGIN_CSRF_COOKIE = "__Host-stafet-login"
LANGUAGE_COOKIE = "__Host-stafet-language"
CSRF_HEADER = "x-csrf-token"
FORM_BYTES_MAX = 4096  # a log-in or log-out form is a few hundred bytes
PAYMENT_ID_LENGTH = 32

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for translation, translate later"
    return message


STATE_WORDS = {
    "pending": N_("Approved, awaiting payment"),
    "in_payout": N_("In a payout run"),
    "paid": N_("Paid"),
    "returned": N_("Returned by the bank: owed again"),
    "refused": N_("Refused by the bank: not paid"),
    "adjustment": N_("Adjustment"),
    "provisional": N_("Expected: in the review window until"),
}
STATUS_WORDS = {
    "verified": N_("verified"),
    "rejected": N_("rejected"),
    "capped": N_("capped: the contract's budget was used up"),
    "pending_sustainment": N_("waiting: the outcome must hold for a while first"),
    "pending_review": N_("in review: waiting for the review window to close"),
}
REASON_WORDS = {
    "not_eligible": N_("the child is not in the contract's target group"),
    "outside_contract_period": N_("the outcome fell outside the contract's period"),
    "after_deadline": N_("the outcome came after the contract's deadline"),
    "condition_not_met": N_("the outcome's condition is not met"),
    "age_limit": N_("the child was over the contract's age limit"),
    "untrusted_evidence": N_("the evidence did not come from a source the contract trusts"),
    "self_reported_evidence": N_("the evidence came from an institution that is paid for the outcome"),
    "prerequisite_missing": N_("an earlier outcome the contract requires is missing"),
    "max_per_subject_reached": N_("the contract pays this outcome fewer times per child"),
    "not_sustained": N_("the outcome did not hold for the required time"),
    "no_payee": N_("nobody could be paid for the outcome"),
    "no_amount": N_("the outcome carries no amount"),
    "evidence_withdrawn": N_("the evidence was retracted or corrected by its source"),
    "currency_mismatch": N_("the amount was in another currency than the contract's"),
    "allocation_impossible": N_("the days could not be shared exactly"),
    "date_out_of_range": N_("a date was outside the calendar"),
    "registration_before_birth": N_("a stay began before the child's birth"),
    "over_capacity": N_("the programme's places were taken"),
    "capped": N_("the contract's budget was used up"),
    "amount_recomputed": N_("the amount was computed again (a new contract version or corrected facts)"),
    "outcome_unknown": N_("the outcome is no longer on record"),
}

# Disputes (dispute_pages.py): the reasons an institution may give (shared/domain/disputes.py)
# and where a dispute stands.
DISPUTE_REASON_WORDS = {
    "stay_missing": N_("A stay of the child at our institution is missing"),
    "wrong_dates": N_("The dates of a stay are wrong"),
    "wrong_institution": N_("The child was not at our institution"),
    "other": N_("Something else"),
}
DISPUTE_STATE_WORDS = {
    "open": N_("Disputed: the money is held until an operator decides"),
    "correction_requested": N_("Upheld: a correction is requested from the source; the money is held until it is in"),
    "upheld": N_("Upheld: the facts were corrected"),
    "rejected": N_("Rejected"),
}


class AddressBook(Protocol):
    """Where an institution hears of its review windows (notifications.py)."""

    async def address(self, institution: str) -> str | None: ...
    async def set_address(self, institution: str, address: str | None, by: str) -> None: ...


class StatementReader(Protocol):
    async def statement(self, institution: str) -> tuple[Statement, bool]: ...
    async def line(self, institution: str, payment_id: str) -> LineDetail | None: ...
    async def contract_titles(self) -> dict[str, str]: ...
    async def provisional(self, institution: str) -> tuple[list[ProvisionalLine], dt.date]: ...
    async def provisional_line(self, institution: str, reference: str
                               ) -> tuple[ProvisionalLine, LineDetail] | None: ...
    async def overview(self, payer: str | None = None) -> Overview: ...
    async def contract_payers(self) -> dict[str, str]: ...


class PostgresStatementReader:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def statement(self, institution: str) -> tuple[Statement, bool]:
        return await read_statement(self._pool, institution)

    async def line(self, institution: str, payment_id: str) -> LineDetail | None:
        return await read_line(self._pool, institution, payment_id)

    async def provisional(self, institution: str) -> tuple[list[ProvisionalLine], dt.date]:
        return await read_provisional(self._pool, institution)

    async def provisional_line(self, institution: str, reference: str
                               ) -> tuple[ProvisionalLine, LineDetail] | None:
        return await read_provisional_line(self._pool, institution, reference)

    async def overview(self, payer: str | None = None) -> Overview:
        return await read_overview(self._pool, payer)

    async def contract_payers(self) -> dict[str, str]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT DISTINCT ON (contract_id) contract_id, contract::json ->> 'payer' AS payer"
                " FROM verifier_contracts ORDER BY contract_id, version DESC")
        return {r["contract_id"]: r["payer"] for r in rows}

    async def contract_titles(self) -> dict[str, str]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT DISTINCT ON (contract_id) contract_id, contract::json ->> 'title' AS title"
                " FROM verifier_contracts ORDER BY contract_id, version DESC")
        return {r["contract_id"]: r["title"] or r["contract_id"] for r in rows}


def _words(gettext_: Callable[[str], str], words: Mapping[str, str], code: str) -> str:
    """A code in words, in the reader's language; a code we have no words for, as it is."""
    found = words.get(code)
    return gettext_(found) if found is not None else code


def _environment(translations: gettext.NullTranslations, language: str) -> Environment:
    environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                              extensions=["jinja2.ext.i18n"], auto_reload=False)
    environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    gettext_ = translations.gettext
    environment.globals.update(
        money=lambda amount, currency: i18n.money(amount, currency, language),
        day=lambda value: i18n.day(value, language),
        month_words=lambda key: i18n.month(dt.date.fromisoformat(key + "-01"), language),
        percent=lambda numerator, denominator: i18n.percent(numerator, denominator, language),
        state_words=lambda key: _words(gettext_, STATE_WORDS, key),
        status_words=lambda key: _words(gettext_, STATUS_WORDS, key),
        reason_words=lambda key: _words(gettext_, REASON_WORDS, key),
        dispute_reason_words=lambda key: _words(gettext_, DISPUTE_REASON_WORDS, key),
        dispute_state_words=lambda key: _words(gettext_, DISPUTE_STATE_WORDS, key),
    )
    return environment


@dataclass
class Portal:
    """What the portal holds while the front door runs."""

    accounts: Accounts
    registry: InstitutionRegistry
    translations: dict[str, gettext.NullTranslations] = field(default_factory=i18n.load_translations)
    store: PortalStore | None = None
    reader: StatementReader | None = None
    desk: DisputeDesk | None = None
    addresses: AddressBook | None = None
    # The clearing house's tenants (docs/tenancy.md): an operator of a tenant sees and
    # decides only its own contracts' money and disputes. None: one payer's installation.
    tenancy: Tenancy | None = None

    def __post_init__(self) -> None:
        self.environments = {language: _environment(self.translations[language], language)
                             for language in i18n.LANGUAGES}

    def attach(self, pool: asyncpg.Pool, publish: Publish) -> None:
        """The database is open: sessions and statements can be read, and disputes sent
        (`publish`: onto the disputes topic, signed by the front door)."""
        self.store = PostgresPortalStore(pool)
        self.reader = PostgresStatementReader(pool)
        self.desk = PostgresDisputeDesk(pool, publish)
        self.addresses = NotificationAddresses(pool)

    def institution_name(self, institution: str) -> str:
        found = self.registry.get(institution)
        return found.name if found else institution

    def operator_scope(self, user: PortalUser) -> str | None:
        """The payer an operator acts for (`Tenancy.portal_scope`): None, every payer, only
        without tenants or for the clearing house's own accounts (`clearing_house_portal_users`).
        Raises `OperatorRefusedError` for an operator account that acts for nobody: the
        operator pages refuse it (403), and nothing defaults to every payer."""
        if self.tenancy is None:
            return None
        return self.tenancy.portal_scope(user.username, user.institution)

    def operator_refused(self, user: PortalUser) -> str | None:
        """Why an operator account may not use the operator pages at all, or None."""
        try:
            self.operator_scope(user)
        except OperatorRefusedError as refused:
            return str(refused)
        return None


async def operator_queue(portal: Portal, user: PortalUser) -> list[Any]:
    """The open disputes an operator may see, oldest first: with tenants, only on its own
    contracts, chosen in the query (before the queue's bound), not after it."""
    desk = portal.desk
    if desk is None:
        return []
    scope = portal.operator_scope(user)
    if scope is None or portal.reader is None:
        return await desk.open_disputes()
    payers = await portal.reader.contract_payers()
    return await desk.open_disputes(sorted(c for c, payer in payers.items() if payer == scope))


async def scoped_disputes(portal: Portal, user: PortalUser, disputes: list[Any]) -> list[Any]:
    """The disputes an operator may see and decide: with tenants, those on its own contracts."""
    scope = portal.operator_scope(user)
    if scope is None or portal.reader is None:
        return disputes
    payers = await portal.reader.contract_payers()
    return [d for d in disputes if payers.get(d.outcome_key.split("|")[0]) == scope]


# An operator account that is neither a tenant's nor the clearing house's (docs/tenancy.md).
OPERATOR_OF_NOBODY = N_("This operator account acts for no payer: ask the clearing house to name it in the "
                        "tenants file.")

router = APIRouter(prefix="/portal", include_in_schema=False)


def install(app: FastAPI) -> None:
    """Wire the portal into the front door's app (its state: `app.state.door.portal`)."""
    from services.frontdoor.portal import (  # here: they use this module's helpers
        dispute_pages,
        notification_pages,
        operator_disputes,
    )

    app.include_router(router)
    app.include_router(dispute_pages.router)
    app.include_router(operator_disputes.router)
    app.include_router(notification_pages.router)
    app.mount("/portal/static", StaticFiles(directory=HERE / "static"), name="portal-static")


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.door.portal
    return portal


def _language(request: Request) -> str:
    return i18n.language_of(request.cookies.get(LANGUAGE_COOKIE))


def _gettext(request: Request) -> Callable[[str], str]:
    return _portal(request).translations[_language(request)].gettext


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _cookie(response: Response, name: str, value: str, *, max_age: int | None = None, http_only: bool = True) -> None:
    # `__Host-` names are only accepted with Secure, Path=/ and no Domain: the browser keeps
    # them to this host over HTTPS (and on localhost, which browsers treat as secure).
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=http_only, samesite="lax")


def _render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    portal = _portal(request)
    language = _language(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    body = portal.environments[language].get_template(template).render(
        language=language, here=here, **context)
    return _secured(HTMLResponse(body, status_code=status_code))  # type: ignore[return-value]


def _error(request: Request, status_code: int, heading: str, message: str, session: Session | None = None
           ) -> HTMLResponse:
    gettext_ = _gettext(request)
    name = _portal(request).institution_name(session.user.institution) if session else ""
    return _render(request, "error.html", status_code, heading=gettext_(heading), message=gettext_(message),
                   session=session, institution_name=name)


def _same_origin(request: Request) -> bool:
    """A browser names the page a POST comes from; refuse one from another site's page."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request, bytes_max: int = FORM_BYTES_MAX) -> Mapping[str, str] | None:
    if int(request.headers.get("content-length") or 0) > bytes_max:
        return None
    form = await request.form(max_files=0, max_fields=8)
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _institution_session(request: Request) -> tuple[Session | None, Response | None]:
    """The session of an institution's user; else where to send the caller (log-in, or an
    operator's overview: an operator reads no institution's statement)."""
    session = await _session(request)
    if session is None:
        return None, _to_login()
    if session.user.role == Role.OPERATOR:
        return None, _secured(RedirectResponse("/portal/operator", status_code=303))
    return session, None


async def _session(request: Request) -> Session | None:
    store = _portal(request).store
    cookie = request.cookies.get(SESSION_COOKIE)
    if store is None or not cookie or len(cookie) > 128:
        return None
    return await store.session(cookie)


def _unavailable(request: Request) -> HTMLResponse:
    return _error(request, 503, N_("Not available yet"), N_("The portal is starting. Try again in a moment."))


def _to_login() -> Response:
    return _secured(RedirectResponse("/portal/login", status_code=303))


# ---- logging in and out --------------------------------------------------------------------

@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    session = await _session(request)
    return _secured(RedirectResponse(_start_of(session) if session else "/portal/login", status_code=303))


def _start_of(session: Session) -> str:
    return "/portal/operator" if session.user.role == Role.OPERATOR else "/portal/statement"


def _login_page(request: Request, status_code: int = 200, message: str | None = None, username: str = "") -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token or len(token) > 128:
        token = secrets.token_urlsafe(32)
    response = _render(request, "login.html", status_code, session=None, login_csrf=token, message=message,
                       username=username[:USERNAME_LENGTH_MAX])
    _cookie(response, LOGIN_CSRF_COOKIE, token)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    portal = _portal(request)
    gettext_ = _gettext(request)
    form = await _form(request)
    if form is None:
        return _error(request, 413, N_("Refused"), N_("The form was too large."))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _same_origin(request) or not cookie_token or not hmac.compare_digest(
            cookie_token.encode(), form.get("csrf_token", "").encode()):
        return _error(request, 403, N_("Refused"), N_("The form has expired or came from another site. "
                                                       "Open the log-in page and try again."))
    if portal.store is None:
        return _unavailable(request)
    username, password = form.get("username", "").strip(), form.get("password", "")
    if not username or len(username) > USERNAME_LENGTH_MAX:
        return _login_page(request, 401, gettext_("Wrong user name or password."), username)
    now = await portal.store.now()
    until = locked_until(await portal.store.failures(username), now)
    if until is not None:
        return _locked(request, until, now, username)
    user = portal.accounts.authenticate(username, password)
    if user is None:
        await portal.store.record_failure(username)
        now = await portal.store.now()
        until = locked_until(await portal.store.failures(username), now)
        if until is not None:
            return _locked(request, until, now, username)
        return _login_page(request, 401, gettext_("Wrong user name or password."), username)
    await portal.store.clear_failures(username)
    cookie, session = await portal.store.open_session(user)
    response = _secured(RedirectResponse(_start_of(session), status_code=303))
    _cookie(response, SESSION_COOKIE, cookie)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def _locked(request: Request, until: dt.datetime, now: dt.datetime, username: str) -> Response:
    gettext_ = _gettext(request)
    minutes = max(1, (int((until - now).total_seconds()) + 59) // 60)
    message = gettext_("Too many failed log-ins for this user name. Try again in %(minutes)s minutes.") % {
        "minutes": minutes}
    return _login_page(request, 429, message, username)


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    refused = await _csrf_refused(request, session)
    if refused is not None:
        return refused
    store = _portal(request).store
    assert store is not None  # a session was found in it
    await store.close_session(request.cookies[SESSION_COOKIE])
    response = _to_login()
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


async def _csrf_refused(request: Request, session: Session, form_bytes_max: int = FORM_BYTES_MAX
                        ) -> Response | None:
    """None when the POST carries the session's CSRF token and comes from this site."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await _form(request, form_bytes_max)
        sent = form.get("csrf_token") if form else None
    if _same_origin(request) and sent and hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        return None
    return _error(request, 403, N_("Refused"), N_("The form has expired or came from another site. "
                                                   "Reload the page and try again."), session)


# ---- the language --------------------------------------------------------------------------

@router.get("/language/{language}")
async def choose_language(request: Request, language: str, next: str = "/portal/statement") -> Response:
    # Only a path on this site's portal: never a redirect to somewhere else.
    target = next if next.startswith("/portal") and not next.startswith("//") and "\\" not in next else "/portal"
    response = _secured(RedirectResponse(target, status_code=303))
    _cookie(response, LANGUAGE_COOKIE, i18n.language_of(language), max_age=365 * 24 * 3600, http_only=False)
    return response


# ---- the statement -------------------------------------------------------------------------

@router.get("/statement", response_class=HTMLResponse)
async def statement_page(request: Request) -> Response:
    session, elsewhere = await _institution_session(request)
    if session is None:
        return elsewhere or _to_login()
    reader = _portal(request).reader
    if reader is None:
        return _unavailable(request)
    statement, truncated = await reader.statement(session.user.institution)
    provisional, event_time = await reader.provisional(session.user.institution)
    desk = _portal(request).desk
    corrections = await desk.corrections_requested_of(session.user.institution) if desk else []
    return _render(request, "statement.html", session=session, statement=statement, truncated=truncated,
                   corrections=corrections,
                   entries_max=STATEMENT_ENTRIES_MAX, contract_titles=await reader.contract_titles(),
                   provisional=provisional, event_time=event_time,
                   institution_name=_portal(request).institution_name(session.user.institution),
                   payer_name=_portal(request).institution_name)


@router.get("/lines/{payment_id}", response_class=HTMLResponse)
async def line_page(request: Request, payment_id: str) -> Response:
    session, elsewhere = await _institution_session(request)
    if session is None:
        return elsewhere or _to_login()
    reader = _portal(request).reader
    if reader is None:
        return _unavailable(request)
    detail = None
    if len(payment_id) == PAYMENT_ID_LENGTH and all(c in "0123456789abcdef" for c in payment_id):
        detail = await reader.line(session.user.institution, payment_id)
    if detail is None:
        return _error(request, 404, N_("Not found"), N_("Your institution has no such line."), session)
    name = _portal(request).institution_name(session.user.institution)
    desk = _portal(request).desk
    disputes = await desk.disputes_of_payment(session.user.institution, payment_id) if desk else []
    template = "_line_fragment.html" if request.headers.get("hx-request") == "true" else "line.html"
    return _render(request, template, session=session, detail=detail, institution_name=name,
                   **dispute_context(session, None, disputes, request.query_params))


@router.get("/provisional/{reference}", response_class=HTMLResponse)
async def provisional_page(request: Request, reference: str) -> Response:
    """An entitlement in its review window, opened like a statement line."""
    session, elsewhere = await _institution_session(request)
    if session is None:
        return elsewhere or _to_login()
    reader = _portal(request).reader
    if reader is None:
        return _unavailable(request)
    found = None
    if len(reference) == PAYMENT_ID_LENGTH and all(c in "0123456789abcdef" for c in reference):
        found = await reader.provisional_line(session.user.institution, reference)
    if found is None:
        return _error(request, 404, N_("Not found"), N_("Your institution has no such line."), session)
    provisional, detail = found
    name = _portal(request).institution_name(session.user.institution)
    desk = _portal(request).desk
    outcome = await desk.outcome(session.user.institution, reference) if desk else None
    disputes = await desk.disputes_of_outcome(session.user.institution, outcome.outcome_key) if desk and outcome else []
    template = "_line_fragment.html" if request.headers.get("hx-request") == "true" else "line.html"
    return _render(request, template, session=session, detail=detail, provisional=provisional,
                   institution_name=name, **dispute_context(session, outcome, disputes, request.query_params))


@router.get("/operator", response_class=HTMLResponse)
async def operator_page(request: Request) -> Response:
    """The operator's overview: refused (403) to an institution's users."""
    session = await _session(request)
    if session is None:
        return _to_login()
    if session.user.role != Role.OPERATOR:
        return _error(request, 403, N_("Refused"), N_("This page is for operators."), session)
    if _portal(request).operator_refused(session.user) is not None:
        return _error(request, 403, N_("Refused"), OPERATOR_OF_NOBODY, session)
    reader = _portal(request).reader
    if reader is None:
        return _unavailable(request)
    portal = _portal(request)
    disputes = await operator_queue(portal, session.user)
    overview = await reader.overview(portal.operator_scope(session.user))
    return _render(request, "operator.html", session=session, overview=overview, disputes=disputes,
                   contract_titles=await reader.contract_titles(),
                   institution_name=_portal(request).institution_name(session.user.institution))


@router.get("/statement.pdf")
async def statement_pdf(request: Request) -> Response:
    """The statement as a PDF file to file or print (statement_pdf.py): what the page shows."""
    session, elsewhere = await _institution_session(request)
    if session is None:
        return elsewhere or _to_login()
    reader = _portal(request).reader
    if reader is None:
        return _unavailable(request)
    language = _language(request)
    gettext_ = _gettext(request)
    statement, truncated = await reader.statement(session.user.institution)
    provisional, event_time = await reader.provisional(session.user.institution)
    portal = _portal(request)
    body = await asyncio.to_thread(
        render_statement_pdf, statement, provisional,
        institution_name=portal.institution_name(session.user.institution), made_on=dt.date.today(),
        event_time=event_time, truncated_at=STATEMENT_ENTRIES_MAX if truncated else None,
        reader=PdfReader(language=language, gettext=gettext_,
                         state_words=lambda code: _words(gettext_, STATE_WORDS, code),
                         reason_words=lambda code: _words(gettext_, REASON_WORDS, code),
                         contract_titles=await reader.contract_titles(), payer_name=portal.institution_name))
    return _download(body, "application/pdf", session.user.institution, "pdf")


CSV_COLUMNS = (N_("Date"), N_("Contract"), N_("Version"), N_("Outcome"), N_("Kind"), N_("Amount"), N_("Currency"),
               N_("State"), N_("State date"), N_("Reference"), N_("Reason"), N_("Payment id"))


@router.get("/statement.csv")
async def statement_csv(request: Request) -> Response:
    """The statement for a spreadsheet: in Danish, semicolons and decimal commas with a
    byte-order mark, as Danish Excel opens a CSV file; in English, commas and points."""
    session, elsewhere = await _institution_session(request)
    if session is None:
        return elsewhere or _to_login()
    reader = _portal(request).reader
    if reader is None:
        return _unavailable(request)
    language = _language(request)
    gettext_ = _gettext(request)
    statement, _ = await reader.statement(session.user.institution)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if language == "da" else ",", lineterminator="\r\n")
    writer.writerow([gettext_(c) for c in CSV_COLUMNS])
    for line in statement.lines:
        writer.writerow([
            line.occurred_on.isoformat(), line.contract_id, line.contract_version, line.outcome_id,
            _words(gettext_, STATE_WORDS, "adjustment") if line.kind == "clawback" else gettext_("Payment"),
            i18n.number(line.amount_minor, line.currency, language), line.currency,
            gettext_(STATE_WORDS[line.state.value]), line.state_on.isoformat() if line.state_on else "",
            line.reference, _words(gettext_, REASON_WORDS, line.adjustment_reason) if line.adjustment_reason else "",
            line.payment_id])
    return _download(("\ufeff" if language == "da" else "") + out.getvalue(), "text/csv; charset=utf-8",
                     session.user.institution, "csv")


def _download(body: str | bytes, media_type: str, institution: str, suffix: str) -> Response:
    """A statement file the browser saves, named for the institution and the day."""
    filename = f"stafet-{institution}-{dt.date.today().isoformat()}.{suffix}"
    return _secured(Response(body, media_type=media_type,
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'}))
