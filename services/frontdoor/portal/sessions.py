"""Portal sessions and failed log-ins, kept in PostgreSQL so every front door replica
shares them (services/frontdoor/sql/004_portal.sql).

A session is a 256-bit random value in a cookie; the database keeps only its SHA-256,
with the user, the institution, the role, the session's CSRF token and when it expires.
Logging out deletes the row: a stolen cookie dies with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from services.frontdoor.portal.accounts import PortalUser, Role

SESSION_LIFETIME = dt.timedelta(hours=8)
# Failures older than this can no longer lock anyone (accounts.locked_until): forgotten.
FAILURES_KEPT = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Session:
    user: PortalUser
    csrf_token: str
    expires_at: dt.datetime


def session_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class PortalStore(Protocol):
    async def now(self) -> dt.datetime: ...
    async def failures(self, username: str) -> list[dt.datetime]: ...
    async def record_failure(self, username: str) -> None: ...
    async def clear_failures(self, username: str) -> None: ...
    async def open_session(self, user: PortalUser) -> tuple[str, Session]: ...
    async def session(self, cookie: str) -> Session | None: ...
    async def close_session(self, cookie: str) -> None: ...


class PostgresPortalStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def now(self) -> dt.datetime:
        async with self._pool.acquire() as connection:
            found: dt.datetime = await connection.fetchval("SELECT clock_timestamp()")
        return found

    async def failures(self, username: str) -> list[dt.datetime]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT failed_at FROM portal_login_failures WHERE username = $1"
                " AND failed_at > clock_timestamp() - $2::interval ORDER BY failed_at", username, FAILURES_KEPT)
        return [r["failed_at"] for r in rows]

    async def record_failure(self, username: str) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "DELETE FROM portal_login_failures WHERE username = $1 AND failed_at < clock_timestamp() - $2::interval",
                username, FAILURES_KEPT)
            await connection.execute("INSERT INTO portal_login_failures (username) VALUES ($1)", username)

    async def clear_failures(self, username: str) -> None:
        async with self._pool.acquire() as connection:
            await connection.execute("DELETE FROM portal_login_failures WHERE username = $1", username)

    async def open_session(self, user: PortalUser) -> tuple[str, Session]:
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("DELETE FROM portal_sessions WHERE expires_at < clock_timestamp()")
            expires_at = await connection.fetchval(
                "INSERT INTO portal_sessions (session_hash, username, institution, role, csrf_token, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, clock_timestamp() + $6::interval) RETURNING expires_at",
                session_hash(cookie), user.username, user.institution, user.role.value, csrf, SESSION_LIFETIME)
        return cookie, Session(user, csrf, expires_at)

    async def session(self, cookie: str) -> Session | None:
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(
                "SELECT username, institution, role, csrf_token, expires_at FROM portal_sessions"
                " WHERE session_hash = $1 AND expires_at > clock_timestamp()", session_hash(cookie))
        if row is None:
            return None
        return Session(PortalUser(row["username"], row["institution"], Role(row["role"])),
                       row["csrf_token"], row["expires_at"])

    async def close_session(self, cookie: str) -> None:
        async with self._pool.acquire() as connection:
            await connection.execute("DELETE FROM portal_sessions WHERE session_hash = $1", session_hash(cookie))
