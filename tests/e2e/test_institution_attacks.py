"""What one institution can do with its own valid token, on the real broker and
PostgreSQL (issue 25): each attack that once moved money or stopped the line, refused or
survived. docs/security.md lists them with these tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.frontdoor.auth import development_token
from shared.platform.processes import ServiceProcess
from shared.platform.stack import free_port
from shared.platform.topics import DEAD_LETTERS, INSTITUTION_EVENTS, TRANSITIONS, in_namespace
from tests.e2e.test_frontdoor import wait_until_serving
from tests.engine_replay import event_line, sealed
from tests.kafka_helpers import produce, read_all
from tests.servers import Servers

pytestmark = pytest.mark.e2e
BOUND_S = 60.0  # good events after a poison record are through within this
CPR = "150904-4321"
NDJSON = {"content-type": "application/x-ndjson"}


def enrolled(event_id: str, reported_by: str = "alsskolen", cpr: str = CPR, on: str = "2010-08-01") -> bytes:
    return event_line(event_id, on, reported_by, cpr, {"type": "enrolled", "institution": reported_by})


def full_width(text: str) -> str:
    return "".join(chr(0xFF10 + int(c)) if c.isascii() and c.isdigit() else c for c in text)


def poison_lines() -> dict[str, bytes]:
    """The three records that once stopped a partition for good, as an institution sends them."""
    good = json.loads(enrolled("poison"))
    return {
        "number_too_long": json.dumps({**good, "event_id": "p-number"}).encode().replace(
            b'"alsskolen"}', b'"alsskolen", "stage": ' + b"9" * 5000 + b"}"),
        "nesting_too_deep": json.dumps({**good, "event_id": "p-deep"}).encode().replace(
            b'"alsskolen"}', b'"alsskolen", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"),
        "invalid_cpr": json.dumps({**good, "event_id": "p-wide", "subject": {"cpr": full_width(CPR)}},
                                  ensure_ascii=False).encode(),
    }


async def until(check: object, what: str, timeout_s: float = BOUND_S) -> object:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await check()  # type: ignore[operator]
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.5)


async def records_on(servers: Servers, namespace: str, spec: object) -> list[dict[str, object]]:
    return [json.loads(v) for _, v in await read_all(servers.bootstrap_servers, in_namespace(spec, namespace).name)]  # type: ignore[arg-type]


# ---- no poison pill ---------------------------------------------------------------------

async def test_three_poison_records_are_dead_lettered_and_the_good_events_after_them_go_through(
        servers: Servers, namespace: str, service_env: dict[str, str], tmp_path: Path) -> None:
    topic = in_namespace(INSTITUTION_EVENTS, namespace).name
    ingest = ServiceProcess("ingest", service_env, tmp_path / "ingest.log")
    ingest.start()
    try:
        # One partition (one key), the poison first: before the fix, nothing after it was read.
        poison = poison_lines()
        wide = sealed([poison["invalid_cpr"]])  # sealed as stafet publish would, full-width digits and all
        records = [poison["number_too_long"], poison["nesting_too_deep"], *wide,
                   *sealed([enrolled(f"after-{n}", cpr=CPR) for n in range(4)])]
        started = time.monotonic()
        await produce(servers.bootstrap_servers, topic, records, keys=[b"one-partition"] * len(records),
                      signed_as="institution:alsskolen")

        async def all_through() -> list[dict[str, object]]:
            found = await records_on(servers, namespace, TRANSITIONS)
            return found if len(found) == 4 else []

        forwarded = await until(all_through, "the good events after the poison were not forwarded")
        took_s = time.monotonic() - started
        dead = await until(lambda: _at_least(records_on(servers, namespace, DEAD_LETTERS), 3), "no dead letters")
        assert ingest.running()
    finally:
        ingest.stop()
    assert sorted(t["event_id"] for t in forwarded) == [f"after-{n}" for n in range(4)]  # type: ignore[index]
    assert sorted(d["reason"] for d in dead) == ["invalid_cpr", "nesting_too_deep", "number_too_long"]  # type: ignore[index]
    assert took_s < BOUND_S
    log = (tmp_path / "ingest.log").read_text()
    assert "batch_failed_will_retry" not in log


async def _at_least(found: object, count: int) -> list[dict[str, object]]:
    records = await found  # type: ignore[misc]
    return records if len(records) >= count else []


def _front_door(service_env: dict[str, str], tmp_path: Path, **settings: str) -> tuple[ServiceProcess, str]:
    port = free_port()
    door = ServiceProcess("frontdoor", {**service_env, "FRONT_DOOR_PORT": str(port), **settings},
                          tmp_path / "frontdoor.log")
    door.start()
    return door, f"http://127.0.0.1:{port}"


def token(institution: str) -> dict[str, str]:
    return {"authorization": f"Bearer {development_token(institution)}"}


async def test_the_front_door_answers_poison_lines_per_line_and_forwards_the_good_ones_in_the_same_batch(
        servers: Servers, namespace: str, service_env: dict[str, str], tmp_path: Path) -> None:
    door, base = _front_door(service_env, tmp_path)
    try:
        await wait_until_serving(base, door, tmp_path / "frontdoor.log")
        poison = poison_lines()
        batch = b"\n".join([enrolled("fd-good-1"), poison["number_too_long"], poison["nesting_too_deep"],
                            poison["invalid_cpr"], enrolled("fd-good-2", cpr="020303-4999")])
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            answer = await client.post("/v1/events", content=batch, headers={**token("alsskolen"), **NDJSON})
            single = await client.post("/v1/events", content=poison["nesting_too_deep"],
                                       headers={**token("alsskolen"), "content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert [(r["line"], r["status"], r["reason"]) for r in answer.json()["results"]] == [
            (1, "accepted", None), (2, "refused", "number_too_long"), (3, "refused", "nesting_too_deep"),
            (4, "refused", "invalid_cpr"), (5, "accepted", None)]
        assert single.status_code == 200
        assert single.json()["results"][0]["reason"] == "nesting_too_deep"
        raw = await until(lambda: _at_least(records_on(servers, namespace, INSTITUTION_EVENTS), 2), "not forwarded")
        assert len(raw) == 2
        assert door.running()
    finally:
        door.stop()


# ---- the front door holds no slow body ------------------------------------------------------

def _slow_post(port: int, length: int = 1000) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall((f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                        f"{development_token('alsskolen')}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {length}\r\n\r\n{{").encode())
    return connection


def _answer_status(connection: socket.socket) -> int:
    head = connection.recv(4096).decode("latin-1")
    return int(head.split(" ", 2)[1])


async def test_a_slow_body_is_cut_with_408_and_open_bodies_are_bounded(
        servers: Servers, namespace: str, service_env: dict[str, str], tmp_path: Path) -> None:
    door, base = _front_door(service_env, tmp_path, FRONT_DOOR_BODY_TIMEOUT_S="3",
                             FRONT_DOOR_OPEN_BODIES_MAX="2")
    port = int(base.rsplit(":", 1)[1])
    try:
        await wait_until_serving(base, door, tmp_path / "frontdoor.log")
        started = time.monotonic()
        slow = [_slow_post(port), _slow_post(port)]
        await asyncio.sleep(0.5)
        for connection in slow:
            connection.sendall(b" ")  # a byte now and then, as the attack did
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            third = await client.post("/v1/events", content=enrolled("while-busy"),
                                      headers={**token("alsskolen"), "content-type": "application/json"})
            assert third.status_code == 503  # no third body is taken while two are open
            statuses = [await asyncio.to_thread(_answer_status, c) for c in slow]
            cut_after_s = time.monotonic() - started
            for connection in slow:
                connection.close()
            after = await client.post("/v1/events", content=enrolled("after-slow"),
                                      headers={**token("alsskolen"), "content-type": "application/json"})
        assert statuses == [408, 408]
        assert cut_after_s < 10
        assert after.status_code == 200, after.text
        assert after.json()["accepted"] == 1
    finally:
        door.stop()


# ---- ids belong to their reporter ----------------------------------------------------------

def exam_result(event_id: str, cpr: str = CPR, grade: float = 2.0) -> bytes:
    return event_line(event_id, "2020-06-20", "exam-authority", cpr,
                      {"type": "exam_result", "grades": {"danish": grade, "maths": grade}})


async def verifier_keys(database_url: str) -> set[tuple[str, str]]:
    connection = await asyncpg.connect(database_url)
    try:
        return {(r["reported_by"], r["event_id"]) for r in await connection.fetch(
            "SELECT reported_by, event_id FROM verifier_events")}
    finally:
        await connection.close()


async def test_an_institution_cannot_squat_another_ones_event_id_nor_swap_the_child_under_its_own(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    topic = in_namespace(INSTITUTION_EVENTS, namespace).name
    door, base = _front_door(service_env, tmp_path)
    ingest = ServiceProcess("ingest", service_env, tmp_path / "ingest.log")
    verifier = ServiceProcess("verifier", service_env, tmp_path / "verifier.log")
    ingest.start()
    verifier.start()
    json_type = {"content-type": "application/json"}
    try:
        await wait_until_serving(base, door, tmp_path / "frontdoor.log")
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            # A school takes the ids the exam authority is about to use: through the front
            # door and as stafet publish does (sealed, signed by the school).
            squat = await client.post("/v1/events", content=enrolled("exam-2024-0001", "nordborg-skole"),
                                      headers={**token("nordborg-skole"), **json_type})
            assert squat.json()["accepted"] == 1
            await produce(servers.bootstrap_servers, topic, sealed([enrolled("exam-2024-0002", "nordborg-skole")]))
            await until(lambda: _at_least(records_on(servers, namespace, TRANSITIONS), 2), "squats not forwarded")
            # The exam authority's genuine results under those ids, both ways.
            genuine = await client.post("/v1/events", content=exam_result("exam-2024-0001"),
                                        headers={**token("exam-authority"), **json_type})
            assert genuine.json()["results"][0]["status"] == "accepted", genuine.text
            await produce(servers.bootstrap_servers, topic, sealed([exam_result("exam-2024-0002")]))
            # The same id again with another child: a conflict, never a duplicate.
            first = await client.post("/v1/events", content=enrolled("child-1"),
                                      headers={**token("alsskolen"), **json_type})
            swapped = await client.post("/v1/events", content=enrolled("child-1", cpr="020303-4999"),
                                        headers={**token("alsskolen"), **json_type})
            again = await client.post("/v1/events", content=enrolled("child-1"),
                                      headers={**token("alsskolen"), **json_type})
        assert first.json()["results"][0]["status"] == "accepted"
        assert swapped.json()["results"][0]["reason"] == "conflicting_duplicate"
        assert again.json()["results"][0]["status"] == "duplicate"
        # Through ingest (the publish path): the second child is dead-lettered, not dropped.
        await produce(servers.bootstrap_servers, topic, sealed([enrolled("child-2")]))
        await until(lambda: _at_least(records_on(servers, namespace, TRANSITIONS), 5), "child-2 not forwarded")
        await produce(servers.bootstrap_servers, topic, sealed([enrolled("child-2", cpr="020303-4999")]))
        dead = await until(lambda: _at_least(records_on(servers, namespace, DEAD_LETTERS), 1), "no conflict")
        expected = {("nordborg-skole", "exam-2024-0001"), ("nordborg-skole", "exam-2024-0002"),
                    ("exam-authority", "exam-2024-0001"), ("exam-authority", "exam-2024-0002"),
                    ("alsskolen", "child-1"), ("alsskolen", "child-2")}

        async def stored() -> set[tuple[str, str]]:
            found = await verifier_keys(database_url)
            return found if found == expected else set()

        await until(stored, "the verifier does not hold both institutions' events")
        transitions = await records_on(servers, namespace, TRANSITIONS)
        assert all(s.running() for s in (door, ingest, verifier))
    finally:
        for service in (door, ingest, verifier):
            service.stop()
    assert sorted((t["reported_by"], t["event_id"]) for t in transitions) == sorted(expected)  # type: ignore[index]
    assert [(d["reason"], d["record_id"]) for d in dead] == [("conflicting_duplicate", "child-2")]  # type: ignore[index]
