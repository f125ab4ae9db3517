"""End to end: the three services as processes, on the real broker and database, the
ledger compared with the independent oracle (tests/oracle.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.platform.processes import ServiceProcess, start_services, stop_services
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import DEAD_LETTERS, INSTITUTION_EVENTS, in_namespace
from tests import oracle
from tests.engine_replay import event_line, read_lines, sealed
from tests.kafka_helpers import produce, read_all, wait_settled
from tests.ledger_helpers import ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
SAMPLE = REPO_ROOT / "examples" / "events" / "sample.jsonl"
CONTRACT_FILE = REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml"
KINDS = oracle.registry_kinds(REPO_ROOT / "examples" / "institutions.yaml")
SETTLE_TIMEOUT_S = 90.0


async def settled_state(servers: Servers, namespace: str, database_url: str,
                        services: dict[str, ServiceProcess]) -> dict[str, object]:
    """The ledger once every stage has committed the end of its input: later double
    payments would already be in it, so one look is the whole answer."""
    await wait_settled(servers.bootstrap_servers, namespace, database_url, list(services.values()), SETTLE_TIMEOUT_S)
    return await ledger_state(database_url)


async def test_sample_events_flow_through_ingest_and_verifier_into_a_balanced_ledger(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    raw = read_lines(SAMPLE)
    expected = oracle.expected_balances([CONTRACT_FILE], raw, KINDS)
    assert expected, "the sample must produce payments, or this test proves nothing"
    services = start_services(service_env, tmp_path)
    try:
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name, sealed(raw))
        state = await settled_state(servers, namespace, database_url, services)
    finally:
        stop_services(services)
    assert state["balances"] == expected
    assert state["unbalanced"] == 0
    assert state["lines"] == 2 * len(state["entry_ids"])


async def test_malformed_events_are_dead_lettered_while_the_good_ones_around_them_reach_the_ledger(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    good = read_lines(SAMPLE)
    expected = oracle.expected_balances([CONTRACT_FILE], good, KINDS)
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
        state = await settled_state(servers, namespace, database_url, services)
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


async def test_worked_example_2_reaches_the_ledger_to_the_ore_under_the_mobility_bonus(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    # The sample's first child is DOMAIN.md's worked example 2: its college (only ever
    # paid for this completion) must hold exactly the 574,031 øre the description gives.
    contract = REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml"
    raw = read_lines(SAMPLE)
    expected = oracle.expected_balances([contract], raw, KINDS)
    assert expected["receivable:sonderborg-gymnasium:pending"] == 574_031
    services = start_services({**service_env, "CONTRACT_FILES": str(contract)}, tmp_path)
    try:
        await produce(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name, sealed(raw))
        state = await settled_state(servers, namespace, database_url, services)
    finally:
        stop_services(services)
    assert state["balances"] == expected
    assert state["unbalanced"] == 0
