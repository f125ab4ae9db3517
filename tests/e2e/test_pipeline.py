"""End to end: the three services as processes, on the real broker and database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shared.contracts.loader import load_contract
from shared.processes import start_services, stop_services
from shared.settings import REPO_ROOT
from shared.topics import DEAD_LETTERS, INSTITUTION_EVENTS, in_namespace
from tests.engine_replay import admitted, event_line, expected_balances, read_lines, sealed
from tests.kafka_helpers import produce, read_all
from tests.ledger_helpers import ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
SAMPLE = REPO_ROOT / "examples" / "events" / "sample.jsonl"
CONTRACT = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")
SETTLE_TIMEOUT_S = 90.0


async def wait_for_balances(database_url: str, expected: dict[str, int]) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
    while True:
        state = await ledger_state(database_url)
        if state["balances"] == expected or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.5)


async def test_sample_events_flow_through_ingest_and_verifier_into_a_balanced_ledger(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    raw = read_lines(SAMPLE)
    expected = expected_balances([CONTRACT], admitted(raw))
    assert expected, "the sample must produce payments, or this test proves nothing"
    services = start_services(service_env, tmp_path)
    try:
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name, sealed(raw))
        state = await wait_for_balances(database_url, expected)
    finally:
        stop_services(services)
    assert state["balances"] == expected
    assert state["unbalanced"] == 0
    assert state["lines"] == 2 * len(state["entry_ids"])


async def test_malformed_events_are_dead_lettered_while_the_good_ones_around_them_reach_the_ledger(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    good = read_lines(SAMPLE)
    expected = expected_balances([CONTRACT], admitted(good))
    bad = [
        b'{"event_id": "broken", "occurred_on": ',  # bad JSON
        event_line("no-body", "2020-01-01", "alsskolen", "150904-4321", {})[:-1]
        .replace(b', "body": {}', b"") + b"}",  # missing field
        json.dumps({"event_id": "wrong-type", "occurred_on": 20200101, "reported_by": "alsskolen",
                    "subject": {"cpr": "1509044321"},
                    "body": {"type": "enrolled", "institution": "alsskolen"}}).encode(),
    ]
    good, bad = sealed(good), sealed(bad[1:])
    bad = [b'{"event_id": "broken", "occurred_on": ', *bad]
    interleaved = good[:5] + bad[:1] + good[5:12] + bad[1:2] + good[12:] + bad[2:]
    services = start_services(service_env, tmp_path)
    try:
        await produce(servers.bootstrap_servers,
                      in_namespace(INSTITUTION_EVENTS, namespace).name, interleaved)
        state = await wait_for_balances(database_url, expected)
        dead = await read_all(servers.bootstrap_servers, in_namespace(DEAD_LETTERS, namespace).name)
        assert all(s.running() for s in services.values()), "a service died on bad input"
    finally:
        stop_services(services)
    assert state["balances"] == expected
    reasons = sorted(json.loads(value)["reason"] for _, value in dead)
    assert reasons == ["malformed_json", "schema_violation", "schema_violation"]
    for _, value in dead:
        assert b"1509044321" not in value
        assert b"150904-4321" not in value
