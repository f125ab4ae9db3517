"""Disputes in the portal, in-process: an administrator disputes a line in its review
window; everyone else is refused (a viewer, another institution, no session, a forged or
missing CSRF token), and so is a dispute after the window, naming the day it closed."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.frontdoor.portal.accounts import Accounts, development_viewer
from services.frontdoor.portal.disputes import CorrectionRequest, DisputableOutcome, DisputeView, Evidence, Fact
from services.frontdoor.portal.pages import Portal, install
from services.frontdoor.portal.statement import LedgerRow, statement_lines
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
from tests.unit.test_portal_pages import (
    OTHER_LINE,
    PROVISIONAL_REF,
    REGISTRY,
    SCHOOL_LINE,
    BooksOfTwo,
    MemoryStore,
    ledger_row,
    log_in,
)

OUTCOME_KEY = "mobility-bonus|youth-education-completed|k1:" + "e" * 64 + "|ebc-2026-0001"
CLOSES_ON = dt.date(2026, 7, 8)  # 23 June 2026 + the contract's 15 review days
DISPUTE_PATH = f"/portal/provisional/{PROVISIONAL_REF}/dispute"


class MemoryDesk:
    """The outcome BooksOfTwo shows as provisional, and disputes kept as the ledger keeps them."""

    def __init__(self) -> None:
        self.event_time = dt.date(2026, 7, 1)
        self.status = "pending_review"
        self.published: list[DisputeOpened | DisputeResolved] = []
        self.landed: set[tuple[str, str]] = set()  # (outcome key, event id): the ledger holds its adjustment
        self.late: dict[str, str] = {}  # dispute id -> the live payout run the ledger found when it kept it

    async def outcome(self, institution: str, reference: str) -> DisputableOutcome | None:
        payees = {str(p) for p, _ in BooksOfTwo.decision["payees"]}  # type: ignore[attr-defined]
        if reference != PROVISIONAL_REF or institution not in payees:
            return None
        return DisputableOutcome(OUTCOME_KEY, reference, "mobility-bonus", "youth-education-completed", self.status,
                                 CLOSES_ON, self.event_time)

    def views(self) -> list[DisputeView]:
        """Every dispute as the ledger would show it: the state its records fold into,
        the last decision's note; opened one hour apart, in the order sent."""
        views = []
        for n, record in enumerate(r for r in self.published if isinstance(r, DisputeOpened)):
            records = [r for r in self.published if r.dispute_id == record.dispute_id]
            state = fold_state(records)
            assert state is not None
            last = records[-1] if isinstance(records[-1], DisputeResolved) else None
            views.append(DisputeView(
                record.dispute_id, record.institution, record.outcome_key, state, record.reason.value, record.note,
                record.opened_by, record.opened_on, record.window_closes_on,
                dt.datetime(2026, 7, 1, 9 + n, 0, tzinfo=dt.UTC), decision_note=last.note if last else "",
                decided_on=last.resolved_on if last else None, requested_from=last.requested_from if last else None,
                in_payout_run=self.late.get(record.dispute_id)))
        return views

    async def disputes_of_outcome(self, institution: str, outcome_key: str) -> list[DisputeView]:
        return [v for v in self.views() if v.institution == institution and v.outcome_key == outcome_key]

    async def open_disputes(self, contracts: Sequence[str] | None = None) -> list[DisputeView]:
        return sorted((v for v in self.views() if v.holding
                       and (contracts is None or v.outcome_key.split("|")[0] in contracts)), key=lambda v: v.opened_at)

    async def dispute_with_evidence(self, dispute: str) -> tuple[DisputeView, Evidence] | None:
        found = [v for v in self.views() if v.dispute_id == dispute]
        if not found:
            return None
        # The disputed facts came in before the disputes were opened (2026-07-01 from 09:00);
        # the fix after.
        before, after = dt.datetime(2026, 6, 1, tzinfo=dt.UTC), dt.datetime(2026, 7, 2, tzinfo=dt.UTC)
        facts = (Fact("a-3", "alsskolen", dt.date(2010, 8, 1), "enrolled", "alsskolen", "", before),
                 Fact("a-4", "alsskolen", dt.date(2017, 6, 30), "left", "alsskolen", "", before),
                 Fact("a-4-fix", "alsskolen", dt.date(2017, 7, 31), "left", "alsskolen", "", after))
        return found[0], Evidence("pending_review", None, dt.date(2026, 6, 23), 300_000, "DKK",
                                  (("alsskolen", 200_000), ("nordborg-skole", 50_000)), facts)

    async def disputes_of_payment(self, institution: str, payment_id: str) -> list[DisputeView]:
        return []

    async def corrections_requested_of(self, institution: str) -> list[CorrectionRequest]:
        found = []
        for view in self.views():
            last = [r for r in self.published if r.dispute_id == view.dispute_id][-1]
            if (view.state == DisputeState.CORRECTION_REQUESTED and isinstance(last, DisputeResolved)
                    and last.requested_from == institution):
                own = tuple(f for f in (await self.dispute_with_evidence(view.dispute_id) or (None, None))[1].facts
                            if f.reported_by == institution)  # type: ignore[union-attr]
                found.append(CorrectionRequest(view.dispute_id, "mobility-bonus", "youth-education-completed",
                                               last.note, last.resolved_on, own))
        return found

    async def publish(self, record: DisputeOpened | DisputeResolved) -> None:
        self.published.append(record)

    async def correction_landed(self, outcome_key: str, event_id: str) -> bool:
        return (outcome_key, event_id) in self.landed


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


