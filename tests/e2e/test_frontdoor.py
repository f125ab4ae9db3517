"""The institutions' HTTP front door on the real broker and database, with ingest running:
accepted lines reach the transitions topic by ingest's admission, refused lines get
reason codes at once, and sending the same events again forwards nothing twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from services.frontdoor.auth import development_token
from shared.platform.processes import ServiceProcess
from shared.platform.stack import free_port
from shared.platform.topics import INSTITUTION_EVENTS, TRANSITIONS, in_namespace
from tests.kafka_helpers import read_all
from tests.servers import Servers

pytestmark = pytest.mark.e2e
NDJSON = {"content-type": "application/x-ndjson"}


def event(event_id: str, reported_by: str = "alsskolen", cpr: str = "150904-4321",
          stage: str = "primary") -> dict[str, object]:
    return {"event_id": event_id, "occurred_on": "2010-08-01", "reported_by": reported_by,
            "subject": {"cpr": cpr}, "body": {"type": "enrolled", "institution": reported_by, "stage": stage}}


def lines(*events: dict[str, object] | str) -> bytes:
    return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events).encode() + b"\n"


async def wait_until_serving(base: str, door: ServiceProcess, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + 90
    async with httpx.AsyncClient() as client:
        while True:
            assert door.running(), log.read_text()[-3000:]
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "the front door did not start"
            await asyncio.sleep(0.3)


async def wait_for_records(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes]]:
    deadline = asyncio.get_running_loop().time() + 90
    while len(found := await read_all(bootstrap, topic)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(found)} of {count} records on {topic}"
        await asyncio.sleep(0.5)
    return found


async def test_the_front_door_accepts_refuses_with_reason_codes_and_is_idempotent(
        servers: Servers, namespace: str, service_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    door = ServiceProcess("frontdoor", {**service_env, "FRONT_DOOR_PORT": str(port)}, tmp_path / "frontdoor.log")
    ingest = ServiceProcess("ingest", service_env, tmp_path / "ingest.log")
    door.start()
    ingest.start()
    school = {"authorization": f"Bearer {development_token('alsskolen')}"}
    try:
        await wait_until_serving(base, door, tmp_path / "frontdoor.log")
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            # No token, a wrong token, a wrong content type.
            assert (await client.post("/v1/events", json=event("x-1"))).status_code == 401
            wrong = {"authorization": "Bearer not-a-token"}
            assert (await client.post("/v1/events", json=event("x-1"), headers=wrong)).status_code == 401
            plain = {**school, "content-type": "text/plain"}
            assert (await client.post("/v1/events", content=b"{}", headers=plain)).status_code == 415

            # One event as JSON.
            single = await client.post("/v1/events", json=event("fd-1"), headers=school)
            assert single.status_code == 200, single.text
            assert single.json()["results"] == [{"line": 1, "event_id": "fd-1", "status": "accepted",
                                                 "reason": None, "field": None, "message": None}]

            # A batch: good lines, and one of each refusal the front door can give at once.
            batch = lines(event("fd-2"), event("fd-3", cpr="150904-4322"),
                          "{not json",
                          event("fd-4", reported_by="nordborg-skole"),          # not the caller
                          {**event("fd-5"), "occurred_on": "2010-02-30"},
                          event("fd-6", cpr="320104-4321"),                     # no 32nd day
                          event("fd-7", stage="x" * 65),
                          {**event("fd-8"), "subject": {}},
                          event("fd-1"))                                         # sent before, same content
            answer = await client.post("/v1/events", content=batch, headers={**school, **NDJSON})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            statuses = [(r["line"], r["status"], r["reason"]) for r in body["results"]]
            assert statuses == [
                (1, "accepted", None), (2, "accepted", None), (3, "refused", "malformed_json"),
                (4, "refused", "reporter_mismatch"), (5, "refused", "schema_violation"),
                (6, "refused", "invalid_cpr"), (7, "refused", "schema_violation"),
                (8, "refused", "unknown_subject_reference"), (9, "duplicate", None)]
            assert (body["accepted"], body["duplicates"], body["refused"]) == (2, 1, 6)
            assert "320104" not in answer.text  # refusal messages never echo a CPR number

            # The same batch again: nothing new; a changed event under a used id: refused.
            again = await client.post("/v1/events", content=batch, headers={**school, **NDJSON})
            assert [r["status"] for r in again.json()["results"]][:2] == ["duplicate", "duplicate"]
            assert again.json()["accepted"] == 0
            changed = await client.post("/v1/events", json=event("fd-2", stage="other"), headers=school)
            assert changed.json()["results"][0]["reason"] == "conflicting_duplicate"
            # An exam result from a school: ingest's trust rule, answered at once.
            exam = {**event("fd-9"), "body": {"type": "exam_result", "grades": {"danish": 7, "maths": 7}}}
            untrusted = await client.post("/v1/events", json=exam, headers=school)
            assert untrusted.json()["results"][0]["reason"] == "untrusted_source"

        # Ingest admitted exactly the three accepted events: each once, pseudonymised.
        transitions = await wait_for_records(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name, 3)
        await asyncio.sleep(2)  # anything forwarded twice would arrive by now
        transitions = await read_all(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name)
        ids = sorted(json.loads(v)["event_id"] for _, v in transitions)
        assert ids == ["fd-1", "fd-2", "fd-3"]
        raw = await read_all(servers.bootstrap_servers, in_namespace(INSTITUTION_EVENTS, namespace).name)
        assert len(raw) == 3
        assert all(b"150904" not in v for _, v in raw)  # CPR numbers travel sealed
        assert all(b"150904" not in v for _, v in transitions)
    finally:
        door.stop()
        ingest.stop()
    assert "150904" not in (tmp_path / "frontdoor.log").read_text()
