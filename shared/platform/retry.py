"""Waiting out an unreachable Kafka broker or PostgreSQL server, with backoff and a log line.

A service that starts while its broker or database is down (a cold start of the whole
system, a broker restart, a database failover) must wait for it instead of exiting:
exiting turns a 30-second outage into a service that stays down until someone restarts
it by hand. The wait is bounded (`STARTUP_WAIT_S_MAX`): past it the service exits, and
its supervisor (Kubernetes, systemd) restarts it, which is the right escalation for an
outage that long. Mid-run failures are retried the same way: a failed batch is not
committed, so it is consumed again after a pause that grows with each failure.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlparse

import asyncpg
import structlog
from aiokafka.errors import KafkaError

log = structlog.get_logger("retry")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
STARTUP_WAIT_S_MAX = 600.0
PROBE_TIMEOUT_S = 2.0

# What "the broker or the database is not there right now" looks like; anything else
# (a bug, a bad migration) is raised at once.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, KafkaError,
    asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError,
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
    # A service's role or its password may be provisioned after the server answers (the
    # local stack creates roles once PostgreSQL is up; a deployment's migration job or
    # secret rotation may lag): wait for it like an absent server, logging the refusal.
    asyncpg.InvalidAuthorizationSpecificationError,
)

Result = TypeVar("Result")


def backoff_s(failures: int) -> float:
    """The pause after the `failures`-th consecutive failure: 0.5 s doubling to 10 s."""
    return float(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, failures - 1)))


async def until_reachable(what: str, attempt: Callable[[], Awaitable[Result]], *,
                          wait_s_max: float = STARTUP_WAIT_S_MAX) -> Result:
    """Call `attempt` until it stops failing with an `UNREACHABLE` error; log each wait.

    Raises the last error once `wait_s_max` has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s_max
    failures = 0
    while True:
        try:
            result = await attempt()
        except UNREACHABLE as error:
            failures += 1
            pause = backoff_s(failures)
            if loop.time() + pause > deadline:
                log.error("dependency_unreachable_giving_up", dependency=what, failures=failures,
                          error=f"{type(error).__name__}: {error}")
                raise
            log.warning("dependency_unreachable_retrying", dependency=what, failures=failures,
                        retry_in_s=pause, error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(pause)
            continue
        if failures:
            log.info("dependency_reachable", dependency=what, after_failures=failures)
        return result


async def tcp_reachable(host: str, port: int) -> None:
    """Raise OSError unless something accepts a TCP connection at host:port."""
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT_S)
    writer.close()
    await writer.wait_closed()


async def wait_for_kafka(bootstrap_servers: str, *, principal: str) -> None:
    """Wait until one of the bootstrap servers accepts connections and answers metadata
    (asked as `principal`, the process's own identity)."""
    from shared.platform.kafka import wait_for_broker

    async def attempt() -> None:
        host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
        await tcp_reachable(host or "127.0.0.1", int(port))
        await wait_for_broker(bootstrap_servers, timeout_s=PROBE_TIMEOUT_S * 5, principal=principal)

    await until_reachable(f"kafka {bootstrap_servers}", attempt)


def database_host(database_url: str) -> str:
    """host:port of a database URL, for log lines (never the credentials)."""
    parsed = urlparse(database_url)
    return f"{parsed.hostname or socket.gethostname()}:{parsed.port or 5432}"