# ---- the operator's queue ------------------------------------------------------------------

def csrf_of(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


def disputed_by_two(client: TestClient) -> list[str]:
    """Alsskolen disputes, then Nordborg Skole: their ids, in that order; then the operator logs in."""
    ids = []
    for institution in ("alsskolen", "nordborg-skole"):
        log_in(client, institution)
        assert dispute(client, line_csrf(client), reason="stay_missing", note=f"note of {institution}"
                       ).status_code == 303  # type: ignore[attr-defined]
        ids.append(dispute_id(OUTCOME_KEY, institution))
        client.cookies.clear()
    log_in(client, "operator", start="/portal/operator")
    return ids


def test_the_operator_sees_open_disputes_oldest_first_with_the_evidence(client: TestClient) -> None:
    first, second = disputed_by_two(client)
    overview = client.get("/portal/operator")
    assert 'data-open-disputes="2"' in overview.text
    queue = client.get("/portal/operator/disputes")
    assert queue.status_code == 200
    assert queue.text.index(first) < queue.text.index(second)
    page = client.get(f"/portal/operator/disputes/{first}")
    assert page.status_code == 200
    assert "note of alsskolen" in page.text
    for event in ("a-3", "a-4", "a-4-fix"):
        assert f'data-event="{event}"' in page.text
    assert 'data-payee="nordborg-skole"' in page.text
    assert client.get("/portal/operator/disputes/" + "0" * 32).status_code == 404


def test_a_rejection_gives_the_institution_its_reason_and_releases_the_hold(
        client: TestClient, desk: MemoryDesk) -> None:
    first, _ = disputed_by_two(client)
    path = f"/portal/operator/disputes/{first}"
    token = csrf_of(client, path)
    assert client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "rejected"}).status_code == 400
    answer = client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "rejected",
                                                  "note": "Opholdet sluttede 30. juni, som skolen selv meldte."})
    assert answer.status_code == 303
    decision = desk.published[-1]
    assert isinstance(decision, DisputeResolved)
    assert (decision.dispute_id, decision.resolution, decision.resolved_by) == (first, Resolution.REJECTED, "operator")
    assert first not in client.get("/portal/operator/disputes").text  # no longer holds money
    assert client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "rejected",
                                                "note": "again"}).status_code == 409
    client.cookies.clear()
    log_in(client, "alsskolen")
    line = client.get(f"/portal/provisional/{PROVISIONAL_REF}").text
    assert 'data-dispute-state="rejected"' in line
    assert "Opholdet sluttede 30. juni, som skolen selv meldte." in line


