"""Where an institution hears of its review windows (issue 29, item 5): its users read the
registered e-mail address; its administrators set or remove it (CSRF-protected POST). An
operator has no institution address here (sent to the overview)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from services.frontdoor.portal.accounts import Role
from services.frontdoor.portal.notifications import valid_email
from services.frontdoor.portal.pages import (
    N_,
    _csrf_refused,
    _error,
    _form,
    _institution_session,
    _portal,
    _render,
    _secured,
    _to_login,
    _unavailable,
)

router = APIRouter(prefix="/portal", include_in_schema=False)


@router.get("/notifications", response_class=HTMLResponse)
async def notifications_page(request: Request) -> Response:
    session, elsewhere = await _institution_session(request)
    if session is None:
        return elsewhere or _to_login()
    book = _portal(request).addresses
    if book is None:
        return _unavailable(request)
    return _render(request, "notifications.html", session=session,
                   address=await book.address(session.user.institution),
                   may_change=session.user.role == Role.ADMINISTRATOR, saved=request.query_params.get("saved") == "1",
                   institution_name=_portal(request).institution_name(session.user.institution))


@router.post("/notifications", response_class=HTMLResponse)
async def set_notifications(request: Request) -> Response:
    session, elsewhere = await _institution_session(request)
    if session is None:
        return elsewhere or _to_login()
    refused = await _csrf_refused(request, session)
    if refused is not None:
        return refused
    if session.user.role != Role.ADMINISTRATOR:
        return _error(request, 403, N_("Refused"), N_("Only your institution's administrators may change this."),
                      session)
    book = _portal(request).addresses
    if book is None:
        return _unavailable(request)
    address = ((await _form(request)) or {}).get("email", "").strip()
    if address and not valid_email(address):
        return _error(request, 400, N_("Refused"), N_("Write one e-mail address, or nothing to stop the e-mails."),
                      session)
    await book.set_address(session.user.institution, address or None, session.user.username)
    return _secured(RedirectResponse("/portal/notifications?saved=1", status_code=303))
