"""Disputes in the portal, in-process: an administrator disputes a line in its review
window; everyone else is refused (a viewer, another institution, no session, a forged or
missing CSRF token), and so is a dispute after the window, naming the day it closed."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.frontdoor.portal.accounts import Accounts, development_viewer
from services.frontdoor.portal.disputes import DisputableOutcome, DisputeView
from services.frontdoor.portal.pages import Portal, install
from shared.domain.disputes import (
    DisputeOpened,
    DisputeReason,
    DisputeResolved,
    DisputeState,
    Resolution,
    dispute_id,
    fold_state,
    resolution_id,
    window_refusal,
)
from tests.unit.test_portal_pages import PROVISIONAL_REF, REGISTRY, BooksOfTwo, MemoryStore, log_in

OUTCOME_KEY = "mobility-bonus|youth-education-completed|k1:" + "e" * 64 + "|ebc-2026-0001"
CLOSES_ON = dt.date(2026, 7, 8)  # 23 June 2026 + the contract's 15 review days
DISPUTE_PATH = f"/portal/provisional/{PROVISIONAL_REF}/dispute"


class MemoryDesk:
    """The outcome BooksOfTwo shows as provisional, and disputes kept as the ledger keeps them."""

    def __init__(self) -> None:
        self.event_time = dt.date(2026, 7, 1)
        self.status = "pending_review"
        self.published: list[DisputeOpened | DisputeResolved] = []

    async def outcome(self, institution: str, reference: str) -> DisputableOutcome | None:
        payees = {str(p) for p, _ in BooksOfTwo.decision["payees"]}  # type: ignore[attr-defined]
        if reference != PROVISIONAL_REF or institution not in payees:
            return None
        return DisputableOutcome(OUTCOME_KEY, reference, "mobility-bonus", "youth-education-completed", self.status,
                                 CLOSES_ON, self.event_time)

    async def disputes_of_outcome(self, institution: str, outcome_key: str) -> list[DisputeView]:
        opened = [r for r in self.published if isinstance(r, DisputeOpened)
                  and r.institution == institution and r.outcome_key == outcome_key]
        views = []
        for record in opened:
            state = fold_state(r for r in self.published if r.dispute_id == record.dispute_id)
            assert state is not None
            views.append(DisputeView(record.dispute_id, institution, outcome_key, state, record.reason.value,
                                     record.note, record.opened_by, record.opened_on, record.window_closes_on,
                                     dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.UTC)))
        return views

    async def disputes_of_payment(self, institution: str, payment_id: str) -> list[DisputeView]:
        return []

    async def publish(self, record: DisputeOpened | DisputeResolved) -> None:
        self.published.append(record)


@pytest.fixture
def desk() -> MemoryDesk:
    return MemoryDesk()


@pytest.fixture
def client(desk: MemoryDesk) -> TestClient:
    app = FastAPI()
    install(app)
    portal = Portal(Accounts.from_settings(None, REGISTRY, production=False), REGISTRY, store=MemoryStore(),
                    reader=BooksOfTwo(), desk=desk)
    app.state.door = SimpleNamespace(portal=portal)
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def line_csrf(client: TestClient) -> str:
    page = client.get(f"/portal/provisional/{PROVISIONAL_REF}")
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def dispute(client: TestClient, token: str, reason: str = "wrong_dates", note: str = "Barnet gik her til 31. juli.",
            ) -> object:
    return client.post(DISPUTE_PATH, data={"csrf_token": token, "reason": reason, "note": note})


def test_an_administrator_disputes_a_line_in_its_window_and_then_sees_it_held(
        client: TestClient, desk: MemoryDesk) -> None:
    log_in(client, "alsskolen")
    page = client.get(f"/portal/provisional/{PROVISIONAL_REF}")
    assert 'action="/portal/provisional/' in page.text  # the form is offered
    answer = client.post(DISPUTE_PATH, data={"csrf_token": line_csrf(client), "reason": "wrong_dates",
                                             "note": "Barnet gik her til 31. juli."})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/portal/provisional/{PROVISIONAL_REF}?disputed=1"
    [sent] = desk.published
    assert isinstance(sent, DisputeOpened)
    assert (sent.institution, sent.reason, sent.note, sent.opened_by) == (
        "alsskolen", DisputeReason.WRONG_DATES, "Barnet gik her til 31. juli.", "alsskolen")
    assert (sent.outcome_key, sent.window_closes_on, sent.opened_on) == (OUTCOME_KEY, CLOSES_ON, desk.event_time)
    assert sent.dispute_id == dispute_id(OUTCOME_KEY, "alsskolen")
    shown = client.get(answer.headers["location"])
    assert 'data-dispute-state="open"' in shown.text
    assert "pengene holdes tilbage" in shown.text
    assert "Barnet gik her til 31. juli." in shown.text
    assert 'action="/portal/provisional/' not in shown.text  # no second form


def test_disputing_again_sends_nothing_more(client: TestClient, desk: MemoryDesk) -> None:
    log_in(client, "alsskolen")
    token = line_csrf(client)
    assert dispute(client, token).status_code == 303  # type: ignore[attr-defined]
    assert dispute(client, token, reason="other").status_code == 303  # type: ignore[attr-defined]
    assert len(desk.published) == 1


def test_a_viewer_reads_the_line_but_may_not_dispute_it(client: TestClient, desk: MemoryDesk) -> None:
    log_in(client, development_viewer("alsskolen"))
    page = client.get(f"/portal/provisional/{PROVISIONAL_REF}")
    assert page.status_code == 200
    assert 'action="/portal/provisional/' not in page.text
    assert "Kun jeres institutions administratorer" in page.text
    answer = dispute(client, line_csrf(client))
    assert answer.status_code == 403  # type: ignore[attr-defined]
    assert desk.published == []


def test_another_institution_cannot_dispute_the_line(client: TestClient, desk: MemoryDesk) -> None:
    log_in(client, "sonderborg-gymnasium")  # not among the outcome's payees
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/portal/statement").text)
    assert token
    answer = dispute(client, token.group(1))
    assert answer.status_code == 404  # type: ignore[attr-defined]
    assert desk.published == []


def test_without_a_session_or_with_a_forged_or_missing_token_nothing_is_sent(
        client: TestClient, desk: MemoryDesk) -> None:
    answer = dispute(client, "anything")
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert answer.headers["location"] == "/portal/login"  # type: ignore[attr-defined]
    log_in(client, "alsskolen")
    assert dispute(client, "forged-" + line_csrf(client)).status_code == 403  # type: ignore[attr-defined]
    assert client.post(DISPUTE_PATH, data={"reason": "other"}).status_code == 403
    # From another site's page, even with the right token.
    other_site = client.post(DISPUTE_PATH, data={"csrf_token": line_csrf(client), "reason": "other"},
                             headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403
    assert desk.published == []


def test_an_operator_cannot_dispute(client: TestClient, desk: MemoryDesk) -> None:
    log_in(client, "operator", start="/portal/operator")
    answer = client.post(DISPUTE_PATH, data={"reason": "other"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/operator"
    assert desk.published == []


def test_after_the_window_a_dispute_is_refused_with_the_day_it_closed(client: TestClient, desk: MemoryDesk) -> None:
    log_in(client, "alsskolen")
    token = line_csrf(client)
    desk.event_time = CLOSES_ON  # the watermark reached the decision date: final
    answer = dispute(client, token)
    assert answer.status_code == 409  # type: ignore[attr-defined]
    assert "8. jul. 2026" in answer.text  # type: ignore[attr-defined]
    desk.event_time, desk.status = dt.date(2026, 7, 2), "verified"  # final, whatever the clock says
    assert dispute(client, token).status_code == 409  # type: ignore[attr-defined]
    assert desk.published == []


def test_a_reason_not_in_the_list_or_a_note_too_long_is_refused(client: TestClient, desk: MemoryDesk) -> None:
    log_in(client, "alsskolen")
    token = line_csrf(client)
    assert dispute(client, token, reason="because").status_code == 400  # type: ignore[attr-defined]
    assert dispute(client, token, note="x" * 1001).status_code == 400  # type: ignore[attr-defined]
    assert desk.published == []


# ---- the domain ---------------------------------------------------------------------------

def opened(**changes: object) -> DisputeOpened:
    fields: dict[str, object] = {
        "dispute_id": dispute_id(OUTCOME_KEY, "alsskolen"), "outcome_key": OUTCOME_KEY,
        "contract_id": "mobility-bonus", "outcome_id": "youth-education-completed", "institution": "alsskolen",
        "reason": "stay_missing", "opened_by": "alsskolen", "opened_on": dt.date(2026, 7, 7),
        "window_closes_on": CLOSES_ON}
    return DisputeOpened.model_validate({**fields, **changes})


def decided(resolution: Resolution, note: str = "", amendment: str | None = None) -> DisputeResolved:
    dispute = dispute_id(OUTCOME_KEY, "alsskolen")
    return DisputeResolved(resolution_id=resolution_id(dispute, resolution, note, amendment), dispute_id=dispute,
                           resolution=resolution, note=note, resolved_by="operator", resolved_on=dt.date(2026, 7, 9),
                           amendment_event_id=amendment)


def test_the_window_is_open_until_the_decision_date() -> None:
    assert window_refusal(CLOSES_ON, dt.date(2026, 7, 7)) is None
    assert window_refusal(CLOSES_ON, CLOSES_ON) == "review_window_closed"
    with pytest.raises(ValidationError, match="after the window closed"):
        opened(opened_on=CLOSES_ON)
    with pytest.raises(ValidationError, match="not the id"):
        opened(dispute_id="0" * 32)


def test_a_dispute_holds_until_it_is_upheld_or_rejected_and_a_rejection_gives_a_reason() -> None:
    assert fold_state([opened()]) == DisputeState.OPEN
    requested = decided(Resolution.CORRECTION_REQUESTED)
    assert fold_state([opened(), requested]) == DisputeState.CORRECTION_REQUESTED
    assert fold_state([opened(), requested, decided(Resolution.UPHELD, amendment="k-1")]) == DisputeState.UPHELD
    # A decision on a decided dispute changes nothing.
    rejected = decided(Resolution.REJECTED, "the stay ended on 30 June, as reported")
    assert fold_state([opened(), rejected, decided(Resolution.UPHELD)]) == DisputeState.REJECTED
    assert fold_state([decided(Resolution.UPHELD)]) is None
    with pytest.raises(ValidationError, match="needs a reason"):
        decided(Resolution.REJECTED, "  ")
    with pytest.raises(ValidationError, match="only an upheld"):
        decided(Resolution.REJECTED, "no", amendment="k-1")