def test_the_queue_says_which_dispute_came_after_its_outcome_was_in_a_payout_run(
        client: TestClient, desk: MemoryDesk) -> None:
    _first, second = disputed_by_two(client)
    desk.late[second] = "run-7"
    queue = client.get("/portal/operator/disputes").text
    row = queue[queue.index(f'data-dispute="{second}"'):]
    assert 'data-in-payout-run="run-7"' in row[:row.index("</tr>")]
    assert "allerede i udbetalingskørsel run-7" in row[:row.index("</tr>")]
    assert queue.count("data-in-payout-run") == 1  # the first was kept in time


def test_upholding_names_a_correcting_event_the_verifier_holds(client: TestClient, desk: MemoryDesk) -> None:
    first, _ = disputed_by_two(client)
    path = f"/portal/operator/disputes/{first}"
    token = csrf_of(client, path)
    for source in ("", "sonderborg-gymnasium"):  # nobody, or an institution with no part in the child's facts
        assert client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "correction_requested",
                                                    "requested_from": source, "note": "x"}).status_code == 400, source
    requested = client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "correction_requested",
                                                     "requested_from": "alsskolen",
                                                     "note": "Alsskolen: meld udmeldelsen 31. juli."})
    assert requested.status_code == 303
    assert first in client.get("/portal/operator/disputes").text  # still holds the money
    assert 'data-requested-from="alsskolen"' in client.get(path).text
    # The source reads the request on its statement, with its own events about the child.
    operator_cookies = dict(client.cookies)
    client.cookies.clear()
    log_in(client, "alsskolen")
    statement = client.get("/portal/statement").text
    assert f'data-correction="{first}"' in statement
    assert "Alsskolen: meld udmeldelsen 31. juli." in statement
    assert "a-4-fix" in statement
    client.cookies.clear()
    log_in(client, "nordborg-skole")
    assert "data-correction" not in client.get("/portal/statement").text  # asked of Alsskolen only
    client.cookies.clear()
    client.cookies.update(operator_cookies)
    # Nobody, no such event, another reporter's id, or a fact that was in before the dispute
    # (the disputed stay itself: naming it would release the money with nothing fixed).
    for named in ("", "alsskolen|no-such-event", "nordborg-skole|a-4-fix", "alsskolen|a-4"):
        assert client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "upheld",
                                                    "correcting_event": named}).status_code == 400, named
    # The right event, before the ledger holds the adjustment it made: upholding would release
    # the money at the amount the dispute said was wrong.
    early = client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "upheld",
                                                 "correcting_event": "alsskolen|a-4-fix"})
    assert early.status_code == 409
    assert not any(isinstance(r, DisputeResolved) and r.resolution == Resolution.UPHELD for r in desk.published)
    desk.landed.add((OUTCOME_KEY, "a-4-fix"))
    upheld = client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "upheld",
                                                  "correcting_event": "alsskolen|a-4-fix"})
    assert upheld.status_code == 303
    decision = desk.published[-1]
    assert isinstance(decision, DisputeResolved)
    assert (decision.resolution, decision.correcting_reported_by, decision.correcting_event_id) == (
        Resolution.UPHELD, "alsskolen", "a-4-fix")


