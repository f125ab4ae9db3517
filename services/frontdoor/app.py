"""The HTTP front door: institution systems POST events over HTTPS instead of running our
CLI or writing Kafka.

`POST /v1/events` takes one event (`application/json`) or a batch (`application/x-ndjson`,
one event per line), authenticated by the institution's bearer token, and answers every
line: `accepted` (forwarded to the institution-events topic), `duplicate` (this event id
was forwarded before, unchanged: nothing is sent again) or `refused` with ingest's reason
code. It applies ingest's admission rules that need no secret (`lines.py`), seals clear
CPR numbers for ingest, and forwards exactly as `stafet publish` does, so ingest admits
what it forwards by the same rules. Idempotent by (institution, event id): repeating a
request, or a line, forwards nothing twice (`frontdoor_events`).

The OpenAPI document is generated from this app (`stafet docs` writes
docs/openapi/frontdoor.yaml; a test fails when it drifts).

Run alone: `uvicorn services.frontdoor.app:app --host 0.0.0.0 --port 8080` behind a
TLS-terminating proxy (FRONT_DOOR_TOKENS_FILE, KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL,
INSTITUTIONS_FILE, SEALING_PUBLIC_KEY_FILE).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Literal

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from services.frontdoor.auth import Authenticator
from services.frontdoor.lines import Admitted, Refused, Remembered, check_line_guarded, subject_fingerprint
from services.frontdoor.observability import RequestMetrics
from services.frontdoor.portal.accounts import Accounts
from services.frontdoor.portal.notifications import notify_forever, notify_once, smtp_sender
from services.frontdoor.portal.pages import Portal
from services.frontdoor.portal.pages import install as install_portal
from shared.domain.disputes import DisputeOpened, DisputeResolved
from shared.domain.institutions import InstitutionRegistry
from shared.domain.sealing import Sealer
from shared.platform import metrics
from shared.platform.db import Database
from shared.platform.health import database_checks, operations_answer, readiness_text, recorded, serve_operations
from shared.platform.kafka import make_producer
from shared.platform.logging import configure_logging
from shared.platform.retry import until_reachable, wait_for_kafka
from shared.platform.sealing_key import publisher_public_key
from shared.platform.settings import Settings
from shared.platform.tenants import load_tenancy
from shared.platform.topics import DISPUTES, INSTITUTION_EVENTS
from shared.platform.trust import FRONT_DOOR, record_signer

JSON_LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


class FrontDoorSettings(Settings):
    front_door_tokens_file: Path | None = None
    # The portal's user accounts (services/frontdoor/portal/accounts.py; `stafet frontdoor user`).
    front_door_users_file: Path | None = None
    # Explicit limits: a batch is at most this many bytes and lines (split larger files).
    front_door_body_bytes_max: int = Field(default=8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    front_door_lines_max: int = Field(default=10_000, ge=1, le=100_000)
    # A body must arrive within this long (from its first byte to its last), or the
    # request is cut with 408: a client sending a byte every few seconds holds nothing.
    front_door_body_timeout_s: float = Field(default=30.0, ge=1.0, le=600.0)
    # At most this many bodies are being received at once; one more is answered 503 at
    # once (send again), so slow clients cannot take every connection's memory.
    front_door_open_bodies_max: int = Field(default=64, ge=1, le=10_000)
    # Notifications (portal/notifications.py): e-mail through this SMTP server when a review
    # window opens for an institution that registered an address; unset, none are sent.
    front_door_smtp_host: str | None = None
    front_door_smtp_port: int = Field(default=25, ge=1, le=65_535)
    front_door_mail_from: str = "stafet-portal@localhost"
    front_door_notify_interval_s: float = Field(default=60.0, ge=0.5, le=3600.0)
    # The portal's address as institutions reach it, for the link in an e-mail.
    front_door_public_url: str = ""


class LineResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    line: int = Field(description="1-based line number in the request body")
    event_id: str | None = Field(description="The line's event id, when it has a readable one")
    status: Literal["accepted", "duplicate", "refused"]
    reason: str | None = Field(default=None, description="Why it was refused: ingest's reason codes "
                               "(malformed_json, schema_violation, unknown_institution, untrusted_source, "
                               "invalid_cpr, unknown_subject_reference, cpr_in_identifier, cpr_in_field, "
                               "conflicting_duplicate; the parse limits record_too_large, nesting_too_deep, "
                               "number_too_long, string_too_long, too_many_items; admission_error; not_original_reporter, "
                               "not_own_institution; occurred_before_1900, occurred_in_future, "
                               "occurred_before_birth, born_in_future) "
                               "or reporter_mismatch")
    field: str | None = Field(default=None, description="The field the refusal is about")
    message: str | None = Field(default=None, description="One line, CPR numbers removed")


class BatchResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    accepted: int
    duplicates: int
    refused: int
    results: list[LineResult]


class Problem(BaseModel):
    detail: str


settings = FrontDoorSettings()
configure_logging(settings.log_level)
log = structlog.get_logger("frontdoor")


class FrontDoor:
    """What one running front door holds: registry, tokens, sealer, producer, pool."""

    def __init__(self, config: FrontDoorSettings) -> None:
        self.settings = config
        self.registry = InstitutionRegistry.from_file(config.institutions_file)
        self.authenticator = Authenticator.from_settings(config.front_door_tokens_file, self.registry,
                                                         production=config.stafet_env == "production")
        self.sealer = Sealer(publisher_public_key(config))
        # Ingest believes an event only from the institution it names or from the front
        # door, which checked the caller's token and refused another institution's name.
        self.signer = record_signer(config, FRONT_DOOR)
        self.producer = make_producer(config.kafka_bootstrap_servers, client_id="stafet-frontdoor",
                                      principal="frontdoor", settings=config)
        self.database = Database(config, role="frontdoor", max_size=config.db_pool_max_size)
        self.open_bodies = asyncio.Semaphore(config.front_door_open_bodies_max)
        self.portal = Portal(Accounts.from_settings(config.front_door_users_file, self.registry,
                                                    production=config.stafet_env == "production"), self.registry,
                             tenancy=load_tenancy(config))  # a tenant's operators see its own (docs/tenancy.md)
        self.started = False
        self.notifier: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Wait out a broker or database that is not there yet (shared/platform/retry.py), as the
        other services do: meanwhile /livez answers, /readyz says what is missing and
        POST answers 503."""
        await wait_for_kafka(self.settings.kafka_bootstrap_servers, principal="frontdoor")
        await until_reachable("broker (the front door's producer)", self._start_producer)
        await self.database.open()
        self.portal.attach(self.database.pool, self.publish_dispute)
        if self.settings.front_door_smtp_host:
            self.notifier = asyncio.create_task(self.notify_forever(self.settings.front_door_smtp_host))
            self.notifier.add_done_callback(_exit_if_notifier_failed)
        self.started = True
        log.info("frontdoor_started")

    async def _start_producer(self) -> None:
        """Start the producer; on a broker error, a fresh one for the next attempt. The broker
        may answer before this principal's ACLs are in force (Strimzi's user operator, or
        the local stack granting them just after it starts): the idempotent producer's start
        is then refused as ClusterAuthorizationFailed, which is waited out like an absent
        broker (found by tests/e2e/test_health.py failing now and then)."""
        try:
            await self.producer.start()
        except KafkaError:
            with contextlib.suppress(Exception):
                await self.producer.stop()
            self.producer = make_producer(self.settings.kafka_bootstrap_servers, client_id="stafet-frontdoor",
                                          principal="frontdoor", settings=self.settings)
            raise

    async def publish_dispute(self, record: DisputeOpened | DisputeResolved) -> None:
        """A dispute or an operator's decision on one, onto the disputes topic, signed by the
        front door (which authenticated the user), once the broker has it."""
        value = record.model_dump_json().encode()
        key = record.dispute_id.encode()
        sent = await self.producer.send(DISPUTES.name, value, key=key,
                                        headers=self.signer.headers(DISPUTES.name, key, value))
        await sent
        metrics.RECORDS_PRODUCED.labels("frontdoor", DISPUTES.name).inc()
        log.info("dispute_published", kind=record.kind, dispute_id=record.dispute_id)

    async def notify_forever(self, smtp_host: str) -> None:
        """Every interval: queue the review windows that opened, send what is due (bounded,
        retried, idempotent: portal/notifications.py). A cycle that raises is logged, counted
        and tried again after a longer wait; the front door keeps serving."""
        send = smtp_sender(smtp_host, self.settings.front_door_smtp_port)
        await notify_forever(lambda: notify_once(self.database.pool, send, self.registry,
                                                 self.settings.front_door_mail_from,
                                                 self.settings.front_door_public_url),
                             self.settings.front_door_notify_interval_s)

    async def stop(self) -> None:
        self.started = False
        if self.notifier is not None:
            self.notifier.cancel()
            await asyncio.gather(self.notifier, return_exceptions=True)
        await self.producer.stop()
        await self.database.close()

    async def checks(self) -> dict[str, bool]:
        """Readiness, as shared/platform/health.py's: started, the broker and the database answer,
        the schema is at the version this code expects."""
        found = {"started": self.started, "broker": False, "database": False, "migrations": False}
        if self.started:
            try:
                async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
                    await self.producer.client.fetch_all_metadata()
                found["broker"] = True
            except Exception:  # noqa: BLE001, S110 - any failure to answer means "not reachable"
                pass
            found["database"], found["migrations"] = await database_checks(self.database)
        return recorded(found)


