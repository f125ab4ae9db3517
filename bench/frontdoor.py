"""The front door under load: institution systems POSTing JSON Lines batches over HTTP.

Events are sent as an institution's system would send them (clear CPR numbers, which
the front door seals), grouped by reporting institution (a batch comes from one
institution, authenticated by its token), in batches of `lines_per_request` lines from
`clients` concurrent connections. The figure is events accepted per second from the
first request to the last answer: every answer means the events are on the broker
(acknowledged) and remembered for idempotency in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import httpx

from services.frontdoor.auth import development_token
from shared.platform.processes import ServiceProcess
from shared.platform.stack import free_port

START_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 300.0


def batches_by_institution(lines: Sequence[bytes], lines_per_request: int) -> list[tuple[str, bytes]]:
    by_reporter: dict[str, list[bytes]] = defaultdict(list)
    for line in lines:
        by_reporter[json.loads(line)["reported_by"]].append(line)
    batches = []
    for reporter, own in sorted(by_reporter.items()):
        for start in range(0, len(own), lines_per_request):
            batches.append((reporter, b"\n".join(own[start:start + lines_per_request]) + b"\n"))
    return batches


async def _until_serving(base: str, door: ServiceProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient() as client:
        while True:
            if not door.running():
                raise RuntimeError(f"the front door exited; see {door.log_path}")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the front door did not start in time")
            await asyncio.sleep(0.3)


async def front_door_load(env: dict[str, str], log: Path, lines: Sequence[bytes], *,
                          lines_per_request: int = 1000, clients: int = 4) -> dict[str, float]:
    port = free_port()
    door = ServiceProcess("frontdoor", {**env, "FRONT_DOOR_PORT": str(port), "LOG_LEVEL": "WARNING"}, log)
    door.start()
    base = f"http://127.0.0.1:{port}"
    try:
        await _until_serving(base, door)
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        for batch in batches_by_institution(lines, lines_per_request):
            queue.put_nowait(batch)
        accepted = refused = requests = 0

        async def client() -> None:
            nonlocal accepted, refused, requests
            async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
                while not queue.empty():
                    reporter, body = queue.get_nowait()
                    answer = await http.post("/v1/events", content=body, headers={
                        "authorization": f"Bearer {development_token(reporter)}",
                        "content-type": "application/x-ndjson"})
                    answer.raise_for_status()
                    result = answer.json()
                    accepted += result["accepted"] + result["duplicates"]
                    refused += result["refused"]
                    requests += 1

        started = time.time()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.time() - started
    finally:
        door.stop()
    return {"events": len(lines), "accepted": accepted, "refused": refused, "requests": requests,
            "lines_per_request": lines_per_request, "clients": clients, "seconds": seconds,
            "events_per_s": accepted / seconds}