def test_the_queue_and_its_decisions_are_refused_to_everyone_but_an_operator(
        client: TestClient, desk: MemoryDesk) -> None:
    first, _ = disputed_by_two(client)
    path = f"/portal/operator/disputes/{first}"
    token = csrf_of(client, path)
    sent = len(desk.published)
    assert client.post(f"{path}/decide", data={"csrf_token": "forged", "resolution": "rejected",
                                                "note": "x"}).status_code == 403
    client.cookies.clear()
    for where in ("/portal/operator/disputes", path):
        assert client.get(where).headers["location"] == "/portal/login"
    assert client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "rejected",
                                                "note": "x"}).headers["location"] == "/portal/login"
    for user in ("alsskolen", development_viewer("alsskolen")):
        log_in(client, user)
        own = csrf_of(client, "/portal/statement")
        for where in ("/portal/operator/disputes", path):
            assert client.get(where).status_code == 403, (user, where)
        assert client.post(f"{path}/decide", data={"csrf_token": own, "resolution": "rejected",
                                                    "note": "x"}).status_code == 403, user
        client.cookies.clear()
    assert len(desk.published) == sent


# ---- authorisation: every page and action, every kind of caller ----------------------------

ALSSKOLEN_DISPUTE = dispute_id(OUTCOME_KEY, "alsskolen")
INSTITUTION_PAGES = ("/portal/statement", "/portal/statement.csv", "/portal/statement.pdf", f"/portal/lines/{SCHOOL_LINE}",
                     f"/portal/provisional/{PROVISIONAL_REF}")
OPERATOR_PAGES = ("/portal/operator", "/portal/operator/disputes", f"/portal/operator/disputes/{ALSSKOLEN_DISPUTE}")
DECIDE_PATH = f"/portal/operator/disputes/{ALSSKOLEN_DISPUTE}/decide"
ACTIONS = (DISPUTE_PATH, DECIDE_PATH, "/portal/logout")


@pytest.fixture
def disputed(desk: MemoryDesk) -> MemoryDesk:
    """Alsskolen's dispute is open."""
    desk.published.append(opened(opened_on=desk.event_time))
    return desk


def act(client: TestClient, path: str, token: str | None) -> int:
    form = {"reason": "other", "resolution": "rejected", "note": "x"} | ({"csrf_token": token} if token else {})
    return client.post(path, data=form).status_code


def test_without_a_session_every_page_and_action_goes_to_the_log_in(client: TestClient, disputed: MemoryDesk) -> None:
    for path in (*INSTITUTION_PAGES, *OPERATOR_PAGES):
        assert client.get(path).headers["location"] == "/portal/login", path
    for path in ACTIONS:
        answer = client.post(path, data={"csrf_token": "x", "reason": "other", "resolution": "rejected", "note": "x"})
        assert answer.headers["location"] == "/portal/login", path
    assert len(disputed.published) == 1


@pytest.mark.parametrize(("user", "actions", "home"), [
    ("alsskolen", (DISPUTE_PATH, "/portal/logout"), "/portal/statement"),
    ("operator", (DECIDE_PATH, "/portal/logout"), "/portal/operator"),
])
def test_every_action_refuses_a_forged_or_missing_csrf_token_and_the_session_survives(
        client: TestClient, disputed: MemoryDesk, user: str, actions: tuple[str, ...], home: str) -> None:
    log_in(client, user, start=home)
    real = csrf_of(client, home)
    for path in actions:
        assert act(client, path, None) == 403, path
        assert act(client, path, "forged-" + real) == 403, path
        assert act(client, path, real[:-1]) == 403, path
    assert client.get(home).status_code == 200
    assert len(disputed.published) == 1


def test_an_institutions_lines_and_disputes_are_refused_to_another_institution(
        client: TestClient, disputed: MemoryDesk) -> None:
    log_in(client, "nordborg-skole")
    assert client.get(f"/portal/lines/{SCHOOL_LINE}").status_code == 404  # Alsskolen's line
    assert "1.342,33" not in client.get("/portal/statement").text
    csv_text = client.get("/portal/statement.csv").text
    assert SCHOOL_LINE not in csv_text
    assert OTHER_LINE in csv_text  # its own line is there: the check can fail
    # Nordborg Skole has its own part of the outcome, and does not see Alsskolen's dispute of it.
    assert "data-dispute-state" not in client.get(f"/portal/provisional/{PROVISIONAL_REF}").text
    client.cookies.clear()
    log_in(client, "sonderborg-gymnasium")  # the outcome pays it nothing
    token = csrf_of(client, "/portal/statement")
    assert client.get(f"/portal/provisional/{PROVISIONAL_REF}").status_code == 404
    assert act(client, DISPUTE_PATH, token) == 404
    assert len(disputed.published) == 1


