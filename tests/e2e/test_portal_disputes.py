"""A dispute as people make and decide it, on the real stack, in Chromium (issue 29).

The sample runs through ingest, the verifier and the ledger up to a watermark inside the
college's outcome's review window. The college's administrator disputes its expected line
(wrong dates); another institution can neither open nor dispute it. The window closes: the
outcome is final and instructed, and a payout run holds every payment of it. The operator
asks the college for a correcting event, which the college reads on its statement; it
sends its correction (its stay began earlier); the verifier moves the money by the
difference (a top-up for the college, less for the others). The operator upholds the dispute
naming that correcting event; the next payout run pays the outcome; the college reads the
payment and the adjustment, and its dispute upheld, on its statement.

Amounts on the pages are checked against the ledger's rows, formatted here by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.frontdoor.portal.accounts import development_password
from services.frontdoor.portal.queries import read_statement
from shared.platform.processes import start_services, stop_services
from shared.platform.topics import INSTITUTION_EVENTS, PAYMENTS, TRANSITIONS, in_namespace
from tests.e2e.test_finance import stafet
from tests.e2e.test_portal_browser import COLLEGE, MOBILITY, REVIEW_WATERMARK, SAMPLE, in_the_browser, kroner_da
from tests.engine_replay import read_lines, sealed
from tests.kafka_helpers import produce, publish_watermark, wait_settled
from tests.servers import Servers

pytestmark = pytest.mark.e2e
OTHER = "ebc-sonderborg"  # registered, and paid nothing by the college's outcome
CPR = "150904-4321"       # the sample's child whose youth education is the college's outcome
CORRECTION = [  # the college's own correction: its enrolment was on 1 August 2020, not the 10th
    {"event_id": "a-8r", "occurred_on": "2023-07-10", "reported_by": COLLEGE, "subject": {"cpr": CPR},
     "body": {"type": "retraction", "retracts_event_id": "a-8", "reason": "wrong date"}},
    {"event_id": "a-8b", "occurred_on": "2020-08-01", "reported_by": COLLEGE, "subject": {"cpr": CPR},
     "body": {"type": "enrolled", "institution": COLLEGE, "stage": "youth"}},
]
SETTLE_S = 120


async def rows(database_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def payout(env: dict[str, str], journal: str, out: Path) -> set[str]:
    """A payout run as finance makes it: the payment ids it took (none: no run recorded)."""
    query = "SELECT payment_id, export_id FROM payout_lines"
    before = {(r["payment_id"], r["export_id"]) for r in await rows(env["OWNER_URL"], query)}
    code, _out, err = await stafet(env, "finance", "payout", "--from", "2000-01-01", "--to", "2030-12-31",
                                  "--execution-date", "2024-01-31", "--journal-topic", journal, "--format", "csv",
                                  "--out", str(out))
    assert code == 0, err
    return {payment for payment, run in {(r["payment_id"], r["export_id"]) for r in await rows(env["OWNER_URL"], query)}
            - before}


async def test_a_dispute_holds_the_money_until_the_operator_upholds_the_sources_correction(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    journal = in_namespace(PAYMENTS, namespace).name
    finance = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers,
               "OWNER_URL": database_url}
    browser: dict[str, str] = {"USER": COLLEGE, "PASSWORD": development_password(COLLEGE), "OTHER_USER": OTHER,
                               "OTHER_PASSWORD": development_password(OTHER),
                               "OPERATOR_PASSWORD": development_password("operator")}
    services = start_services({**service_env, "CONTRACT_FILES": str(MOBILITY)}, tmp_path)
    running = list(services.values())
    try:
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name,
                      sealed(read_lines(SAMPLE)))
        await wait_settled(servers.bootstrap_servers, namespace, database_url, running, SETTLE_S,
                           stages=("ingest",), watermark=False)
        await publish_watermark(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name, REVIEW_WATERMARK)
        await wait_settled(servers.bootstrap_servers, namespace, database_url, running, SETTLE_S, watermark=False)

        # In the review window: the college disputes its expected line; another institution cannot.
        disputing = await in_the_browser(service_env, tmp_path, "dispute", script="disputes.mjs", **browser)
        assert disputing["form"]["axe"] == []
        assert (disputing["sent"]["state"], disputing["sent"]["form"]) == ("open", 0)
        assert disputing["sent"]["words"].startswith("Indsigelse modtaget: pengene holdes tilbage")
        assert (disputing["other"]["open"], disputing["other"]["dispute"]) == (404, 404)
        assert "Eleven begyndte" not in disputing["other"]["text"]
        [kept] = await rows(database_url, "SELECT institution, state, outcome_key, opened_record"
                                          " FROM ledger_dispute_states")
        assert (kept["institution"], kept["state"]) == (COLLEGE, "open")
        assert json.loads(kept["opened_record"])["reason"] == "wrong_dates"
        contract_id, outcome_id, subject, trigger = kept["outcome_key"].split("|")

        # The window closes: the outcome is final and instructed, and its payments are held.
        await wait_settled(servers.bootstrap_servers, namespace, database_url, running, SETTLE_S)
        of_outcome = "SELECT payment_id, payee, amount_minor FROM ledger_entries WHERE kind = 'payment'" \
                     " AND (contract_id, outcome_id, subject, trigger_event_id) = ($1, $2, $3, $4) ORDER BY sequence"
        instructed = await rows(database_url, of_outcome, contract_id, outcome_id, subject, trigger)
        assert COLLEGE in {r["payee"] for r in instructed}
        first_run = await payout(finance, journal, tmp_path / "run-1.csv")
        assert not first_run & {r["payment_id"] for r in instructed}, "a disputed outcome's payment was paid"
        # The college's statement says why its payment waits.
        pool = await asyncpg.create_pool(servers.role_url("frontdoor", database_url.rpartition("/")[2]),
                                         min_size=1, max_size=1)
        assert pool is not None
        try:
            statement, _ = await read_statement(pool, COLLEGE)
        finally:
            await pool.close()
        assert [(line.payment_id, line.held) for line in statement.lines] == [
            (r["payment_id"], True) for r in instructed if r["payee"] == COLLEGE]

        # The operator asks the college, the source of the disputed stay, for a correcting event;
        # the college reads the request on its statement, with its own events about the child.
        requesting = await in_the_browser(service_env, tmp_path, "request", script="disputes.mjs",
                                          REQUESTED_FROM=COLLEGE, **browser)
        assert requesting["queue"]["rows"] == ["correction_requested"]
        [request] = requesting["source"]["requests"]
        assert request[3] == "Send indmeldelsen 1. august 2020, og tilbagekald a-8."
        assert "a-8 (10. aug. 2020, enrolled)" in request[4]
        assert "a-3" not in request[4]  # Alsskolen's, not the college's
        assert requesting["source"]["axe"] == []

        # The source corrects its facts; the verifier moves the money by the difference.
        # Keyed by the child, as `stafet publish` keys a subject's events, so that they keep their
        # order: the adjustment's id derives from the correction's last event (a-8b), the one the
        # operator names. Unkeyed, the two went to random partitions, ingest forwarded them in
        # either order, and the upheld decision was refused now and then (409: no adjustment made
        # by a-8b) — seen twice in clean-clone CI runs.
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name,
                      sealed(json.dumps(event).encode() for event in CORRECTION), keys=[b"the-child"] * len(CORRECTION))
        await wait_settled(servers.bootstrap_servers, namespace, database_url, running, SETTLE_S)
        college = [r for r in await rows(database_url, of_outcome, contract_id, outcome_id, subject, trigger)
                   if r["payee"] == COLLEGE]
        assert len(college) == 2, college  # the payment, and the top-up the correction made
        [now] = await rows(database_url, "SELECT decision FROM verifier_outcomes WHERE outcome_key = $1",
                           kept["outcome_key"])
        owed_now = dict(json.loads(now["decision"])["payees"])[COLLEGE]
        assert college[0]["amount_minor"] < owed_now == college[0]["amount_minor"] + college[1]["amount_minor"]
        still_held = await payout(finance, journal, tmp_path / "run-2.csv")
        assert not still_held & {r["payment_id"] for r in college}

        # The operator upholds the dispute, naming the correcting event.
        deciding = await in_the_browser(service_env, tmp_path, "decide", script="disputes.mjs",
                                        CORRECTING=f"{COLLEGE}|a-8b", **browser)
        assert deciding["overview"]["open"] == "1"
        assert [row["state"] for row in deciding["queue"]["rows"]] == ["correction_requested"]
        assert "a-8b" in deciding["dispute"]["facts"]
        assert COLLEGE in deciding["dispute"]["payees"]
        assert deciding["dispute"]["note"].startswith("Eleven begyndte hos os 1. august 2020")
        assert deciding["queue"]["axe"] == []
        assert deciding["dispute"]["axe"] == []
        assert deciding["after"]["rows"] == 0
        [decided] = await rows(database_url, "SELECT state, latest_record FROM ledger_dispute_states")
        assert decided["state"] == "upheld"
        assert json.loads(decided["latest_record"])["correcting_event_id"] == "a-8b"

        # The money moves: the next run pays the outcome, the college's payment and its top-up.
        third_run = await payout(finance, journal, tmp_path / "run-3.csv")
        assert {r["payment_id"] for r in college} <= third_run

        # The college reads the payment and the adjustment, in a payout run, and its dispute upheld.
        adjusted = await in_the_browser(service_env, tmp_path, "adjusted", script="disputes.mjs", **browser)
    finally:
        stop_services(services)
    statement = adjusted["statement"]
    assert [row["payment"] for row in statement["rows"]] == [r["payment_id"] for r in college]
    assert [row["state"] for row in statement["rows"]] == ["in_payout", "in_payout"]
    assert "Regulering: beløbet blev beregnet igen" not in statement["rows"][0]["cells"][5]
    assert "Regulering: beløbet blev beregnet igen" in statement["rows"][1]["cells"][5]  # the top-up
    assert [row["cells"][4] for row in statement["rows"]] == [kroner_da(r["amount_minor"]) for r in college]
    assert statement["total"] == kroner_da(sum(r["amount_minor"] for r in college))
    assert statement["axe"] == []
    line: dict[str, Any] = adjusted["line"]
    assert line["state"] == "upheld"
    assert line["words"].startswith("Medhold: oplysningerne er rettet")
    assert line["note"] == "Rettet af gymnasiet selv: indmeldelsen 1. august 2020."
