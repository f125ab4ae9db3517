"""The operator's dispute queue (issue 29, item 3): open disputes, the oldest first, each
with its evidence (the verifier's decision on the outcome now and the child's facts it
holds), and the operator's decision: a correction requested from the authoritative source
(the money stays held), upheld once the correcting event is in (naming it), or rejected
with a reason the institution reads. Every decision is a signed record on the disputes
topic (shared/domain/disputes.py), so the ledger releases the held payments only on one.

Only users with the operator role: an institution's users get 403, no session goes to the
log-in, a POST without the session's CSRF token (or from another site) 403.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from services.frontdoor.portal.accounts import Role
from services.frontdoor.portal.dispute_pages import DISPUTE_FORM_BYTES_MAX, RECORDED_POLL_S, RECORDED_WAIT_S, is_reference
from services.frontdoor.portal.disputes import DisputeView, Evidence
from services.frontdoor.portal.pages import (
    N_,
    OPERATOR_OF_NOBODY,
    _csrf_refused,
    _error,
    _form,
    _portal,
    _render,
    _secured,
    _session,
    _to_login,
    _unavailable,
    operator_queue,
    scoped_disputes,
)
from services.frontdoor.portal.sessions import Session
from shared.domain.cpr_text import contains_cpr
from shared.domain.disputes import NOTE_LENGTH_MAX, DisputeResolved, Resolution, resolution_id

router = APIRouter(prefix="/portal/operator", include_in_schema=False)


async def _operator_session(request: Request) -> tuple[Session | None, Response | None]:
    session = await _session(request)
    if session is None:
        return None, _to_login()
    if session.user.role != Role.OPERATOR:
        return None, _error(request, 403, N_("Refused"), N_("This page is for operators."), session)
    if _portal(request).operator_refused(session.user) is not None:
        return None, _error(request, 403, N_("Refused"), OPERATOR_OF_NOBODY, session)
    return session, None


def sources(view: DisputeView, evidence: Evidence) -> list[str]:
    """Whom a correction may be requested of: the disputing institution, or a reporter of the child's facts."""
    return [view.institution, *sorted({f.reported_by for f in evidence.facts} - {view.institution})]


def _names(request: Request) -> dict[str, str]:
    return {i.id: i.name for i in _portal(request).registry.all()}


@router.get("/disputes", response_class=HTMLResponse)
async def queue(request: Request) -> Response:
    session, refused = await _operator_session(request)
    if session is None:
        return refused or _to_login()
    desk = _portal(request).desk
    if desk is None:
        return _unavailable(request)
    disputes = await operator_queue(_portal(request), session.user)
    return _render(request, "operator_disputes.html", session=session, disputes=disputes,
                   names=_names(request), institution_name=_portal(request).institution_name(session.user.institution))


@router.get("/disputes/{dispute}", response_class=HTMLResponse)
async def dispute_page(request: Request, dispute: str) -> Response:
    session, refused = await _operator_session(request)
    if session is None:
        return refused or _to_login()
    desk = _portal(request).desk
    if desk is None:
        return _unavailable(request)
    found = await desk.dispute_with_evidence(dispute) if is_reference(dispute) else None
    if found is None or not await scoped_disputes(_portal(request), session.user, [found[0]]):
        # Another tenant's dispute is "not found", exactly like one that does not exist.
        return _error(request, 404, N_("Not found"), N_("There is no such dispute."), session)
    view, evidence = found
    return _render(request, "operator_dispute.html", session=session, dispute=view, evidence=evidence,
                   names=_names(request), note_length_max=NOTE_LENGTH_MAX, sources=sources(view, evidence),
                   institution_name=_portal(request).institution_name(session.user.institution))