def test_a_user_without_the_role_is_refused_every_page_and_action_of_another_role(
        client: TestClient, disputed: MemoryDesk) -> None:
    for user in ("alsskolen", development_viewer("alsskolen")):  # an institution's administrator, its viewer
        log_in(client, user)
        token = csrf_of(client, "/portal/statement")
        for path in OPERATOR_PAGES:
            assert client.get(path).status_code == 403, (user, path)
        assert act(client, DECIDE_PATH, token) == 403, user
        client.cookies.clear()
    log_in(client, development_viewer("alsskolen"))
    assert act(client, DISPUTE_PATH, csrf_of(client, "/portal/statement")) == 403  # a viewer may not dispute
    client.cookies.clear()
    log_in(client, "operator", start="/portal/operator")  # an operator reads no statement, disputes nothing
    token = csrf_of(client, "/portal/operator")
    for path in INSTITUTION_PAGES:
        assert client.get(path).headers["location"] == "/portal/operator", path
    assert client.post(DISPUTE_PATH, data={"csrf_token": token, "reason": "other"}).headers["location"] \
        == "/portal/operator"
    assert len(disputed.published) == 1


def test_a_held_payment_and_a_top_up_say_so_on_the_statement() -> None:
    rows = [ledger_row("1" * 32, 100_000), ledger_row("2" * 32, 4_918), ledger_row("3" * 32, 7_000)]
    lines = statement_lines(rows, {}, {}, held={"1" * 32, "2" * 32}, top_ups={"2" * 32})
    assert [(line.held, line.adjustment_reason) for line in lines] == [
        (True, None), (True, "amount_recomputed"), (False, None)]
    # Paid already: nothing to hold any more.
    paid = LedgerRow("settled", "1" * 32, None, "mobility-bonus", 1, "youth-education-completed", "k1:x", "DKK",
                     100_000, dt.date(2023, 6, 23), dt.date(2023, 7, 20), "REF-1")
    assert not statement_lines([rows[0], paid], {}, {}, held={"1" * 32})[0].held


# ---- the domain ---------------------------------------------------------------------------

def opened(**changes: object) -> DisputeOpened:
    fields: dict[str, object] = {
        "dispute_id": dispute_id(OUTCOME_KEY, "alsskolen"), "outcome_key": OUTCOME_KEY,
        "contract_id": "mobility-bonus", "outcome_id": "youth-education-completed", "institution": "alsskolen",
        "reason": "stay_missing", "opened_by": "alsskolen", "opened_on": dt.date(2026, 7, 7),
        "window_closes_on": CLOSES_ON}
    return DisputeOpened.model_validate({**fields, **changes})


def decided(resolution: Resolution, note: str = "", correcting: tuple[str, str] | None = None,
            requested_from: str | None = None) -> DisputeResolved:
    dispute = dispute_id(OUTCOME_KEY, "alsskolen")
    reporter, event_id = correcting or (None, None)
    return DisputeResolved(resolution_id=resolution_id(dispute, resolution, note, correcting, requested_from),
                           dispute_id=dispute, resolution=resolution, note=note, resolved_by="operator",
                           resolved_on=dt.date(2026, 7, 9), correcting_reported_by=reporter,
                           correcting_event_id=event_id, requested_from=requested_from)


