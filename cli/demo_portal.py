"""The demo's portal: the front door is started on the demo's data, an institution's
development user logs in and reads its statement, and the demo prints the address, the
log-in and what the institution saw, with how to open it again after the demo.

Checked over HTTP as a browser would (log-in form with its CSRF token, the session cookie),
so the printed log-in is known to work; the front door stops with the other services.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.frontdoor.portal.accounts import development_password
from services.frontdoor.portal.pages import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from shared.platform.processes import FRONT_DOOR, ServiceProcess
from shared.platform.stack import free_port

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PortalCheck:
    address: str
    institution: str
    password: str
    lines: int


async def busiest_institution(database_url: str) -> str | None:
    """The institution with the most payment lines: the demo's log-in shows a full statement."""
    connection = await asyncpg.connect(database_url)
    try:
        found: str | None = await connection.fetchval(
            "SELECT payee FROM ledger_entries WHERE kind = 'payment' AND payee_role = 'institution'"
            " GROUP BY payee ORDER BY count(*) DESC, payee LIMIT 1")
    finally:
        await connection.close()
    return found


async def check_portal(env: dict[str, str], database_url: str, logs: Path) -> PortalCheck | None:
    """Start the front door, log in as the busiest institution, count its statement's lines."""
    import httpx

    institution = await busiest_institution(database_url)
    if institution is None:
        return None
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    door = ServiceProcess(FRONT_DOOR, {**env, "FRONT_DOOR_PORT": str(port)}, logs / "frontdoor.log")
    door.start()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await _until_ready(client, door)
            password = development_password(institution)
            form = await client.get("/portal/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            if token is None:
                raise RuntimeError("the portal's log-in page has no CSRF token")
            # The cookies are Secure: a browser sends them to 127.0.0.1, httpx's jar only over
            # HTTPS, so they are sent by hand here.
            answer = await client.post("/portal/login", data={"username": institution, "password": password,
                                                             "csrf_token": token.group(1)},
                                       headers={"cookie": f"{LOGIN_CSRF_COOKIE}={form.cookies[LOGIN_CSRF_COOKIE]}"})
            if answer.status_code != 303 or SESSION_COOKIE not in answer.cookies:
                raise RuntimeError(f"the demo's log-in was refused ({answer.status_code})")
            page = await client.get("/portal/statement",
                                    headers={"cookie": f"{SESSION_COOKIE}={answer.cookies[SESSION_COOKIE]}"})
            if page.status_code != 200:
                raise RuntimeError(f"the statement did not open ({page.status_code})")
            lines = len(re.findall(r'<tr data-payment="', page.text))
    finally:
        door.stop()
    return PortalCheck(f"{base}/portal/", institution, password, lines)


async def _until_ready(client: object, door: ServiceProcess) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if not door.running():
            raise RuntimeError(f"the front door stopped; see {door.log_path}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the front door was not ready after {START_TIMEOUT_S:.0f}s; see {door.log_path}")
        await asyncio.sleep(0.3)