@router.post("/disputes/{dispute}/decide", response_class=HTMLResponse)
async def decide(request: Request, dispute: str) -> Response:
    session, refused = await _operator_session(request)
    if session is None:
        return refused or _to_login()
    csrf = await _csrf_refused(request, session, DISPUTE_FORM_BYTES_MAX)
    if csrf is not None:
        return csrf
    desk = _portal(request).desk
    if desk is None:
        return _unavailable(request)
    found = await desk.dispute_with_evidence(dispute) if is_reference(dispute) else None
    if found is None or not await scoped_disputes(_portal(request), session.user, [found[0]]):
        # Another tenant's dispute is "not found", exactly like one that does not exist.
        return _error(request, 404, N_("Not found"), N_("There is no such dispute."), session)
    view, evidence = found
    if not view.holding:
        return _error(request, 409, N_("Refused"), N_("This dispute was decided already."), session)
    form = await _form(request, DISPUTE_FORM_BYTES_MAX) or {}
    note = form.get("note", "").strip().replace("\r\n", "\n")
    resolution = form.get("resolution", "")
    if resolution not in {r.value for r in Resolution} or len(note) > NOTE_LENGTH_MAX:
        return _error(request, 400, N_("Refused"), N_("Choose a decision, and write at most 1000 characters."), session)
    if resolution == Resolution.REJECTED and not note:
        return _error(request, 400, N_("Refused"), N_("A rejection needs a reason the institution can read."), session)
    if contains_cpr(note):
        return _error(request, 400, N_("Refused"), N_("Leave the CPR number out of the note: the institution reads it, "
                                                      "and it is kept for good."), session)
    requested_from = None
    if resolution == Resolution.CORRECTION_REQUESTED:
        requested_from = form.get("requested_from", "")
        if requested_from not in sources(view, evidence):
            return _error(request, 400, N_("Refused"),
                          N_("Request the correction of the disputing institution or of a source of the child's facts."),
                          session)
    correcting = None
    if resolution == Resolution.UPHELD:
        reporter, _, event_id = form.get("correcting_event", "").partition("|")
        named = next((f for f in evidence.facts if (f.reported_by, f.event_id) == (reporter, event_id)), None)
        if named is None:
            return _error(request, 400, N_("Refused"),
                          N_("Upholding names the correcting event: one of the facts the verifier holds for this child."),
                          session)
        if named.recorded_at is None or named.recorded_at <= view.opened_at:
            # Upheld releases the held money: only a fact that came in after the dispute (the
            # correction) may stand for the fix, never the disputed facts themselves.
            return _error(request, 400, N_("Refused"),
                          N_("Upholding names the correcting event: a fact that came in after the dispute was opened."),
                          session)
        if not await desk.correction_landed(view.outcome_key, event_id):
            # Upheld releases the held money: not before the ledger holds the adjustment the
            # correction made (the verifier's top-up or clawback, derived from the event), else
            # the next payout run would pay the amount the dispute said was wrong.
            return _error(request, 409, N_("Refused"),
                          N_("The ledger holds no adjustment made by this correcting event yet: uphold once it "
                             "does. If the correction changes no money, the amount was right: reject the dispute "
                             "saying so."), session)
        correcting = (reporter, event_id)
    decision = Resolution(resolution)
    await desk.publish(DisputeResolved(
        resolution_id=resolution_id(view.dispute_id, decision, note, correcting, requested_from),
        dispute_id=view.dispute_id, requested_from=requested_from,
        resolution=decision, note=note, resolved_by=session.user.username,
        resolved_on=dt.datetime.now(dt.UTC).date(),
        correcting_reported_by=correcting[0] if correcting else None,
        correcting_event_id=correcting[1] if correcting else None))
    await _until_changed(request, view)
    return _secured(RedirectResponse("/portal/operator/disputes", status_code=303))


async def _until_changed(request: Request, before: DisputeView) -> None:
    """Wait (bounded) for the ledger to record the decision, so the queue shows it."""
    desk = _portal(request).desk
    assert desk is not None
    waited = 0.0
    while waited < RECORDED_WAIT_S:
        found = await desk.dispute_with_evidence(before.dispute_id)
        if found is not None and found[0].state != before.state:
            return
        await asyncio.sleep(RECORDED_POLL_S)
        waited += RECORDED_POLL_S