def test_the_window_is_open_until_the_decision_date() -> None:
    assert window_refusal(CLOSES_ON, dt.date(2026, 7, 7)) is None
    assert window_refusal(CLOSES_ON, CLOSES_ON) == "review_window_closed"
    with pytest.raises(ValidationError, match="after the window closed"):
        opened(opened_on=CLOSES_ON)
    with pytest.raises(ValidationError, match="not the id"):
        opened(dispute_id="0" * 32)


def test_a_dispute_holds_until_it_is_upheld_or_rejected_and_a_rejection_gives_a_reason() -> None:
    assert fold_state([opened()]) == DisputeState.OPEN
    requested = decided(Resolution.CORRECTION_REQUESTED, requested_from="alsskolen")
    with pytest.raises(ValidationError, match="requested of a source"):
        decided(Resolution.CORRECTION_REQUESTED)
    with pytest.raises(ValidationError, match="requested of a source"):
        decided(Resolution.REJECTED, "no", requested_from="alsskolen")
    assert fold_state([opened(), requested]) == DisputeState.CORRECTION_REQUESTED
    upheld = decided(Resolution.UPHELD, correcting=("alsskolen", "alsskolen-fix-1"))
    assert fold_state([opened(), requested, upheld]) == DisputeState.UPHELD
    # A decision on a decided dispute changes nothing.
    rejected = decided(Resolution.REJECTED, "the stay ended on 30 June, as reported")
    assert fold_state([opened(), rejected, upheld]) == DisputeState.REJECTED
    assert fold_state([upheld]) is None
    with pytest.raises(ValidationError, match="needs a reason"):
        decided(Resolution.REJECTED, "  ")
    with pytest.raises(ValidationError, match="names the correcting event"):
        decided(Resolution.UPHELD, "right")
    with pytest.raises(ValidationError, match="only an upheld"):
        decided(Resolution.REJECTED, "no", correcting=("alsskolen", "k-1"))


# ---- tenants (docs/tenancy.md): a tenant's operator sees and decides its own contracts' disputes

@pytest.mark.parametrize("payer", ["sonderborg-kommune", "aabenraa-kommune"])
def test_a_tenants_operator_sees_and_decides_only_the_disputes_of_its_own_contracts(
        desk: MemoryDesk, payer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.domain.tenancy import Tenancy
    from shared.platform.settings import REPO_ROOT

    monkeypatch.setattr(BooksOfTwo, "payers", {"mobility-bonus": payer})
    monkeypatch.setattr(BooksOfTwo, "overviews_for", [])
    app = FastAPI()
    install(app)
    # The development operator acts for the registry's first municipality: Sønderborg, a tenant.
    portal = Portal(Accounts.from_settings(None, REGISTRY, production=False), REGISTRY, store=MemoryStore(),
                    reader=BooksOfTwo(), desk=desk,
                    tenancy=Tenancy.from_file(REPO_ROOT / "examples" / "tenants.yaml"))
    app.state.door = SimpleNamespace(portal=portal)
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    first, second = disputed_by_two(client)
    own = payer == "sonderborg-kommune"
    overview = client.get("/portal/operator")
    assert overview.status_code == 200
    assert BooksOfTwo.overviews_for == ["sonderborg-kommune"]  # its own contracts' money only
    assert (f'data-open-disputes="{2 if own else 0}"' in overview.text), overview.text
    queue = client.get("/portal/operator/disputes").text
    assert (first in queue, second in queue) == (own, own)
    path = f"/portal/operator/disputes/{first}"
    assert client.get(path).status_code == (200 if own else 404)  # another tenant's: "not found"
    if not own:
        token = csrf_of(client, "/portal/operator/disputes")
        decided = client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "rejected", "note": "x"})
        assert decided.status_code == 404
        assert not any(isinstance(r, DisputeResolved) for r in desk.published)


