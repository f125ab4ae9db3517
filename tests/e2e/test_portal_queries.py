"""The portal's reads on the real PostgreSQL, as the front door's own role: provisional
outcomes found by the institution among their payees, with the days left, and nothing of
an outcome that does not pay it; sessions and lock-out rows as the role may write them."""

from __future__ import annotations

import datetime as dt
import json

import asyncpg
import pytest

from services.frontdoor.portal.accounts import PortalUser, Role
from services.frontdoor.portal.queries import provisional_reference, read_provisional, read_provisional_line
from services.frontdoor.portal.sessions import PostgresPortalStore
from shared.domain.contracts.loader import load_contract
from shared.platform.settings import REPO_ROOT
from tests.servers import Servers
from tests.unit.builders import SUBJECT, enrolled, left, transition

pytestmark = pytest.mark.e2e
MOBILITY = load_contract(REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml")
KEY = f"mobility-bonus|youth-education-completed|{SUBJECT}|a-10"


async def as_owner(database_url: str) -> None:
    """What the verifier would have stored: a contract, a child's facts, a provisional decision."""
    connection = await asyncpg.connect(database_url)
    try:
        contract = MOBILITY.model_copy(update={"caps": MOBILITY.caps.model_copy(update={"review_days": 15})})
        await connection.execute("INSERT INTO verifier_contracts (contract_id, version, contract) VALUES ($1, $2, $3)",
                                 contract.contract_id, contract.version, contract.model_dump_json())
        await connection.execute("INSERT INTO verifier_subjects VALUES ($1, $2, 4)", SUBJECT, dt.date(2004, 9, 15))
        facts = [enrolled("a-3", "2010-08-01", "alsskolen"), left("a-4", "2017-06-30", "alsskolen"),
                 enrolled("a-5", "2017-08-15", "nordborg-skole"), left("a-6", "2020-06-26", "nordborg-skole"),
                 transition("a-10", "2023-06-23", "exam-authority", "exam_authority",
                            {"type": "education_completed", "programme": "stx", "level": "youth"})]
        for version, fact in enumerate(facts, start=1):
            await connection.execute(
                "INSERT INTO verifier_events (subject, version, event_id, reported_by, occurred_on, transition)"
                " VALUES ($1, $2, $3, $4, $5, $6)", SUBJECT, version, fact.event_id, fact.reported_by,
                fact.occurred_on, fact.model_dump_json())
        decision = {"type": "OutcomePending", "outcome_key": KEY, "contract_id": "mobility-bonus", "contract_version": 1,
                    "outcome_id": "youth-education-completed", "subject": SUBJECT, "trigger_event_id": "a-10",
                    "status": "pending_review", "reason": None, "occurred_on": "2023-06-23", "owed_minor": 3_000_000,
                    "currency": "DKK", "payees": [["alsskolen", 2_000_000], ["nordborg-skole", 1_000_000]]}
        await connection.execute(
            "INSERT INTO verifier_outcomes (outcome_key, subject, contract_id, status, reason, owed_minor, decision)"
            " VALUES ($1, $2, 'mobility-bonus', 'pending_review', NULL, 3000000, $3)", KEY, SUBJECT,
            json.dumps(decision))
        # Event time: the verifier's finality frontier (issue 26), final through 30 June.
        await connection.execute("UPDATE verifier_frontier SET final_through = '2023-06-30', watermark = '2023-06-30'")
    finally:
        await connection.close()


async def test_provisional_outcomes_are_read_for_the_institutions_they_pay_only(
        servers: Servers, database_url: str) -> None:
    await as_owner(database_url)
    pool = await asyncpg.create_pool(servers.role_url("frontdoor", database_url.rpartition("/")[2]),
                                     min_size=1, max_size=2)
    assert pool is not None
    try:
        lines, now = await read_provisional(pool, "alsskolen")
        assert [(x.reference, x.own_minor, x.others_minor) for x in lines] == [
            (provisional_reference(KEY), 2_000_000, 1_000_000)]
        # The review window ends 15 days after the outcome counts; the frontier says 30 June.
        assert (now, lines[0].decided_on, lines[0].days_left) == (dt.date(2023, 6, 30), dt.date(2023, 7, 8), 8)
        assert await read_provisional(pool, "sonderborg-gymnasium") == ([], now)

        opened = await read_provisional_line(pool, "alsskolen", provisional_reference(KEY))
        assert opened is not None
        _, detail = opened
        assert [(s.start, s.end, s.event_ids) for s in detail.stays] == [
            (dt.date(2010, 8, 1), dt.date(2017, 6, 30), ("a-3", "a-4"))]
        assert "a-5" not in repr(detail)
        assert await read_provisional_line(pool, "sonderborg-gymnasium", provisional_reference(KEY)) is None

        # Sessions and failed log-ins, as the front door's role writes them.
        store = PostgresPortalStore(pool)
        cookie, session = await store.open_session(PortalUser("anna", "alsskolen", Role.VIEWER))
        assert await store.session(cookie) == session
        assert await store.session(cookie + "x") is None
        await store.close_session(cookie)
        assert await store.session(cookie) is None
        operator_cookie, _ = await store.open_session(PortalUser("operator", "sonderborg-kommune", Role.OPERATOR))
        found = await store.session(operator_cookie)
        assert found is not None
        assert found.user.role == Role.OPERATOR
        await store.record_failure("anna")
        await store.record_failure("anna")
        assert len(await store.failures("anna")) == 2
        await store.clear_failures("anna")
        assert await store.failures("anna") == []
    finally:
        await pool.close()