READY_CHECK_TIMEOUT_S = 2.0


def _exit_if_notifier_failed(task: asyncio.Task[None]) -> None:
    """The notifier catches what a cycle raises (portal/notifications.py, `notify_forever`);
    should it end all the same, the front door stops (its supervisor restarts it) rather
    than serving with no notifications and nobody told."""
    if task.cancelled() or task.exception() is None:
        return
    log.error("notifier_failed", error=f"{type(task.exception()).__name__}: {task.exception()}")
    os.kill(os.getpid(), signal.SIGTERM)


def _exit_if_start_failed(task: asyncio.Task[None]) -> None:
    """Past shared/platform/retry.py's longest wait the front door gives up like the other services:
    it stops (uvicorn shuts down on SIGTERM) and its supervisor restarts it."""
    if task.cancelled() or task.exception() is None:
        return
    log.error("frontdoor_start_failed", error=f"{type(task.exception()).__name__}: {task.exception()}")
    os.kill(os.getpid(), signal.SIGTERM)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    door = FrontDoor(settings)
    app.state.door = door
    # /livez, /readyz and /metrics on the operations port (HTTP_PORT), apart from the
    # public API: the ingress never exposes /metrics (observability.py).
    operations = (await serve_operations(settings.http_port, lambda path: operations_answer(path, door.checks))
                  if settings.http_port else None)
    # Started in the background so that the probes are answered while it waits.
    starting = asyncio.create_task(door.start())
    starting.add_done_callback(_exit_if_start_failed)
    try:
        yield
    finally:
        door.started = False
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await door.stop()
        if operations is not None:
            operations.close()


