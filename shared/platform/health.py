"""Each service's HTTP port: liveness, readiness and /metrics (HTTP_PORT; 0 turns it off).

    GET /livez    200 while the event loop answers (it serves this very request)
    GET /readyz   200 when every check passes, else 503; the body names each check
    GET /metrics  Prometheus text format (shared/platform/metrics.py)

Readiness means the service can do its work now: the broker answers, the database
answers, its migrations are at the version this code expects, and every consumer group
of the service has partitions assigned (a replica beyond the partition count would stay
not-ready, which is why the chart never scales past the partitions).

Why not FastStream's AsgiFastStream: it serves HTTP through uvicorn only after the
application's start-up (connecting to the broker and the database) has finished, so a
pod waiting for Kafka could answer neither its liveness probe nor say "not ready". This
server starts first, as the application's first start-up hook (before the wait for
Kafka in shared/platform/broker.py), and is a few lines of asyncio with no new dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import structlog
from aiokafka.admin import AIOKafkaAdminClient
from faststream import FastStream
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.platform import metrics
from shared.platform.credentials import kafka_options
from shared.platform.db import Database, expected_migrations
from shared.platform.kafka import wait_for_broker
from shared.platform.settings import Settings

CHECK_TIMEOUT_S = 2.0
REQUEST_LINE_BYTES_MAX = 8192
REQUEST_READ_TIMEOUT_S = 5.0

log = structlog.get_logger("health")


@dataclass
class Health:
    broker: KafkaBroker
    settings: Settings
    principal: str = "operator"  # the service's own Kafka identity (shared/platform/credentials.py)
    database: Database | None = None  # attached by observe()
    refreshers: tuple[metrics.Refresher, ...] = ()
    started: bool = False  # the broker and every subscriber have started
    _server: asyncio.Server | None = field(default=None, repr=False)
    _refresh_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _admin: AIOKafkaAdminClient | None = field(default=None, repr=False)

    async def checks(self) -> dict[str, bool]:
        found = {"started": self.started, "broker": False, "database": False,
                 "migrations": False, "partitions_assigned": False}
        found["broker"] = await self.broker_answers()
        found["partitions_assigned"] = self.started and partitions_assigned(self.broker)
        found["database"], found["migrations"] = await database_checks(self.database)
        return recorded(found)

    async def broker_answers(self) -> bool:
        """The running broker connection answers a ping; before the service has connected
        (waiting for its database, say), a metadata request of its own must answer."""
        try:
            if self.started:
                return bool(await self.broker.ping(timeout=CHECK_TIMEOUT_S))
            await wait_for_broker(self.settings.kafka_bootstrap_servers, timeout_s=CHECK_TIMEOUT_S)
            return True
        except Exception:  # noqa: BLE001 - any failure to answer means "not reachable"
            return False

    async def start(self) -> None:
        if self.settings.http_port:
            self._server = await serve_operations(self.settings.http_port, self._respond)

    async def after_start(self) -> None:
        self.started = True
        self._refresh_task = asyncio.create_task(self._refresh_forever())

    async def stopping(self) -> None:
        self.started = False  # not ready from the moment shutdown begins

    async def stop(self) -> None:
        self.started = False
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh_task
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
            self._admin = None
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            provider.shutdown()  # exports the spans still buffered, if exporting
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await self._server.wait_closed()

    async def refresh(self) -> None:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                        request_timeout_ms=int(CHECK_TIMEOUT_S * 5000),
                                        **kafka_options(self.principal, self.settings))
            await admin.start()
            self._admin = admin
        await metrics.refresh_consumer_lag(self.broker, self._admin)
        if self.refreshers and self.database is not None:
            async with self.database.pool.acquire() as connection:
                for refresher in self.refreshers:
                    await refresher(connection)

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # noqa: BLE001 - a metrics refresh must never stop the service
                log.warning("metrics_refresh_failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(self.settings.metrics_refresh_s)

    async def _respond(self, path: str) -> tuple[str, str, bytes]:
        return await operations_answer(path, self.checks)


Answer = tuple[str, str, bytes]  # status line, content type, body


async def serve_operations(port: int, respond: Callable[[str], Awaitable[Answer]]) -> asyncio.Server:
    """The operations port: GET requests answered by `respond(path)`, one per connection.
    The front door serves its own on a port apart from its public API (services/frontdoor)."""
    server = await asyncio.start_server(lambda r, w: _serve(r, w, respond), host="0.0.0.0",  # noqa: S104 - a pod's port
                                        port=port, limit=REQUEST_LINE_BYTES_MAX)
    log.info("health_listening", port=port)
    return server


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 respond: Callable[[str], Awaitable[Answer]]) -> None:
    try:
        async with asyncio.timeout(REQUEST_READ_TIMEOUT_S):
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # headers: not needed
        parts = request.decode("latin-1").split()
        path = parts[1].split("?")[0] if len(parts) >= 2 else ""
        status, content_type, body = await respond(path)
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
    except (TimeoutError, ValueError, ConnectionError):
        pass  # a client that went away or sent nonsense gets nothing
    finally:
        writer.close()


async def operations_answer(path: str, checks: Callable[[], Awaitable[dict[str, bool]]]) -> Answer:
    """/livez, /readyz (from `checks`) and /metrics; anything else 404."""
    if path == "/livez":
        return "200 OK", "text/plain", b"ok\n"
    if path == "/readyz":
        found = await checks()
        body = readiness_text(found).encode()
        return ("200 OK" if all(found.values()) else "503 Service Unavailable"), "text/plain", body
    if path == "/metrics":
        return "200 OK", CONTENT_TYPE_LATEST, generate_latest(metrics.REGISTRY)
    return "404 Not Found", "text/plain", b"not found\n"


async def database_checks(database: Database | None) -> tuple[bool, bool]:
    """(the database answers, every migration this code expects is applied); the front
    door's readiness asks the same."""
    answers = False
    try:
        if database is None:
            raise RuntimeError("no database attached")
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with database.pool.acquire() as connection:
                answers = True
                applied = {r["name"] for r in await connection.fetch("SELECT name FROM schema_migrations")}
                return True, expected_migrations() <= applied
    except (RuntimeError, TimeoutError, OSError, asyncpg.PostgresError):
        pass  # not open yet, not answering, or no schema_migrations table yet: not ready
    return answers, False


