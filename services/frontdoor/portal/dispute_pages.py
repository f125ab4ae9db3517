"""Disputing a line (issue 29, item 3): an institution's administrator disputes its part of
an outcome in the review window, with a reason and a note.

Refused, in this order: without a session (to the log-in), with a missing or forged CSRF
token or from another site (403), for a user who is not an administrator of an
institution (403), for an outcome that does not name the session's institution (404,
exactly like one that does not exist), after the review window closed (409, naming the
day it closed), with a reason not in the list or a note too long (400). A dispute sent
again is the same dispute (its id is the outcome's and the institution's): nothing is
sent twice.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from services.frontdoor.portal import i18n
from services.frontdoor.portal.accounts import Role
from services.frontdoor.portal.disputes import PENDING_STATUSES, DisputableOutcome
from services.frontdoor.portal.pages import (
    DISPUTE_REASON_WORDS,
    N_,
    PAYMENT_ID_LENGTH,
    _csrf_refused,
    _error,
    _form,
    _gettext,
    _institution_session,
    _language,
    _portal,
    _render,
    _secured,
    _to_login,
    _unavailable,
)
from services.frontdoor.portal.sessions import Session
from shared.domain.cpr_text import contains_cpr
from shared.domain.disputes import (
    NOTE_LENGTH_MAX,
    DisputeOpened,
    DisputeReason,
    dispute_id,
    window_refusal,
)

router = APIRouter(prefix="/portal", include_in_schema=False)
# A note of NOTE_LENGTH_MAX characters, form-encoded (a Danish letter takes 6 bytes), and the token.
DISPUTE_FORM_BYTES_MAX = 8 * NOTE_LENGTH_MAX
# After sending, the page waits this long for the ledger to record the dispute, so that
# the page it returns to shows it; past it, the page says the dispute was sent.
RECORDED_WAIT_S = 5.0
RECORDED_POLL_S = 0.2

def is_reference(reference: str) -> bool:
    return len(reference) == PAYMENT_ID_LENGTH and all(c in "0123456789abcdef" for c in reference)


@router.post("/provisional/{reference}/dispute", response_class=HTMLResponse)
async def dispute(request: Request, reference: str) -> Response:
    session, elsewhere = await _institution_session(request)
    if session is None:
        return elsewhere or _to_login()
    refused = await _csrf_refused(request, session, DISPUTE_FORM_BYTES_MAX)
    if refused is not None:
        return refused
    if session.user.role != Role.ADMINISTRATOR:
        return _error(request, 403, N_("Refused"), N_("Only your institution's administrators may dispute a line."),
                      session)
    desk = _portal(request).desk
    if desk is None:
        return _unavailable(request)
    institution = session.user.institution
    outcome = await desk.outcome(institution, reference) if is_reference(reference) else None
    if outcome is None:
        return _error(request, 404, N_("Not found"), N_("Your institution has no such line."), session)
    if outcome.status not in PENDING_STATUSES or window_refusal(outcome.window_closes_on, outcome.event_time):
        return _closed(request, session, outcome)
    form = await _form(request, DISPUTE_FORM_BYTES_MAX) or {}
    reason, note = form.get("reason", ""), form.get("note", "").strip().replace("\r\n", "\n")
    if reason not in DISPUTE_REASON_WORDS or len(note) > NOTE_LENGTH_MAX:
        return _error(request, 400, N_("Refused"), N_("Choose a reason, and write a note of at most 1000 characters."),
                      session)
    if contains_cpr(note):
        return _error(request, 400, N_("Refused"), N_("Leave the CPR number out of the note: name the child by your "
                                                      "own references (the event ids, the stay's dates)."), session)
    if not await desk.disputes_of_outcome(institution, outcome.outcome_key):
        await desk.publish(DisputeOpened(
            dispute_id=dispute_id(outcome.outcome_key, institution), outcome_key=outcome.outcome_key,
            contract_id=outcome.contract_id, outcome_id=outcome.outcome_id, institution=institution,
            reason=DisputeReason(reason), note=note, opened_by=session.user.username, opened_on=outcome.event_time,
            window_closes_on=outcome.window_closes_on))
        await _until_recorded(request, institution, outcome.outcome_key)
    return _secured(RedirectResponse(f"/portal/provisional/{reference}?disputed=1", status_code=303))


def _closed(request: Request, session: Session, outcome: DisputableOutcome) -> HTMLResponse:
    gettext_ = _gettext(request)
    message = gettext_("The review window closed on %(date)s: the line can no longer be disputed.") % {
        "date": i18n.day(outcome.window_closes_on, _language(request))}
    name = _portal(request).institution_name(session.user.institution)
    return _render(request, "error.html", 409, heading=gettext_("Refused"), message=message, session=session,
                   institution_name=name)


async def _until_recorded(request: Request, institution: str, outcome_key: str) -> None:
    desk = _portal(request).desk
    assert desk is not None
    waited = 0.0
    while waited < RECORDED_WAIT_S:
        if await desk.disputes_of_outcome(institution, outcome_key):
            return
        await asyncio.sleep(RECORDED_POLL_S)
        waited += RECORDED_POLL_S