app = FastAPI(
    title="Stafet front door", version=package_version("stafet"), lifespan=lifespan,
    description=("Institution systems send events over HTTPS. Each line is answered: accepted, duplicate "
                 "(already forwarded under this event id) or refused with a reason code. Idempotent by "
                 "event id: send a batch again after any failure."),
)


def openapi_document() -> dict[str, object]:
    """The OpenAPI document, with the event schema the request body refers to."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        from shared.domain.events import InstitutionEvent

        document = get_openapi(title=app.title, version="1", description=app.description, routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        event_schema = InstitutionEvent.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(event_schema.pop("$defs", {}))
        schemas["InstitutionEvent"] = event_schema
        document["components"]["securitySchemes"] = {
            "institutionToken": {"type": "http", "scheme": "bearer",
                                 "description": "The institution's token (stafet frontdoor token)"}}
        document["security"] = [{"institutionToken": []}]
        app.openapi_schema = document
    return app.openapi_schema


app.openapi = openapi_document  # type: ignore[method-assign]
app.add_middleware(RequestMetrics)
install_portal(app)  # the institutions' portal under /portal (services/frontdoor/portal/)


@app.get("/healthz", summary="Liveness", responses={200: {"content": {"application/json": {"example": {"ok": True}}}}})
@app.get("/livez", summary="Liveness (the probe's name in the Helm chart)", include_in_schema=False)
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@app.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> PlainTextResponse:
    """200 when the front door can forward now, else 503 naming the failing checks."""
    found = await request.app.state.door.checks()
    return PlainTextResponse(readiness_text(found), status_code=200 if all(found.values()) else 503)


_EXAMPLE_CPR = "150904-4321"  # the OpenAPI example: a made-up CPR number, as in the docs and tests
_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/InstitutionEvent"},
                             "example": {"event_id": "alsskolen-2024-0001", "occurred_on": "2024-08-12",
                                         "reported_by": "alsskolen", "subject": {"cpr": _EXAMPLE_CPR},
                                         "body": {"type": "enrolled", "institution": "alsskolen",
                                                  "stage": "primary"}}},
        "application/x-ndjson": {"schema": {"type": "string",
                                            "description": "One InstitutionEvent as JSON per line"}},
    },
}


@app.post("/v1/events", summary="Send one event or a batch (JSON Lines)", response_model=BatchResult,
          responses={401: {"model": Problem, "description": "No or unknown bearer token"},
                     408: {"model": Problem, "description": "The body did not arrive in time: send again"},
                     413: {"model": Problem, "description": "Body or line count over the limit"},
                     415: {"model": Problem, "description": "Not application/json or application/x-ndjson"},
                     503: {"model": Problem, "description": "Kafka or PostgreSQL unavailable: send again"}},
          openapi_extra={"requestBody": _REQUEST_BODY})
async def post_events(request: Request,
                      authorization: Annotated[str | None, Header(
                          description="Bearer <the institution's token>")] = None,
                      ) -> BatchResult | JSONResponse:
    door: FrontDoor = request.app.state.door
    if not door.started:
        return JSONResponse({"detail": "starting: Kafka or PostgreSQL not reachable yet; send the batch again"},
                            status_code=503)
    caller = door.authenticator.institution_of(authorization)
    if caller is None:
        return JSONResponse({"detail": "a valid bearer token is needed"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and content_type not in JSON_LINES_TYPES:
        return JSONResponse({"detail": "send application/json (one event) or application/x-ndjson (a batch)"},
                            status_code=415)
    if door.open_bodies.locked():
        return JSONResponse({"detail": "too many requests are being received; send the batch again"},
                            status_code=503, headers={"Retry-After": "1"})
    try:
        async with door.open_bodies, asyncio.timeout(door.settings.front_door_body_timeout_s):
            body = await _body_within(request, door.settings.front_door_body_bytes_max)
    except TimeoutError:
        log.warning("body_timed_out", institution=caller, timeout_s=door.settings.front_door_body_timeout_s)
        return JSONResponse({"detail": f"the body did not arrive within {door.settings.front_door_body_timeout_s} s"},
                            status_code=408, headers={"Connection": "close"})
    if body is None:
        return JSONResponse({"detail": f"the body is over {door.settings.front_door_body_bytes_max} bytes"},
                            status_code=413)
    lines = [body] if content_type == "application/json" else body.splitlines()
    numbered = [(n, raw) for n, raw in enumerate(lines, start=1) if raw.strip()]
    if len(numbered) > door.settings.front_door_lines_max:
        return JSONResponse({"detail": f"more than {door.settings.front_door_lines_max} lines: split the batch"},
                            status_code=413)
    try:
        results = await _forward(door, caller, numbered)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
        log.warning("forward_failed", institution=caller, error=type(error).__name__)
        return JSONResponse({"detail": "the event store is unavailable; send the batch again (idempotent)"},
                            status_code=503)
    except Exception as error:
        from aiokafka.errors import KafkaError

        if not isinstance(error, KafkaError):
            raise
        log.warning("forward_failed", institution=caller, error=type(error).__name__)
        return JSONResponse({"detail": "the event log is unavailable; send the batch again (idempotent)"},
                            status_code=503)
    counts = {status: sum(1 for r in results if r.status == status) for status in ("accepted", "duplicate", "refused")}
    for result in results:
        metrics.FRONT_DOOR_LINES.labels(result.status, result.reason or "").inc()
    log.info("batch_answered", institution=caller, lines=len(results), **counts)
    return BatchResult(accepted=counts["accepted"], duplicates=counts["duplicate"], refused=counts["refused"],
                       results=results)


async def _body_within(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _forward(door: FrontDoor, caller: str, numbered: list[tuple[int, bytes]]) -> list[LineResult]:
    """Each line's answer. An event id is the caller's own: it is looked up under
    (caller, event id), so another institution's use of the id changes nothing here."""
    today = dt.datetime.now(dt.UTC).date()  # for the dates no fact can have
    checked = [(n, check_line_guarded(raw, caller, door.registry, today)) for n, raw in numbered]
    admitted_ids = [c.event_id for _, c in checked if isinstance(c, Admitted)]
    async with door.database.pool.acquire() as connection:
        known = {r["event_id"]: Remembered(r["fingerprint"], r["subject_fingerprint"]) for r in await connection.fetch(
            "SELECT event_id, fingerprint, subject_fingerprint FROM frontdoor_events"
            " WHERE institution = $1 AND event_id = ANY($2::text[])", caller, admitted_ids)}
    results: list[LineResult] = []
    to_send: list[tuple[Admitted, Remembered]] = []
    for n, outcome in checked:
        if isinstance(outcome, Refused):
            results.append(LineResult(line=n, event_id=outcome.event_id, status="refused", reason=outcome.reason,
                                      field=outcome.field, message=outcome.message))
            continue
        now = Remembered(outcome.fingerprint, subject_fingerprint(outcome.subject_identity, door.signer))
        earlier = known.get(outcome.event_id)
        if earlier is None:
            known[outcome.event_id] = now  # a repeat later in this batch is a duplicate
            to_send.append((outcome, now))
            results.append(LineResult(line=n, event_id=outcome.event_id, status="accepted"))
        elif earlier.same_event_as(now):
            results.append(LineResult(line=n, event_id=outcome.event_id, status="duplicate"))
        else:
            results.append(LineResult(line=n, event_id=outcome.event_id, status="refused",
                                      reason="conflicting_duplicate", field="event_id",
                                      message="this event id was sent before with different content "
                                              "(another subject or body)"))
    await _publish(door, caller, to_send)
    return results


async def _publish(door: FrontDoor, caller: str, admitted: list[tuple[Admitted, Remembered]]) -> None:
    """Forward, wait for the broker's acknowledgements, then remember the event ids: a
    failure before the commit forwards them again on the retry, which ingest's own
    deduplication absorbs; nothing is remembered that was not forwarded."""
    if not admitted:
        return
    outgoing = [(INSTITUTION_EVENTS.name, *door.sealer.keyed(json.dumps(event.event, ensure_ascii=False).encode()))
                for event, _ in admitted]
    # One signature per tree of events, each with its proof (shared/domain/signing.py).
    pending = [await door.producer.send(topic, value, key=key, headers=headers)
               for (topic, key, value), headers in zip(outgoing, door.signer.batch_headers(outgoing), strict=True)]
    await asyncio.gather(*pending)
    metrics.RECORDS_PRODUCED.labels("frontdoor", INSTITUTION_EVENTS.name).inc(len(pending))
    async with door.database.pool.acquire() as connection:
        await connection.executemany(
            "INSERT INTO frontdoor_events (event_id, institution, fingerprint, subject_fingerprint)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (institution, event_id) DO NOTHING",
            [(a.event_id, caller, r.fingerprint, r.subject_fingerprint) for a, r in admitted])