def recorded(found: dict[str, bool]) -> dict[str, bool]:
    """The checks, also set on `stafet_ready{check}`."""
    for check, ok in found.items():
        metrics.READY.labels(check).set(1 if ok else 0)
    return found


def readiness_text(found: dict[str, bool]) -> str:
    """/readyz's body: one line per check, `name ok` or `name FAIL`."""
    return "".join(f"{name} {'ok' if ok else 'FAIL'}\n" for name, ok in found.items())


def partitions_assigned(broker: KafkaBroker) -> bool:
    """Every subscriber's consumer is running and has at least one partition."""
    consumers = [getattr(s, "consumer", None) for s in broker.subscribers]
    return bool(consumers) and all(c is not None and c.assignment() for c in consumers)


_SERVED: weakref.WeakKeyDictionary[FastStream, Health] = weakref.WeakKeyDictionary()


def serve_health(app: FastStream, broker: KafkaBroker, settings: Settings, principal: str = "operator") -> Health:
    """Open the HTTP port as the app's first start-up hook (shared/platform/broker.py's make_app
    calls this before it registers anything else) and close it last."""
    health = Health(broker, settings, principal)
    _SERVED[app] = health
    app.on_startup(health.start)
    app.after_startup(health.after_start)
    app.on_shutdown(health.stopping)
    app.after_shutdown(health.stop)
    metrics.READY.labels("started").set(0)
    return health


def observe(app: FastStream, database: Database, *, refreshers: tuple[metrics.Refresher, ...] = ()) -> Health:
    """Give the app's health checks its database (readiness: reachable, migrated) and the
    service's own gauges to refresh for /metrics."""
    health = _SERVED[app]
    health.database, health.refreshers = database, refreshers
    return health