def test_a_cpr_number_in_a_note_is_refused_by_the_form_and_by_the_record(client: TestClient, desk: MemoryDesk) -> None:
    """A note is kept for good and read by people: a CPR number typed into it would be a
    raw CPR past the edge (the portal says so; the record itself refuses it too)."""
    import pydantic

    log_in(client, "alsskolen")
    refused = dispute(client, line_csrf(client), reason="other", note="Det er barn 170702-4000")
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert not desk.published
    client.cookies.clear()
    first, _ = disputed_by_two(client)
    path = f"/portal/operator/disputes/{first}"
    token = csrf_of(client, path)
    published = len(desk.published)
    for note in ("Barnet 170702-4000 gik ud 31/7", "cpr 1707024000"):
        refused = client.post(f"{path}/decide", data={"csrf_token": token, "resolution": "rejected", "note": note})
        assert refused.status_code == 400, note
        assert "CPR" in refused.text
    assert len(desk.published) == published  # nothing went out
    sample = next(r for r in desk.published if isinstance(r, DisputeOpened))
    with pytest.raises(pydantic.ValidationError, match="CPR"):
        DisputeOpened.model_validate({**sample.model_dump(), "note": "Barnet 170702-4000 gik ud"})


def test_with_tenants_an_operator_account_of_nobody_is_refused_and_only_the_clearing_houses_sees_all(
        desk: MemoryDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: an operator account neither listed in a tenant's `portal_users`, nor of a
    tenant's institution, nor named in `clearing_house_portal_users` sees and decides nothing
    (it used to see every payer's money and disputes)."""
    from services.frontdoor.portal.accounts import PortalUser, Role, _Account
    from shared.domain.tenancy import Tenancy
    from shared.platform.settings import REPO_ROOT

    monkeypatch.setattr(BooksOfTwo, "payers", {"mobility-bonus": "aabenraa-kommune"})
    monkeypatch.setattr(BooksOfTwo, "overviews_for", [])
    example = Tenancy.from_file(REPO_ROOT / "examples" / "tenants.yaml")
    assert example.clearing_house_portal_users  # the example names the clearing house's own accounts
    tenancy = Tenancy(example.all(), example.clearing_house_operators, ("clearing-desk",))
    development = Accounts.from_settings(None, REGISTRY, production=False)
    accounts = Accounts({**development._accounts,  # two operator accounts beside the development ones
                         # An operator account of an institution that is no tenant, listed nowhere.
                         "stranger": _Account(PortalUser("stranger", "alsskolen", Role.OPERATOR), None),
                         "clearing-desk": _Account(PortalUser("clearing-desk", "alsskolen", Role.OPERATOR), None)})
    app = FastAPI()
    install(app)
    store = MemoryStore()
    app.state.door = SimpleNamespace(portal=Portal(accounts, REGISTRY, store=store, reader=BooksOfTwo(),
                                                   desk=desk, tenancy=tenancy))
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    first, second = disputed_by_two(client)
    client.cookies.clear()

    log_in(client, "stranger", start="/portal/operator")
    # Its session's own form token: the decision is refused for who it is, not for a forged form.
    (token,) = [s.csrf_token for s in store.sessions.values() if s.user.username == "stranger"]
    for path in ("/portal/operator", "/portal/operator/disputes", f"/portal/operator/disputes/{first}"):
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert "handler ikke for nogen betaler" in refused.text, path  # Danish: the portal's default language
        assert "note of" not in refused.text, path  # no dispute's content shown
    decided_ = client.post(f"/portal/operator/disputes/{first}/decide",
                           data={"csrf_token": token, "resolution": "rejected", "note": "x"})
    assert decided_.status_code == 403
    assert not any(isinstance(r, DisputeResolved) for r in desk.published)
    assert BooksOfTwo.overviews_for == []  # no overview was even read for it
    client.cookies.clear()

    # The clearing house's own account sees every payer's money and disputes.
    log_in(client, "clearing-desk", start="/portal/operator")
    assert client.get("/portal/operator").status_code == 200
    assert BooksOfTwo.overviews_for == [None]
    queue = client.get("/portal/operator/disputes").text
    assert first in queue
    assert second in queue
